using System.Diagnostics;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// CheckpointContainer through the daemon's gRPC socket. The archive itself is not written yet (CRIU 3.17 fails
/// `criu check` on this project's kernel), so this covers the refusals: a bad location, an unknown or stopped container,
/// and on a node where CRIU cannot work, FAILED_PRECONDITION naming CRIU's error, with nothing left at the location and
/// the container still running.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class CheckpointContainerTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task Refusals_LocationContainerAndCriu_LeaveNothingAtTheLocation_AndTheContainerRunning()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("checkpoint");
        string running = await CreateAndStartAsync(pod, "running", ["sleep", "31340"]);
        string created = await CreateContainerAsync(pod.Id, pod.Config, "created", BusyboxImage, ["sleep", "31341"]);
        int pid = await ContainerPidAsync(running);

        string dir = Directory.CreateTempSubdirectory("criruntime-checkpoint-").FullName;
        try
        {
            string location = Path.Combine(dir, $"checkpoint-{pod.Config.Metadata.Name}_{PodNamespace}-running-{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ}.tar");

            await ExpectAsync(StatusCode.InvalidArgument, "not an absolute path", running, "checkpoint.tar");
            await ExpectAsync(StatusCode.InvalidArgument, "does not exist", running, Path.Combine(dir, "missing", "c.tar"));
            await ExpectAsync(StatusCode.InvalidArgument, "names a directory", running, dir);
            await ExpectAsync(StatusCode.InvalidArgument, "is empty", running, "");
            await ExpectAsync(StatusCode.InvalidArgument, "timeout -1 is negative", running, location, timeout: -1);
            await ExpectAsync(StatusCode.NotFound, "not found", "0123456789abcdef-no-such-container", location);
            await ExpectAsync(StatusCode.FailedPrecondition, "not RUNNING", created, location);

            // A well-formed request for a running container: what this node's CRIU allows decides the answer.
            string? criuProblem = CriuCheckProblem();
            Output.WriteLine($"criu check on this host: {criuProblem ?? "passes"}");
            if (criuProblem is not null)
                await ExpectAsync(StatusCode.FailedPrecondition, "criu", running, location, timeout: 60);
            else
                await ExpectAsync(StatusCode.Unimplemented, "does not write checkpoint archives yet", running, location, timeout: 60);

            Assert.False(File.Exists(location), $"a refused checkpoint left {location} behind");
            Assert.Empty(Directory.GetFileSystemEntries(dir));
            Assert.Equal(ContainerState.ContainerRunning, (await ContainerStatusAsync(running)).Status.State);
            Assert.True(HostState.ProcessExists(pid), $"the container's process {pid} is gone after CheckpointContainer");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private async Task ExpectAsync(StatusCode code, string messagePart, string containerId, string location, long timeout = 0)
    {
        var request = new CheckpointContainerRequest { ContainerId = containerId, Location = location, Timeout = timeout };
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            Runtime.CheckpointContainerAsync(request, deadline: DateTime.UtcNow.AddSeconds(90)).ResponseAsync);
        Output.WriteLine($"CheckpointContainer({containerId}, '{location}', {timeout}): {e.StatusCode}: {e.Status.Detail}");
        Assert.True(e.StatusCode == code, $"expected {code} for ({containerId}, '{location}', timeout {timeout}), got {e.StatusCode}: {e.Status.Detail}");
        Assert.Contains(messagePart, e.Status.Detail, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Null when `criu check` passes on this host; otherwise its output (criu not installed counts as a problem).</summary>
    private static string? CriuCheckProblem()
    {
        string? criu = new[] { "/usr/sbin/criu", "/usr/local/sbin/criu", "/sbin/criu", "/usr/bin/criu" }.FirstOrDefault(File.Exists);
        if (criu is null) return "criu is not installed";
        using var process = Process.Start(new ProcessStartInfo(criu, "check") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string stderr = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 ? null : stderr.Trim();
    }
}
