using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>Privileged and capabilities.add ["ALL"] on the real runtimes, on this node's capability bounding set.</summary>
[Collection(RegistryCollection.Name)]
public sealed class CapabilitiesTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    /// <summary>
    /// "All" is the daemon's own effective set, as under containerd: a node whose bounding set lacks a capability
    /// (many hardened nodes lack CAP_SYS_RESOURCE) still starts privileged and add-ALL containers, and they get exactly
    /// what the daemon holds. Asking runc for more fails with "unable to apply caps: operation not permitted".
    /// </summary>
    [Theory]
    [InlineData("runc")]
    [InlineData("crun")]
    public async Task PrivilegedAndAddAll_Run_WithTheDaemonsEffectiveCapabilities(string handler)
    {
        await StartPodDaemonAsync();
        string daemonCapEff = CapEff(File.ReadAllText($"/proc/{Daemon.ProcessId}/status"));
        var pod = await RunPodAsync($"caps-{handler}", c => c.Linux.SecurityContext.Privileged = true, handler);

        string privileged = await CreateAndStartAsync(pod, "privileged", ["sleep", "3600"], c => c.Linux.SecurityContext.Privileged = true);
        string addAll = await CreateAndStartAsync(pod, "add-all", ["sleep", "3600"],
            c => c.Linux.SecurityContext.Capabilities = new Capability { AddCapabilities = { "ALL" } });

        foreach (var (name, id) in new[] { ("privileged", privileged), ("add-all", addAll) })
        {
            Assert.Equal(ContainerState.ContainerRunning, (await ContainerStatusAsync(id)).Status.State);
            // Both the container's own process, seen from the node, and a process exec'd into it.
            string init = CapEff(File.ReadAllText($"/proc/{await ContainerPidAsync(id)}/status"));
            Assert.True(init == daemonCapEff, $"{name} ({handler}): CapEff of its process is {init}, the daemon's is {daemonCapEff}");
            string exec = (await ExecOkAsync(id, "busybox", "grep", "^CapEff:", "/proc/self/status")).Split(':')[1].Trim();
            Assert.True(exec == daemonCapEff, $"{name} ({handler}): CapEff inside is {exec}, the daemon's is {daemonCapEff}");
        }
    }

    private static string CapEff(string status) =>
        status.Split('\n').Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal)).Split(':')[1].Trim();
}
