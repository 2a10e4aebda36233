using System.Text;
using CriRuntime.Network.Cni;
using CriRuntime.Pods;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Network;

/// <summary>The bandwidth annotations as containerd turns them into the bandwidth capability's args.</summary>
public sealed class PodBandwidthTests
{
    [Theory]
    [InlineData("10M", 10_000_000)]
    [InlineData("1Gi", 1L << 30)]
    [InlineData("1.5k", 1500)]
    [InlineData("2500", 2500)]
    [InlineData("1e6", 1_000_000)]
    [InlineData("1E3", 1000)]
    [InlineData("1P", 1_000_000_000_000_000)]
    [InlineData("1000001m", 1001)] // rounded up, as Quantity.Value() does
    [InlineData("+64Ki", 65536)]
    public void Quantities_are_read_as_kubernetes_reads_them(string text, long bits)
    {
        var bandwidth = PodBandwidthAnnotations.FromAnnotations(new Dictionary<string, string> { [PodBandwidthAnnotations.IngressAnnotation] = text });
        Assert.Equal(bits, bandwidth!.IngressRateBitsPerSecond);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ten")]
    [InlineData("10 M")]
    [InlineData("10MB")]
    [InlineData("1e")]
    [InlineData(".")]
    [InlineData("1e999")]
    [InlineData("999999999999999999999999999999E")]
    public void Text_that_is_no_quantity_is_refused_naming_the_annotation(string text)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => PodBandwidthAnnotations.FromAnnotations(
            new Dictionary<string, string> { [PodBandwidthAnnotations.EgressAnnotation] = text }));
        Assert.Contains("kubernetes.io/egress-bandwidth", e.Message);
    }

    [Theory]
    [InlineData("999", "small")]
    [InlineData("-5M", "small")]
    [InlineData("2P", "large")]
    [InlineData("1Ei", "large")]
    public void Values_outside_1k_to_1P_are_refused(string text, string why)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => PodBandwidthAnnotations.FromAnnotations(
            new Dictionary<string, string> { [PodBandwidthAnnotations.IngressAnnotation] = text }));
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void No_annotation_means_no_bandwidth_args()
    {
        Assert.Null(PodBandwidthAnnotations.FromAnnotations(new Dictionary<string, string> { ["other"] = "1M" }));
        var args = CniManager.CapabilityArgs(new PodNetworkRequest("id", "/ns", "p", "n", "u", []));
        Assert.Null(args["bandwidth"]);
    }

    [Fact]
    public void A_pod_with_both_annotations_offers_rates_with_containerds_burst_to_a_bandwidth_plugin_only()
    {
        var network = CniNetwork.Parse(Encoding.UTF8.GetBytes("""
            {"cniVersion":"1.0.0","name":"net","plugins":[
              {"type":"bridge"},
              {"type":"bandwidth","capabilities":{"bandwidth":true}}]}
            """));
        var config = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "n", Uid = "u" } };
        config.Annotations.Add(PodBandwidthAnnotations.IngressAnnotation, "10M");
        config.Annotations.Add(PodBandwidthAnnotations.EgressAnnotation, "1Mi");
        var pod = new PodSandboxRecord
        {
            Id = "id", ConfigBytes = Google.Protobuf.MessageExtensions.ToByteArray(config), NetworkNamespace = "/ns", RuntimeHandler = "runc",
            Phase = PodSandboxPhase.Ready, CreatedAt = 1, PodStateDir = "/x", CgroupParent = "/p",
        };

        var args = CniManager.CapabilityArgs(PodSandboxManager.NetworkRequest(pod));
        var bridge = CniManager.PluginConfig(network, network.Plugins[0], null, args);
        var bandwidth = CniManager.PluginConfig(network, network.Plugins[1], null, args);

        Assert.Null(bridge["runtimeConfig"]);
        Assert.Equal("""{"bandwidth":{"ingressRate":10000000,"ingressBurst":4294967295,"egressRate":1048576,"egressBurst":4294967295}}""",
            bandwidth["runtimeConfig"]!.ToJsonString());
    }

    [Fact]
    public void Only_the_given_direction_is_shaped()
    {
        var bandwidth = PodBandwidthAnnotations.FromAnnotations(new Dictionary<string, string> { [PodBandwidthAnnotations.EgressAnnotation] = "5M" });
        Assert.Equal(new PodBandwidth(0, 0, 5_000_000, uint.MaxValue), bandwidth);
    }
}
