using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>Version, Status (with the CNI config dir watched live), and the RPCs not implemented yet.</summary>
public sealed class RuntimeServiceTests(ITestOutputHelper output) : DaemonTest(output)
{
    [Fact]
    public async Task Version_NamesRuntimeAndApi()
    {
        var d = await StartDaemonAsync();
        var version = await d.Runtime.VersionAsync(new VersionRequest { Version = "0.1.0" }, deadline: Deadline());
        Assert.Equal("criruntime", version.RuntimeName);
        Assert.Equal("v1", version.RuntimeApiVersion);
        Assert.False(string.IsNullOrEmpty(version.RuntimeVersion), "runtime_version is empty");
    }

    [Fact]
    public async Task Status_NetworkReadyFollowsCniConfDirWithoutRestart()
    {
        string confDir = TempDir("criruntime-cni-");
        var d = await StartDaemonAsync($"[cni]\nconf_dir = \"{confDir}\"\n");

        var status = await StatusAsync(d);
        Assert.True(Condition(status, "RuntimeReady").Status, "RuntimeReady is false");
        var network = Condition(status, "NetworkReady");
        Assert.False(network.Status, "NetworkReady is true with an empty CNI config dir");
        Assert.Equal("NetworkPluginNotReady", network.Reason);
        Assert.False(string.IsNullOrEmpty(network.Message), "NetworkReady=false has no message");

        File.WriteAllText(Path.Combine(confDir, "10-test.conflist"), """
            {
              "cniVersion": "1.0.0",
              "name": "criruntime-test",
              "plugins": [ { "type": "loopback" } ]
            }
            """);

        var ready = Condition(await StatusAsync(d), "NetworkReady");
        Assert.True(ready.Status, $"NetworkReady is still false after adding a conflist: {ready.Reason}: {ready.Message}");
        Assert.True(Condition(await StatusAsync(d), "RuntimeReady").Status);

        // And back: an invalid config alone is not ready.
        File.Delete(Path.Combine(confDir, "10-test.conflist"));
        File.WriteAllText(Path.Combine(confDir, "10-broken.conflist"), "{ not json");
        var broken = Condition(await StatusAsync(d), "NetworkReady");
        Assert.False(broken.Status, "NetworkReady is true with only a broken conflist");
        Assert.Equal("NetworkPluginNotReady", broken.Reason);
    }

    [Fact]
    public async Task OtherRuntimeRpcs_AreUnimplemented()
    {
        var d = await StartDaemonAsync();
        var rt = d.Runtime;
        var calls = new (string Name, Func<Task> Call)[]
        {
            ("RunPodSandbox", async () => await rt.RunPodSandboxAsync(new RunPodSandboxRequest { Config = new PodSandboxConfig() }, deadline: Deadline())),
            ("StopPodSandbox", async () => await rt.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = "x" }, deadline: Deadline())),
            ("ListPodSandbox", async () => await rt.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: Deadline())),
            ("CreateContainer", async () => await rt.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = "x" }, deadline: Deadline())),
            ("ListContainers", async () => await rt.ListContainersAsync(new ListContainersRequest(), deadline: Deadline())),
            ("ContainerStatus", async () => await rt.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = "x" }, deadline: Deadline())),
            ("ExecSync", async () => await rt.ExecSyncAsync(new ExecSyncRequest { ContainerId = "x", Cmd = { "true" } }, deadline: Deadline())),
            ("Exec", async () => await rt.ExecAsync(new ExecRequest { ContainerId = "x", Cmd = { "sh" } }, deadline: Deadline())),
            ("ListContainerStats", async () => await rt.ListContainerStatsAsync(new ListContainerStatsRequest(), deadline: Deadline())),
        };
        var wrong = new List<string>();
        foreach (var (name, call) in calls)
        {
            try
            {
                await call();
                wrong.Add($"{name}: succeeded");
            }
            catch (RpcException e) when (e.StatusCode != StatusCode.Unimplemented)
            {
                wrong.Add($"{name}: {e.StatusCode}: {e.Status.Detail}");
            }
            catch (RpcException)
            {
            }
        }
        Assert.True(wrong.Count == 0, "expected Unimplemented:\n" + string.Join('\n', wrong) + "\n--- daemon log tail:\n" + d.LogTail());

        // The daemon is unharmed.
        Assert.Equal("criruntime", (await rt.VersionAsync(new VersionRequest(), deadline: Deadline())).RuntimeName);
    }

    private static async Task<StatusResponse> StatusAsync(DaemonProcess d)
    {
        try
        {
            return await d.Runtime.StatusAsync(new StatusRequest(), deadline: Deadline());
        }
        catch (RpcException e)
        {
            throw new Xunit.Sdk.XunitException($"Status failed: {e.StatusCode}: {e.Status.Detail}\n{d.LogTail()}");
        }
    }

    private static RuntimeCondition Condition(StatusResponse response, string type)
    {
        var matches = response.Status.Conditions.Where(c => c.Type == type).ToList();
        Assert.True(matches.Count == 1, $"Status has {matches.Count} {type} conditions: {response.Status}");
        return matches[0];
    }
}
