using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>What a container can make the daemon deal with (issue #11): a tree deeper than PATH_MAX in its writable
/// layer, and ExecSync output bigger than one gRPC message.</summary>
[Collection(RegistryCollection.Name)]
public sealed class DeepTreeAndOutputTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task A_container_that_made_a_5000_level_tree_is_removed_by_RemoveContainer()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("deep-tree");
        // busybox's cd works with whole paths (stuck near PATH_MAX), so the depth is built from chains of 1000 levels
        // (2000-character paths) moved into one another: 5 chains, 5005 levels, every command on a short path.
        const string script = """
            mkdir /deep && cd /deep || exit 1
            p=d; i=1; while [ $i -lt 1000 ]; do p="$p/d"; i=$((i+1)); done
            for c in 1 2 3 4 5; do mkdir -p c$c/$p || exit 1; done
            for c in 4 3 2 1; do mv c$((c+1)) c$c/$p/ || exit 1; done
            echo made
            """;
        string id = await CreateAndStartAsync(pod, "maker", Sh(script));
        var status = await WaitForExitAsync(id, TimeSpan.FromSeconds(120));
        Assert.True(status.ExitCode == 0, $"the script failed ({status.ExitCode}): {await ReadLogAsync(status.LogPath)}");
        string containerDir = Path.Combine(Daemon.Root, "containers", id);
        Assert.True(Directory.Exists(containerDir));

        await RemoveContainerAsync(id);

        Assert.False(Directory.Exists(containerDir), $"{containerDir} is still there after RemoveContainer");
        Assert.False(Directory.Exists(Path.Combine(Daemon.State, "containers", id)));
        Assert.DoesNotContain("could not delete", Daemon.LogTail(200));
    }

    [Fact]
    public async Task ExecSync_output_over_16_MiB_is_truncated_not_RESOURCE_EXHAUSTED()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("big-output");
        string id = await CreateAndStartAsync(pod, "target", ["sleep", "3600"]);

        // 20 MiB on stdout and 1 MiB on stderr: more than one message may carry.
        var r = await ExecSyncAsync(id, Sh("head -c 20971520 /dev/zero; head -c 1048576 /dev/zero >&2; exit 3"), timeoutSeconds: 60);

        Assert.Equal(3, r.ExitCode);
        Assert.Equal(1048576, r.Stderr.Length);
        Assert.Equal(16 * 1024 * 1024 - 1024 - 1048576, r.Stdout.Length);
        Assert.True(r.CalculateSize() <= 16 * 1024 * 1024);

        // Output that fits is whole.
        var small = await ExecSyncAsync(id, Sh("head -c 5000000 /dev/zero"), timeoutSeconds: 60);
        Assert.Equal(5000000, small.Stdout.Length);
    }
}
