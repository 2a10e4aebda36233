using System.Diagnostics;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// CreateContainer requests that used to hang the call (and the pod's next create) or read without bound:
/// huge argv and cgroup values, a runtime with more error output than conmon's pipe holds, seccomp profiles
/// that are FIFOs or devices. Each must answer quickly with the right code and a bounded message.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class HostileRequestTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    /// <summary>Far below the kubelet's deadline: the old code answered these only when the client gave up.</summary>
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Oversized_fields_are_refused_before_anything_runs_and_the_pod_still_works()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("hostile");

        var argv = await CreateExpectingAsync(pod, StatusCode.InvalidArgument, "1 MiB command argument",
            c => c.Command[0] = new string('a', 1024 * 1024));
        Assert.Contains("config.command[0]", argv.Status.Detail);

        var cpuset = await CreateExpectingAsync(pod, StatusCode.InvalidArgument, "100,000-character cpuset",
            c => c.Linux.Resources.CpusetCpus = new string('a', 100_000));
        Assert.Contains("cpuset_cpus", cpuset.Status.Detail);

        var device = await CreateExpectingAsync(pod, StatusCode.InvalidArgument, "1 MB device container_path",
            c => c.Devices.Add(new Device { ContainerPath = "/dev/" + new string('d', 1024 * 1024), HostPath = "/dev/null", Permissions = "rwm" }));
        Assert.Contains("config.devices[0].container_path", device.Status.Detail);

        // Within the bound the runtime gets the value and fails on it; its error is answered, and cut. The list is well
        // formed (a malformed one is refused before the runtime, issue #13 item 8) but names 5,100 CPUs this node lacks.
        string absentCpus = string.Join(',', Enumerable.Range(10_000, 5_100));
        Assert.True(absentCpus.Length >= 30_000);
        var runtimeError = await CreateExpectingAsync(pod, StatusCode.Unknown, "30,000-character cpuset of absent CPUs",
            c => c.Linux.Resources.CpusetCpus = absentCpus);
        Assert.True(runtimeError.Status.Detail.Length < 8 * 1024, $"the error is {runtimeError.Status.Detail.Length} characters");

        string ok = await CreateContainerAsync(pod.Id, pod.Config, "fine", BusyboxImage, ["sleep", "3600"]);
        await StartContainerAsync(ok);

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [ok], []);
    }

    [Fact]
    public async Task A_runtime_that_writes_more_than_a_pipe_holds_fails_the_create_quickly_with_a_bounded_error()
    {
        // conmon reads `runtime create`'s output only once it has exited: this one writes 1 MiB of error first.
        string dir = TempDir("criruntime-loud-runtime-");
        string loud = Path.Combine(dir, "loud-runtime");
        File.WriteAllText(loud, """
            #!/bin/sh
            case " $* " in
              *" create "*) head -c 1048576 /dev/zero | tr '\0' 'e' >&2; exit 1 ;;
            esac
            exit 0
            """.Replace("\r", ""));
        File.SetUnixFileMode(loud, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        await StartPodDaemonAsync($"\n[runtime.handlers.loud]\npath = \"{loud}\"\n");
        var pod = await RunPodAsync("loud", runtimeHandler: "loud");

        var sw = Stopwatch.StartNew();
        var e = await CreateExpectingAsync(pod, StatusCode.Unknown, "create by a runtime with 1 MiB of error output", _ => { });
        Output.WriteLine($"answered in {sw.Elapsed}: {e.Status.Detail[..Math.Min(300, e.Status.Detail.Length)]}");
        Assert.True(e.Status.Detail.Length < 8 * 1024, $"the error is {e.Status.Detail.Length} characters");
        Assert.Contains("eeee", e.Status.Detail);

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [], []);
    }

    [Fact]
    public async Task Seccomp_localhost_refs_to_a_fifo_or_a_device_are_invalid_arguments()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("seccomp-fifo");
        string fifo = Path.Combine(TempDir("criruntime-seccomp-fifo-"), "profile.json");
        using (var mkfifo = Process.Start("mkfifo", [fifo]))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        foreach (string path in new[] { fifo, "/dev/zero" })
        {
            var e = await CreateExpectingAsync(pod, StatusCode.InvalidArgument, $"seccomp localhost_ref {path}",
                c => c.Linux.SecurityContext.Seccomp = new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Localhost, LocalhostRef = path });
            Assert.Contains(path, e.Status.Detail);
            Assert.Contains("not a regular file", e.Status.Detail);
        }

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [], []);
    }

    /// <summary>A busybox CreateContainer changed by <paramref name="configure"/> that must fail with <paramref name="expected"/> within <see cref="Quick"/>.</summary>
    private async Task<RpcException> CreateExpectingAsync(TestPod pod, StatusCode expected, string what, Action<ContainerConfig> configure)
    {
        var config = NewContainerConfig(pod.Config, "hostile", BusyboxImage, ["sleep", "3600"]);
        configure(config);
        var before = await ListContainersAsync();
        var sw = Stopwatch.StartNew();
        var e = await ExpectRpcErrorAsync(Daemon, expected, $"CreateContainer({what})", async () =>
            await Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod.Id, Config = config, SandboxConfig = pod.Config },
                deadline: DateTime.UtcNow + Quick));
        Output.WriteLine($"CreateContainer({what}): {e.StatusCode} after {sw.Elapsed.TotalSeconds:0.0}s");
        AssertIds(before.Select(c => c.Id), (await ListContainersAsync()).Select(c => c.Id), $"containers after the refused {what}");
        return e;
    }
}
