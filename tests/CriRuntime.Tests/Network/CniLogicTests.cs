using System.Text;
using System.Text.Json.Nodes;
using CriRuntime.Network.Cni;
using Xunit;

namespace CriRuntime.Tests.Network;

/// <summary>Pure logic: result conversion, pod IP selection, plugin config building, error parsing.</summary>
public sealed class CniLogicTests
{
    [Fact]
    public void A_legacy_result_is_converted_to_the_current_shape()
    {
        var legacy = Encoding.UTF8.GetBytes("""
            {"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},
             "ip6":{"ip":"fd00::5/64"},"dns":{"nameservers":["10.1.0.1"]}}
            """);

        var result = CniResults.Parse(legacy, "1.0.0");

        Assert.Equal("""{"ips":[{"address":"10.1.0.5/16","gateway":"10.1.0.1"},{"address":"fd00::5/64"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.1.0.1"]},"cniVersion":"1.0.0"}""",
            result.ToJsonString());
        Assert.Equal(["10.1.0.5", "fd00::5"], CniResults.PodIps(result, "eth0"));
    }

    [Fact]
    public void Ip_version_tags_are_added_for_0_4_0_and_dropped_for_1_0_0()
    {
        var v1 = JsonNode.Parse("""{"cniVersion":"1.0.0","ips":[{"address":"fd00::2/64"},{"address":"10.0.0.2/24"}]}""")!.AsObject();

        var v04 = CniResults.Convert(v1, "0.4.0");
        Assert.Equal("""{"cniVersion":"0.4.0","ips":[{"address":"fd00::2/64","version":"6"},{"address":"10.0.0.2/24","version":"4"}]}""", v04.ToJsonString());
        Assert.Equal("""{"cniVersion":"1.0.0","ips":[{"address":"fd00::2/64"},{"address":"10.0.0.2/24"}]}""", CniResults.Convert(v04, "1.0.0").ToJsonString());
    }

    [Fact]
    public void Pod_ips_are_those_of_the_sandbox_interface_ipv4_first()
    {
        var result = JsonNode.Parse("""
            {"cniVersion":"1.0.0",
             "interfaces":[{"name":"cni0"},{"name":"veth1"},{"name":"eth0","sandbox":"/var/run/netns/x"}],
             "ips":[{"address":"10.9.9.1/24","interface":0},{"address":"fd00::7/64","interface":2},{"address":"10.0.0.7/24","interface":2},{"address":"10.0.0.8/24","interface":2}]}
            """)!.AsObject();

        Assert.Equal(["10.0.0.7", "10.0.0.8", "fd00::7"], CniResults.PodIps(result, "eth0"));
    }

    [Fact]
    public void Plugin_config_gets_list_name_version_prev_result_and_only_declared_capabilities()
    {
        var network = CniNetwork.Parse(Encoding.UTF8.GetBytes("""
            {"cniVersion":"0.4.0","name":"net","plugins":[
              {"type":"bridge","name":"ignored","runtimeConfig":{"x":1}},
              {"type":"portmap","capabilities":{"portMappings":true,"ips":false},"runtimeConfig":{"x":1}}]}
            """));
        var request = new PodNetworkRequest("id", "/ns", "p", "n", "u", [new PodPortMapping("SCTP", 1, 2, "")], Ips: ["10.0.0.9/24"]);
        var args = CniManager.CapabilityArgs(request);
        var prev = JsonNode.Parse("""{"cniVersion":"0.4.0","ips":[]}""")!.AsObject();

        var bridge = CniManager.PluginConfig(network, network.Plugins[0], null, args);
        var portmap = CniManager.PluginConfig(network, network.Plugins[1], prev, args);

        // A plugin that declares nothing keeps what the file says; libcni does the same.
        Assert.Equal("""{"type":"bridge","name":"net","runtimeConfig":{"x":1},"cniVersion":"0.4.0"}""", bridge.ToJsonString());
        Assert.Equal("""{"type":"portmap","capabilities":{"portMappings":true,"ips":false},"runtimeConfig":{"portMappings":[{"hostPort":2,"containerPort":1,"protocol":"sctp"}]},"name":"net","cniVersion":"0.4.0","prevResult":{"cniVersion":"0.4.0","ips":[]}}""",
            portmap.ToJsonString());
    }

    [Fact]
    public void A_single_conf_is_wrapped_into_a_list()
    {
        var network = CniNetwork.Parse(Encoding.UTF8.GetBytes("""{"cniVersion":"0.3.1","name":"one","type":"ptp","disableCheck":true,"ipam":{}}"""));

        Assert.Equal("one", network.Name);
        Assert.Equal("0.3.1", network.CniVersion);
        Assert.True(network.DisableCheck);
        Assert.Equal("ptp", Assert.Single(network.Plugins).Type);
        Assert.False(CniVersions.HasCheck(network.CniVersion));
    }

    [Fact]
    public void Plugin_errors_carry_msg_details_and_code_or_else_stderr()
    {
        var fromJson = CniPluginInvoker.Failure("plugin x ADD", "x", 1,
            Encoding.UTF8.GetBytes("""{"cniVersion":"1.0.0","code":11,"msg":"try later","details":"busy"}"""), Encoding.UTF8.GetBytes("noise"));
        Assert.Equal("plugin x ADD failed: try later: busy (CNI error code 11)", fromJson.Message);
        Assert.Equal(11, fromJson.Code);
        Assert.Equal("x", fromJson.Plugin);

        var fromStderr = CniPluginInvoker.Failure("plugin x ADD", "x", 2, Encoding.UTF8.GetBytes("not json"), Encoding.UTF8.GetBytes("panic: oops\n"));
        Assert.Equal("plugin x ADD failed with exit status 2: panic: oops", fromStderr.Message);
        Assert.Null(fromStderr.Code);
    }
}
