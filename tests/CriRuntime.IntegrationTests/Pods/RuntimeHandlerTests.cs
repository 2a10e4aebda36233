using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>RunPodSandbox.runtime_handler picks the OCI runtime; an unknown handler is refused.</summary>
[Collection(RegistryCollection.Name)]
public sealed class RuntimeHandlerTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public Task RuncHandler_RunsContainersUnderRunc() => RunsUnderAsync("runc", "/usr/sbin/runc");

    [Fact]
    public Task CrunHandler_RunsContainersUnderCrun() => RunsUnderAsync("crun", "/usr/bin/crun");

    [Fact]
    public async Task UnknownHandler_IsInvalidArgument_AndLeavesNothing()
    {
        await StartPodDaemonAsync();
        var config = NewPodConfig("handler-unknown");
        var error = await ExpectErrorAsync(StatusCode.InvalidArgument, "RunPodSandbox with runtime_handler \"no-such-handler\"",
            dl => Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config, RuntimeHandler = "no-such-handler" }, deadline: dl));
        Assert.Contains("no-such-handler", error.Status.Detail);
        AssertIds([], (await ListPodsAsync()).Select(p => p.Id), "ListPodSandbox after the refused pod");
        Assert.Empty(HostState.CgroupDirsAt(config.Linux.CgroupParent));
        Assert.Empty(Network.ReservedAddresses());

        // The refused metadata is free: the same pod with a known handler runs.
        var pod = await RunPodAsync(config, "runc");
        Assert.Equal(PodSandboxState.SandboxReady, (await PodStatusAsync(pod.Id)).Status.State);
    }

    private async Task RunsUnderAsync(string handler, string binary)
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync($"handler-{handler}", runtimeHandler: handler);
        Assert.Equal(handler, (await PodStatusAsync(pod.Id)).Status.RuntimeHandler);
        Assert.Equal(handler, (await ListPodsAsync(new PodSandboxFilter { Id = pod.Id })).Single().RuntimeHandler);

        string id = await CreateAndStartAsync(pod, "work", ["sleep", "3600"]);
        Assert.Equal(ContainerState.ContainerRunning, (await ContainerStatusAsync(id)).Status.State);
        Assert.Equal($"ran under {handler}\n", await ExecOkAsync(id, "echo", "ran under", handler));

        // The handler's own runtime knows the container: "<binary> --root R state <id>" answers "running" for the
        // state root R the daemon gave it (runc keeps R/<id>/state.json, crun R/<id>/status; neither reads the other's).
        var roots = RuntimeRootCandidates(id);
        var answers = new List<string>();
        foreach (var root in roots)
        {
            var run = await HostCommand.RunAsync(binary, ["--root", root, "state", id]);
            answers.Add($"{root}: {run}");
            if (run.ExitCode == 0 && run.Stdout.Contains("\"running\"", StringComparison.Ordinal)) return;
        }
        throw Failure($"{binary} does not know container {id} as running under any state root " +
            $"(directories named by the id under the daemon's dirs, /run/{handler}):\n{string.Join('\n', answers)}");
    }

    /// <summary>Parents of directories named <paramref name="containerId"/> under the daemon's root and state, plus the runtimes' defaults.</summary>
    private List<string> RuntimeRootCandidates(string containerId)
    {
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, MaxRecursionDepth = 8 };
        var roots = new List<string>();
        foreach (var dir in new[] { Daemon.State, Daemon.Root })
            if (Directory.Exists(dir))
                roots.AddRange(Directory.EnumerateDirectories(dir, containerId, options).Select(d => Path.GetDirectoryName(d)!));
        roots.Add("/run/runc");
        roots.Add("/run/crun");
        return roots.Distinct().ToList();
    }
}
