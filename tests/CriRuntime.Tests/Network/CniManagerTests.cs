using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using CriRuntime.Network.Cni;
using Xunit;

namespace CriRuntime.Tests.Network;

/// <summary>Real plugins from /usr/lib/cni against real network namespaces, bridges and iptables.</summary>
public sealed class CniManagerTests : IDisposable
{
    private readonly CniTestEnvironment env = new();

    public void Dispose() => env.Dispose();

    [Fact]
    public async Task Add_gives_an_address_in_the_subnet_and_lo_up_and_Del_releases_address_and_veth_idempotently()
    {
        env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin());
        using var cni = env.Manager();
        var pod = env.NewPod();
        string ns = CniTestEnvironment.NamespaceName(pod);

        var result = await cni.SetUpAsync(pod, CancellationToken.None);

        string ip = Assert.Single(result.Ips);
        Assert.StartsWith(env.SubnetPrefix + ".", ip);
        Assert.Contains($"inet {ip}/24", CniTestEnvironment.MustRun("ip", "-n", ns, "-4", "addr", "show", "dev", "eth0"));
        Assert.Contains("<LOOPBACK,UP,LOWER_UP>", CniTestEnvironment.MustRun("ip", "-n", ns, "link", "show", "dev", "lo"));
        Assert.Equal([ip], env.AllocatedIps());
        string hostVeth = HostVeth(result);
        Assert.True(CniTestEnvironment.LinkExists(hostVeth));
        var cached = JsonNode.Parse(File.ReadAllText(cni.CacheEntryPath(pod.SandboxId)))!;
        Assert.Equal(["lo", "eth0"], cached["attachments"]!.AsArray().Select(a => (string)a!["ifName"]!));
        Assert.Equal(env.NetworkName, (string)cached["attachments"]![1]!["network"]!["name"]!);
        Assert.Equal(result.ResultJson, cached["attachments"]![1]!["result"]!.ToJsonString());

        await cni.TearDownAsync(pod, CancellationToken.None);

        Assert.Empty(env.AllocatedIps());
        Assert.False(CniTestEnvironment.LinkExists(hostVeth));
        Assert.False(CniTestEnvironment.LinkExists("eth0", ns));
        Assert.False(File.Exists(cni.CacheEntryPath(pod.SandboxId)));
        await cni.TearDownAsync(pod, CancellationToken.None);   // twice is fine
        Assert.Empty(env.AllocatedIps());
    }

    [Fact]
    public async Task Del_after_the_netns_is_gone_still_releases_the_address()
    {
        env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin());
        using var cni = env.Manager();
        var pod = env.NewPod();
        var result = await cni.SetUpAsync(pod, CancellationToken.None);
        Assert.Single(env.AllocatedIps());

        env.DeleteNamespace(pod);
        await cni.TearDownAsync(pod, CancellationToken.None);

        Assert.Empty(env.AllocatedIps());
        // The kernel removes the pair with the netns, but in a work queue after the last reference is gone: wait for it.
        string hostVeth = HostVeth(result);
        for (int i = 0; i < 100 && CniTestEnvironment.LinkExists(hostVeth); i++) await Task.Delay(50);
        Assert.False(CniTestEnvironment.LinkExists(hostVeth));
        Assert.False(File.Exists(cni.CacheEntryPath(pod.SandboxId)));
    }

    [Fact]
    public async Task Del_by_a_new_manager_uses_the_cached_config_after_the_config_file_is_gone()
    {
        string conf = env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin());
        var pod = env.NewPod();
        string ns = CniTestEnvironment.NamespaceName(pod);
        using (var before = env.Manager())
            await before.SetUpAsync(pod, CancellationToken.None);
        File.Delete(conf);

        using var after = env.Manager();          // a daemon restart
        Assert.False(after.Status.Ready);
        await after.TearDownAsync(pod, CancellationToken.None);

        Assert.Empty(env.AllocatedIps());
        Assert.False(CniTestEnvironment.LinkExists("eth0", ns));
        Assert.False(File.Exists(after.CacheEntryPath(pod.SandboxId)));
    }

    [Theory]
    [InlineData("1.0.0")]
    [InlineData("0.4.0")]
    public async Task Check_passes_on_a_healthy_pod_and_names_the_plugin_when_the_address_is_gone(string cniVersion)
    {
        env.WriteConfList("10-test.conflist", cniVersion, env.BridgePlugin());
        using var cni = env.Manager();
        var pod = env.NewPod();
        var result = await cni.SetUpAsync(pod, CancellationToken.None);
        Assert.Equal(cniVersion, (string)JsonNode.Parse(result.ResultJson)!["cniVersion"]!);
        try
        {
            await cni.CheckAsync(pod, CancellationToken.None);

            CniTestEnvironment.MustRun("ip", "-n", CniTestEnvironment.NamespaceName(pod), "addr", "del", result.Ips[0] + "/24", "dev", "eth0");
            var e = await Assert.ThrowsAsync<CniException>(() => cni.CheckAsync(pod, CancellationToken.None));
            Assert.Equal("bridge", e.Plugin);
            Assert.Contains("CHECK", e.Message);
        }
        finally
        {
            await cni.TearDownAsync(pod, CancellationToken.None);
        }
        Assert.Empty(env.AllocatedIps());
    }

    [Fact]
    public async Task Check_without_setup_says_there_is_no_cached_result()
    {
        env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin());
        using var cni = env.Manager();
        var pod = env.NewPod();
        var e = await Assert.ThrowsAsync<CniException>(() => cni.CheckAsync(pod, CancellationToken.None));
        Assert.Contains("no complete CNI result cached", e.Message);
    }

    [Fact]
    public async Task A_failing_plugin_later_in_the_chain_raises_its_error_and_everything_is_rolled_back()
    {
        env.WritePlugin("crt-fail", """
            cat >/dev/null
            [ "$CNI_COMMAND" = DEL ] && exit 0
            echo '{"cniVersion":"1.0.0","code":107,"msg":"cannot frobnicate","details":"the frob is missing"}'
            exit 1
            """);
        env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin(), new JsonObject { ["type"] = "crt-fail" });
        using var cni = env.Manager();
        var pod = env.NewPod();

        var e = await Assert.ThrowsAsync<CniException>(() => cni.SetUpAsync(pod, CancellationToken.None));

        Assert.Equal("crt-fail", e.Plugin);
        Assert.Equal(107, e.Code);
        Assert.Contains("cannot frobnicate: the frob is missing", e.Message);
        Assert.Contains(env.NetworkName, e.Message);
        Assert.Empty(env.AllocatedIps());
        Assert.False(CniTestEnvironment.LinkExists("eth0", CniTestEnvironment.NamespaceName(pod)));
        Assert.False(File.Exists(cni.CacheEntryPath(pod.SandboxId)));
    }

    [Fact]
    public async Task A_bad_ipam_config_fails_in_bridge_and_leaves_nothing()
    {
        var bridge = env.BridgePlugin();
        bridge["ipam"]!["ranges"] = new JsonArray(new JsonArray(new JsonObject { ["subnet"] = "not-a-subnet" }));
        env.WriteConfList("10-test.conflist", "1.0.0", bridge);
        using var cni = env.Manager();
        var pod = env.NewPod();

        var e = await Assert.ThrowsAsync<CniException>(() => cni.SetUpAsync(pod, CancellationToken.None));

        Assert.Equal("bridge", e.Plugin);
        Assert.Contains("not-a-subnet", e.Message);
        Assert.Empty(env.AllocatedIps());
        Assert.False(CniTestEnvironment.LinkExists("eth0", CniTestEnvironment.NamespaceName(pod)));
        Assert.False(File.Exists(cni.CacheEntryPath(pod.SandboxId)));
    }

    [Fact]
    public async Task A_plugin_missing_from_the_bin_dirs_makes_the_network_not_ready_and_setup_fail_naming_it()
    {
        env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin(), new JsonObject { ["type"] = "crt-no-such-plugin" });
        using var cni = env.Manager();

        var status = cni.Status;
        Assert.False(status.Ready);
        Assert.Equal("NetworkPluginNotReady", status.Reason);
        Assert.Contains("\"crt-no-such-plugin\" not found", status.Message);
        Assert.Contains("10-test.conflist", status.Message);

        var pod = env.NewPod();
        var e = await Assert.ThrowsAsync<CniException>(() => cni.SetUpAsync(pod, CancellationToken.None));
        Assert.Contains("crt-no-such-plugin", e.Message);
        Assert.Empty(env.AllocatedIps());
        Assert.False(File.Exists(cni.CacheEntryPath(pod.SandboxId)));
    }

    [Fact]
    public async Task A_hanging_plugin_is_killed_at_the_timeout_and_the_setup_rolled_back()
    {
        // A unique sleep length marks the plugin's child, to prove the whole process tree was killed.
        string marker = "3000." + Random.Shared.Next(100000, 999999);
        env.WritePlugin("crt-hang", $"""
            cat >/dev/null
            [ "$CNI_COMMAND" = DEL ] && exit 0
            sleep {marker}
            """);
        env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin(), new JsonObject { ["type"] = "crt-hang" });
        using var cni = env.Manager(TimeSpan.FromSeconds(1));
        var pod = env.NewPod();

        var clock = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<CniException>(() => cni.SetUpAsync(pod, CancellationToken.None));

        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(15));
        Assert.Equal("crt-hang", e.Plugin);
        Assert.Contains("timed out after 1s", e.Message);
        Assert.Empty(env.AllocatedIps());
        Assert.False(File.Exists(cni.CacheEntryPath(pod.SandboxId)));
        Assert.DoesNotContain(Directory.GetDirectories("/proc").Select(d =>
        {
            try { return File.ReadAllText(Path.Combine(d, "cmdline")); }
            catch (IOException) { return ""; }
        }), cmdline => cmdline.Contains(marker, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Cancelling_setup_kills_the_plugin_and_rolls_back()
    {
        env.WritePlugin("crt-hang", """
            cat >/dev/null
            [ "$CNI_COMMAND" = DEL ] && exit 0
            sleep 300
            """);
        env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin(), new JsonObject { ["type"] = "crt-hang" });
        using var cni = env.Manager();
        var pod = env.NewPod();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(2));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cni.SetUpAsync(pod, cancel.Token));

        Assert.Empty(env.AllocatedIps());
        Assert.False(CniTestEnvironment.LinkExists("eth0", CniTestEnvironment.NamespaceName(pod)));
        Assert.False(File.Exists(cni.CacheEntryPath(pod.SandboxId)));
    }

    [Fact]
    public async Task Plugins_get_cni_args_and_only_the_runtime_config_they_declare_and_del_gets_the_cached_result()
    {
        // Records what it was given and passes the previous result on, as a meta plugin does.
        env.WritePlugin("crt-record", $$"""
            cat > "{{env.Root}}/$CNI_COMMAND.stdin"
            env | grep '^CNI_' | sort > "{{env.Root}}/$CNI_COMMAND.env"
            [ "$CNI_COMMAND" = ADD ] && jq -c .prevResult "{{env.Root}}/ADD.stdin"
            exit 0
            """);
        var recorder = new JsonObject
        {
            ["type"] = "crt-record",
            ["capabilities"] = new JsonObject { ["portMappings"] = true, ["bandwidth"] = true, ["dns"] = false },
            ["runtimeConfig"] = new JsonObject { ["stale"] = true },
        };
        env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin(), recorder);
        using var cni = env.Manager();
        var pod = env.NewPod([new PodPortMapping("TCP", 80, 30080, null), new PodPortMapping("udp", 53, 30053, "127.0.0.1")]) with
        {
            Bandwidth = new PodBandwidth(1_000_000, 2_000_000, 3_000_000, 4_000_000),
            Dns = new PodDns(["10.0.0.10"], ["svc.cluster.local"], ["ndots:5"]),
        };

        var result = await cni.SetUpAsync(pod, CancellationToken.None);
        try
        {
            var add = JsonNode.Parse(File.ReadAllText(Path.Combine(env.Root, "ADD.stdin")))!;
            Assert.Equal(env.NetworkName, (string)add["name"]!);
            Assert.Equal("1.0.0", (string)add["cniVersion"]!);
            Assert.Equal(
                """{"bandwidth":{"ingressRate":1000000,"ingressBurst":2000000,"egressRate":3000000,"egressBurst":4000000},"portMappings":[{"hostPort":30080,"containerPort":80,"protocol":"tcp"},{"hostPort":30053,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}]}""",
                add["runtimeConfig"]!.ToJsonString());
            Assert.Equal(result.Ips[0] + "/24", (string)add["prevResult"]!["ips"]![0]!["address"]!);
            Assert.Equal(result.ResultJson, add["prevResult"]!.ToJsonString());

            var addEnv = File.ReadAllLines(Path.Combine(env.Root, "ADD.env"));
            Assert.Equal(
            [
                $"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.PodNamespace};K8S_POD_NAME={pod.PodName};K8S_POD_INFRA_CONTAINER_ID={pod.SandboxId};K8S_POD_UID={pod.PodUid}",
                "CNI_COMMAND=ADD",
                $"CNI_CONTAINERID={pod.SandboxId}",
                "CNI_IFNAME=eth0",
                $"CNI_NETNS={pod.NetnsPath}",
                $"CNI_PATH={env.BinDir}:{CniTestEnvironment.SystemPluginDir}",
            ], addEnv);
        }
        finally
        {
            await cni.TearDownAsync(pod, CancellationToken.None);
        }
        var del = JsonNode.Parse(File.ReadAllText(Path.Combine(env.Root, "DEL.stdin")))!;
        Assert.Equal(result.ResultJson, del["prevResult"]!.ToJsonString());
        Assert.Equal(2, del["runtimeConfig"]!["portMappings"]!.AsArray().Count);
        Assert.Empty(env.AllocatedIps());
    }

    [Fact]
    public async Task Pods_set_up_in_parallel_get_distinct_addresses()
    {
        env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin());
        using var cni = env.Manager();
        var pods = Enumerable.Range(0, 4).Select(_ => env.NewPod()).ToList();

        var results = await Task.WhenAll(pods.Select(p => cni.SetUpAsync(p, CancellationToken.None)));

        Assert.Equal(4, results.Select(r => r.Ips[0]).Distinct().Count());
        Assert.Equal(4, env.AllocatedIps().Count);
        await Task.WhenAll(pods.Select(p => cni.TearDownAsync(p, CancellationToken.None)));
        Assert.Empty(env.AllocatedIps());
    }

    [Fact]
    public async Task Portmap_forwards_a_loopback_host_port_into_the_pod_and_del_removes_its_rules()
    {
        // isGateway: the bridge needs an address so SNAT of 127.0.0.1 has a source the pod can answer.
        env.WriteConfList("10-test.conflist", "1.0.0", env.BridgePlugin(isGateway: true),
            new JsonObject { ["type"] = "portmap", ["snat"] = true, ["capabilities"] = new JsonObject { ["portMappings"] = true } });
        bool hostportChainsExisted = CniTestEnvironment.Run("iptables", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT").ExitCode == 0;
        string ipForward = File.ReadAllText("/proc/sys/net/ipv4/ip_forward");
        using var cni = env.Manager();
        int hostPort = FreeTcpPort();
        var pod = env.NewPod([new PodPortMapping("tcp", 8080, hostPort, "127.0.0.1")]);
        Process? listener = null;
        try
        {
            await cni.SetUpAsync(pod, CancellationToken.None);
            Assert.NotEmpty(env.IptablesRulesOf(pod.SandboxId));
            listener = Process.Start(new ProcessStartInfo("ip")
            {
                ArgumentList = { "netns", "exec", CniTestEnvironment.NamespaceName(pod), "/usr/bin/busybox", "sh", "-c", $"echo hello-{env.Id} | /usr/bin/busybox nc -l -p 8080" },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;

            string line = await ReadLineThroughHostPortAsync(hostPort, TimeSpan.FromSeconds(15));
            Assert.Equal($"hello-{env.Id}", line);

            await cni.TearDownAsync(pod, CancellationToken.None);
            Assert.Empty(env.IptablesRulesOf(pod.SandboxId));
            Assert.Empty(env.AllocatedIps());
        }
        finally
        {
            if (listener is { HasExited: false }) listener.Kill(entireProcessTree: true);
            listener?.Dispose();
            await cni.TearDownAsync(pod, CancellationToken.None);
            if (!hostportChainsExisted) RemoveEmptyHostportChains();
            File.WriteAllText("/proc/sys/net/ipv4/ip_forward", ipForward);
        }
    }

    private static async Task<string> ReadLineThroughHostPortAsync(int port, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                using var attempt = new CancellationTokenSource(TimeSpan.FromSeconds(3));
                await client.ConnectAsync(IPAddress.Loopback, port, attempt.Token);
                using var reader = new StreamReader(client.GetStream(), Encoding.ASCII);
                string? line = await reader.ReadLineAsync(attempt.Token);
                if (!string.IsNullOrEmpty(line)) return line;
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException && DateTime.UtcNow < deadline)
            {
                // The listener is not up yet: the DNAT'ed SYN was refused.
            }
            if (DateTime.UtcNow >= deadline) throw new TimeoutException($"nothing answered on 127.0.0.1:{port} within {within}");
            await Task.Delay(200);
        }
    }

    private static int FreeTcpPort()
    {
        // A port the host is not using; portmap then owns it through DNAT only, no socket is bound.
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>portmap creates shared top-level chains once per host and never removes them; remove them when
    /// this test created them and no other pod's rules are left in them.</summary>
    private static void RemoveEmptyHostportChains()
    {
        var rules = CniTestEnvironment.Run("iptables", "-t", "nat", "-S").Stdout.Split('\n');
        if (rules.Any(r => r.StartsWith("-A CNI-HOSTPORT-DNAT ", StringComparison.Ordinal))) return;
        foreach (var rule in rules.Where(r => r.StartsWith("-A ", StringComparison.Ordinal) && r.Contains("-j CNI-HOSTPORT-", StringComparison.Ordinal)))
            CniTestEnvironment.Run("sh", "-c", "iptables -t nat -D" + rule[2..]);
        foreach (var chain in new[] { "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ" })
        {
            CniTestEnvironment.Run("iptables", "-t", "nat", "-F", chain);
            CniTestEnvironment.Run("iptables", "-t", "nat", "-X", chain);
        }
    }

    private static string HostVeth(PodNetworkResult result) =>
        JsonNode.Parse(result.ResultJson)!["interfaces"]!.AsArray()
            .Select(i => i!.AsObject())
            .Single(i => ((string)i["name"]!).StartsWith("veth", StringComparison.Ordinal) && i["sandbox"] is null)["name"]!.GetValue<string>();
}
