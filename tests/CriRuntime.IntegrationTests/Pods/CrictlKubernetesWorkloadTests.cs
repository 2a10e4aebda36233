using System.Text.Json;
using System.Text.Json.Nodes;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Issue #10 through stock crictl v1.26.1 (pod and container configs as JSON files, as people write them): a hostIPC pod
/// sees a file the node wrote in /dev/shm, a pod with its own network has the unprivileged port and ICMP sysctls, and a
/// container with namespace_options pid TARGET (3) sees its target's processes.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class CrictlKubernetesWorkloadTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private static readonly TimeSpan CrictlTimeout = TimeSpan.FromSeconds(120);

    private string configFile = "";
    private string? configDir;

    [Fact]
    public async Task Crictl_hostIPC_default_sysctls_and_pid_target()
    {
        await StartPodDaemonAsync();
        configFile = WriteFile("crictl.yaml",
            $"runtime-endpoint: unix://{Daemon.Socket}\nimage-endpoint: unix://{Daemon.Socket}\ntimeout: 60\ndebug: false\npull-image-on-create: false\n");
        string nodeFile = Path.Combine("/dev/shm", $"criruntime-crictl-{Guid.NewGuid():N}");
        File.WriteAllText(nodeFile, "from the node\n");
        try
        {
            // ---- hostIPC: namespace_options.ipc NODE (2)
            var (hostIpcPod, hostIpcJson) = await RunPodAsync("crictl-hostipc", ipc: 2);
            string shm = await CreateAndStartAsync(hostIpcPod, hostIpcJson, "shm", pid: 1);
            Assert.Equal("from the node", (await CrictlOkAsync("exec", "-s", shm, "cat", nodeFile)).Trim());

            // ---- default sysctls in a pod with its own network
            var (pod, podJson) = await RunPodAsync("crictl-target", ipc: 0);
            string app = await CreateAndStartAsync(pod, podJson, "app", pid: 1, command: ["sleep", "31342"]);
            Assert.Equal("0", (await CrictlOkAsync("exec", "-s", app, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")).Trim());
            Assert.Equal("0\t2147483647", (await CrictlOkAsync("exec", "-s", app, "cat", "/proc/sys/net/ipv4/ping_group_range")).Trim());

            // ---- namespace_options.pid TARGET (3) with target_id: the debug container sees the target's processes
            string debug = await CreateAndStartAsync(pod, podJson, "debugger", pid: 3, targetId: app);
            string ps = await CrictlOkAsync("exec", "-s", debug, "ps");
            Assert.True(ps.Contains("sleep 31342", StringComparison.Ordinal), $"crictl exec ps in the debug container does not show its target's process:\n{ps}");
            Assert.Equal("sleep", (await CrictlOkAsync("exec", "-s", debug, "cat", "/proc/1/comm")).Trim());
        }
        finally
        {
            File.Delete(nodeFile);
        }
    }

    private async Task<(string Id, string Json)> RunPodAsync(string name, int ipc)
    {
        var config = NewPodConfig(name);
        var json = new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = name, ["uid"] = config.Metadata.Uid, ["namespace"] = PodNamespace, ["attempt"] = 0 },
            ["hostname"] = name,
            ["log_directory"] = config.LogDirectory,
            ["linux"] = new JsonObject
            {
                ["cgroup_parent"] = config.Linux.CgroupParent,
                ["security_context"] = new JsonObject { ["namespace_options"] = new JsonObject { ["network"] = 0, ["pid"] = 1, ["ipc"] = ipc } },
            },
        };
        string file = WriteFile($"{name}.json", json.ToJsonString());
        TrackPod(config.Metadata.Uid);
        string id = (await CrictlOkAsync("runp", file)).Trim();
        TrackPod(config.Metadata.Uid, id);
        return (id, file);
    }

    private async Task<string> CreateAndStartAsync(string podId, string podJson, string name, int pid, string? targetId = null, string[]? command = null)
    {
        var namespaces = new JsonObject { ["network"] = 0, ["pid"] = pid, ["ipc"] = 0 };
        if (targetId is not null) namespaces["target_id"] = targetId;
        var json = new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = name, ["attempt"] = 0 },
            ["image"] = new JsonObject { ["image"] = BusyboxImage },
            ["command"] = new JsonArray((command ?? ["sleep", "3600"]).Select(c => (JsonNode?)c).ToArray()),
            ["linux"] = new JsonObject { ["security_context"] = new JsonObject { ["namespace_options"] = namespaces } },
        };
        string file = WriteFile($"{podId[..12]}-{name}.json", json.ToJsonString());
        string id = (await CrictlOkAsync("create", podId, file, podJson)).Trim();
        await CrictlOkAsync("start", id);
        return id;
    }

    private async Task<string> CrictlOkAsync(params string[] args)
    {
        var all = new List<string> { "--config", configFile, "--runtime-endpoint", $"unix://{Daemon.Socket}", "--image-endpoint", $"unix://{Daemon.Socket}", "--timeout", "60s" };
        all.AddRange(args);
        using var timeout = new CancellationTokenSource(CrictlTimeout);
        HostCommand.Result run;
        try
        {
            run = await HostCommand.RunAsync(StockCriTools.Crictl, all, cancellationToken: timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw Failure($"crictl {string.Join(' ', args)} did not finish within {CrictlTimeout}");
        }
        Output.WriteLine($"$ crictl {string.Join(' ', args)}  (exit {run.ExitCode})\n{run.Stdout.TrimEnd()}{(run.Stderr.Length > 0 ? "\nstderr: " + run.Stderr.TrimEnd() : "")}");
        if (run.ExitCode != 0) throw Failure($"crictl {string.Join(' ', args)} exited {run.ExitCode}\nstdout: {run.Stdout}\nstderr: {run.Stderr}");
        return run.Stdout;
    }

    private string WriteFile(string name, string text)
    {
        string dir = configDir ??= TempDir("criruntime-crictl-");
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, text);
        return path;
    }
}
