using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>Seccomp profiles as the kubelet sends them through CreateContainer, on the real runtime.</summary>
[Collection(RegistryCollection.Name)]
public sealed class SeccompTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task RuntimeDefaultIsEnforced_UnconfinedIsNot_ABadLocalhostRefIsInvalidArgumentAndLeavesNothing()
    {
        await StartPodDaemonAsync();
        // A pod sharing one PID namespace, so its catatonit infra process runs too (under the built-in filter).
        var pod = await RunPodAsync("seccomp", c => c.Linux.SecurityContext.NamespaceOptions.Pid = NamespaceMode.Pod);
        string confined = await CreateAndStartAsync(pod, "confined", ["sleep", "3600"],
            c => c.Linux.SecurityContext.Seccomp = new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.RuntimeDefault });
        string unconfined = await CreateAndStartAsync(pod, "unconfined", ["sleep", "3600"],
            c => c.Linux.SecurityContext.Seccomp = new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Unconfined });

        Assert.Equal("Seccomp:\t2\n", await ExecOkAsync(confined, "busybox", "grep", "^Seccomp:", "/proc/self/status"));
        Assert.Equal("Seccomp:\t0\n", await ExecOkAsync(unconfined, "busybox", "grep", "^Seccomp:", "/proc/self/status"));
        // PID 1 of the pod is catatonit.
        Assert.Equal("Seccomp:\t2\n", await ExecOkAsync(unconfined, "busybox", "grep", "^Seccomp:", "/proc/1/status"));
        var blocked = await ExecSyncAsync(confined, ["busybox", "unshare", "-U", "true"], timeoutSeconds: 10);
        Assert.NotEqual(0, blocked.ExitCode);
        Assert.Contains("Operation not permitted", blocked.Stderr.ToStringUtf8());

        var before = await ListContainersAsync();
        var bad = await ExpectErrorAsync(StatusCode.InvalidArgument, "CreateContainer(missing localhost profile)",
            dl => Runtime.CreateContainerAsync(new CreateContainerRequest
            {
                PodSandboxId = pod.Id,
                SandboxConfig = pod.Config,
                Config = WithProfile(NewContainerConfig(pod.Config, "badprofile", BusyboxImage, ["sleep", "3600"]),
                    new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Localhost, LocalhostRef = "/no/such/profile.json" }),
            }, deadline: dl));
        Assert.Contains("/no/such/profile.json", bad.Status.Detail);
        AssertIds(before.Select(c => c.Id), (await ListContainersAsync()).Select(c => c.Id), "containers after the refused create");

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [confined, unconfined], []);
    }

    private static ContainerConfig WithProfile(ContainerConfig config, SecurityProfile profile)
    {
        config.Linux.SecurityContext.Seccomp = profile;
        return config;
    }
}
