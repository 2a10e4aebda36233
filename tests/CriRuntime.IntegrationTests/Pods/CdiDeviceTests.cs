using System.Text.Json.Nodes;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// CDI devices through the real daemon, runc and the kernel: a spec dir of this test's own (one YAML and one JSON
/// spec) exposes /dev/zero and /dev/full as example.com/dev=zero and =full; a container asking for them by
/// CDI_devices or by a cdi.k8s.io/* annotation sees the nodes and the spec's environment; an unknown device is refused.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class CdiDeviceTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private const string ZeroSpecYaml = """
        cdiVersion: "0.6.0"
        kind: example.com/dev
        containerEdits:
          env: [CDI_SPEC=example]
        devices:
        - name: zero
          containerEdits:
            env: [CDI_ZERO=yes]
            deviceNodes:
            - path: /dev/cdi-zero
              hostPath: /dev/zero
        """;

    private const string FullSpecJson = """
        {"cdiVersion":"0.6.0","kind":"example.com/dev",
         "devices":[{"name":"full","containerEdits":{"env":["CDI_FULL=yes"],"deviceNodes":[{"path":"/dev/cdi-full","hostPath":"/dev/full","permissions":"rw"}]}}]}
        """;

    private async Task StartWithSpecsAsync()
    {
        string specDir = TempDir("criruntime-cdi-");
        await File.WriteAllTextAsync(Path.Combine(specDir, "zero.yaml"), ZeroSpecYaml);
        await File.WriteAllTextAsync(Path.Combine(specDir, "full.json"), FullSpecJson);
        await StartPodDaemonAsync($"\n[cdi]\nspec_dirs = [\"{TempDir("criruntime-cdi-empty-")}\", \"{specDir}\"]\n");
    }

    [Fact]
    public async Task Cdi_devices_and_annotations_give_the_container_the_spec_devices_and_an_unknown_device_is_refused()
    {
        await StartWithSpecsAsync();
        var pod = await RunPodAsync("cdi");

        string both = await CreateAndStartAsync(pod, "both", ["sleep", "3600"], c =>
        {
            c.CDIDevices.Add(new CDIDevice { Name = "example.com/dev=zero" });
            c.CDIDevices.Add(new CDIDevice { Name = "example.com/dev=full" });
        });
        // ls -l shows "major, minor" for a device node: /dev/zero is 1,5 and /dev/full is 1,7 on every Linux.
        string listing = await ExecOkAsync(both, "ls", "-l", "/dev/cdi-zero", "/dev/cdi-full");
        Assert.Matches(@"(?m)^c.*\b1,\s+5 .*/dev/cdi-zero$", listing);
        Assert.Matches(@"(?m)^c.*\b1,\s+7 .*/dev/cdi-full$", listing);
        Assert.Equal("0000", (await ExecOkAsync(both, "sh", "-c", "head -c 4 /dev/cdi-zero | od -An -tx1 | tr -d ' \\n' | head -c 4")).Trim());
        var full = await ExecSyncAsync(both, ["sh", "-c", "echo x > /dev/cdi-full"]);
        Assert.NotEqual(0, full.ExitCode);
        Assert.Contains("No space left on device", full.Stderr.ToStringUtf8());
        string env = await ExecOkAsync(both, "env");
        Assert.Contains("CDI_SPEC=example", env);
        Assert.Contains("CDI_ZERO=yes", env);
        Assert.Contains("CDI_FULL=yes", env);

        // The annotation form, as device plugins of older kubelets ask.
        string annotated = await CreateAndStartAsync(pod, "annotated", ["sleep", "3600"],
            c => c.Annotations.Add("cdi.k8s.io/test-plugin", "example.com/dev=full"));
        Assert.Matches(@"\b1,\s+7 ", await ExecOkAsync(annotated, "ls", "-l", "/dev/cdi-full"));
        var noZero = await ExecSyncAsync(annotated, ["ls", "/dev/cdi-zero"]);
        Assert.NotEqual(0, noZero.ExitCode);
        Assert.DoesNotContain("CDI_ZERO", await ExecOkAsync(annotated, "env"));

        // A container without CDI devices gets none of it.
        string plain = await CreateAndStartAsync(pod, "plain", ["sleep", "3600"]);
        Assert.NotEqual(0, (await ExecSyncAsync(plain, ["ls", "/dev/cdi-full"])).ExitCode);

        var unknown = NewContainerConfig(pod.Config, "unknown", BusyboxImage, ["sleep", "3600"]);
        unknown.CDIDevices.Add(new CDIDevice { Name = "example.com/dev=nosuch" });
        var e = await ExpectErrorAsync(StatusCode.NotFound, "CreateContainer(unknown CDI device)",
            dl => Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod.Id, Config = unknown, SandboxConfig = pod.Config }, deadline: dl));
        Assert.Contains("example.com/dev=nosuch", e.Status.Detail);

        var badName = NewContainerConfig(pod.Config, "badname", BusyboxImage, ["sleep", "3600"]);
        badName.Annotations.Add("cdi.k8s.io/x", "just-a-name");
        var bad = await ExpectErrorAsync(StatusCode.InvalidArgument, "CreateContainer(unqualified CDI name)",
            dl => Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = pod.Id, Config = badName, SandboxConfig = pod.Config }, deadline: dl));
        Assert.Contains("just-a-name", bad.Status.Detail);

        // Neither refusal left a container behind.
        Assert.Equal(3, (await ListContainersAsync(new ContainerFilter { PodSandboxId = pod.Id })).Count);
    }

    /// <summary>
    /// Stock crictl v1.26.1 predates CDI_devices (CRI 1.28), but it can send the annotation form: a container made by
    /// `crictl create` with a cdi.k8s.io annotation sees the device.
    /// </summary>
    [Fact]
    public async Task Stock_crictl_gets_a_cdi_device_through_the_annotation()
    {
        await StartWithSpecsAsync();
        string dir = TempDir("criruntime-crictl-cdi-");
        string crictlConfig = Path.Combine(dir, "crictl.yaml");
        await File.WriteAllTextAsync(crictlConfig, $"runtime-endpoint: unix://{Daemon.Socket}\nimage-endpoint: unix://{Daemon.Socket}\ntimeout: 60\n");
        async Task<string> Crictl(params string[] args)
        {
            var run = await HostCommand.RunAsync(StockCriTools.Crictl, ["--config", crictlConfig, "--timeout", "60s", .. args]);
            Output.WriteLine($"$ crictl {string.Join(' ', args)} (exit {run.ExitCode})\n{run.Stdout}{run.Stderr}");
            if (run.ExitCode != 0) throw Failure(run.ToString());
            return run.Stdout;
        }

        var podConfig = NewPodConfig("crictl-cdi");
        string podJson = Path.Combine(dir, "pod.json");
        await File.WriteAllTextAsync(podJson, new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = podConfig.Metadata.Name, ["uid"] = podConfig.Metadata.Uid, ["namespace"] = podConfig.Metadata.Namespace },
            ["log_directory"] = podConfig.LogDirectory,
            ["linux"] = new JsonObject { ["cgroup_parent"] = podConfig.Linux.CgroupParent },
        }.ToJsonString());
        TrackPod(podConfig.Metadata.Uid);
        string podId = (await Crictl("runp", podJson)).Trim();
        TrackPod(podConfig.Metadata.Uid, podId);

        Directory.CreateDirectory(Path.Combine(podConfig.LogDirectory, "app"));
        string containerJson = Path.Combine(dir, "container.json");
        await File.WriteAllTextAsync(containerJson, new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = "app" },
            ["image"] = new JsonObject { ["image"] = BusyboxImage },
            ["command"] = new JsonArray("sleep", "3600"),
            ["log_path"] = "app/0.log",
            ["annotations"] = new JsonObject { ["cdi.k8s.io/crictl"] = "example.com/dev=zero" },
        }.ToJsonString());
        string containerId = (await Crictl("create", podId, containerJson, podJson)).Trim();
        await Crictl("start", containerId);
        Assert.Matches(@"\b1,\s+5 .*/dev/cdi-zero", await Crictl("exec", containerId, "ls", "-l", "/dev/cdi-zero"));
        Assert.Contains("CDI_ZERO=yes", await Crictl("exec", containerId, "env"));

        await Crictl("stopp", podId);
        await Crictl("rmp", podId);
    }
}
