using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>Pods with namespace_options.pid = POD (shareProcessNamespace): one PID namespace, catatonit as PID 1.</summary>
[Collection(RegistryCollection.Name)]
public sealed class SharedPidNamespaceTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task PodPidNamespace_ContainersSeeEachOther_AndCatatonitIsPid1()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("sharedpid", c => c.Linux.SecurityContext.NamespaceOptions.Pid = NamespaceMode.Pod);
        Assert.Equal(NamespaceMode.Pod, (await PodStatusAsync(pod.Id)).Status.Linux?.Namespaces?.Options?.Pid);
        string first = await CreateAndStartAsync(pod, "first", ["sleep", "31337"]);
        string second = await CreateAndStartAsync(pod, "second", ["sleep", "31338"]);

        Assert.Equal("catatonit\n", await ExecOkAsync(second, "cat", "/proc/1/comm"));
        Assert.Equal("catatonit\n", await ExecOkAsync(first, "cat", "/proc/1/comm"));
        await AssertSeesAsync(second, "sleep 31337");
        await AssertSeesAsync(first, "sleep 31338");

        // On the host: both containers' processes are in one PID namespace, which is not the host's.
        string firstNs = PidNamespace(await ContainerPidAsync(first));
        string secondNs = PidNamespace(await ContainerPidAsync(second));
        Assert.Equal(firstNs, secondNs);
        Assert.NotEqual(PidNamespace(Environment.ProcessId), firstNs);

        // The contrast: pid = CONTAINER gives each container its own namespace, with its own process as PID 1.
        var isolated = await RunPodAsync("privatepid");
        string alone = await CreateAndStartAsync(isolated, "alone", ["sleep", "31339"]);
        Assert.Equal("sleep\n", await ExecOkAsync(alone, "cat", "/proc/1/comm"));
        string ps = await ExecOkAsync(alone, "ps");
        Assert.False(ps.Contains("sleep 31337", StringComparison.Ordinal), $"a pid=CONTAINER container sees another pod's process:\n{ps}");
        Assert.NotEqual(firstNs, PidNamespace(await ContainerPidAsync(alone)));
    }

    private async Task AssertSeesAsync(string containerId, string commandLine)
    {
        string ps = "";
        bool seen = await EventuallyAsync(async () => (ps = await ExecOkAsync(containerId, "ps")).Contains(commandLine, StringComparison.Ordinal),
            TimeSpan.FromSeconds(10));
        Assert.True(seen, $"'{commandLine}' is not in ps of container {containerId} although the pod shares its PID namespace:\n{ps}");
    }

    /// <summary>"pid:[inode]" of the process's PID namespace.</summary>
    private static string PidNamespace(int pid) =>
        new FileInfo($"/proc/{pid}/ns/pid").LinkTarget ?? throw new InvalidOperationException($"/proc/{pid}/ns/pid is not a link");
}
