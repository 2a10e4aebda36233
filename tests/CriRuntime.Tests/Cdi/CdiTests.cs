using System.Text;
using CriRuntime.Cdi;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Oci;
using CriRuntime.Tests.Oci;
using CriRuntime.Tests.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Cdi;

/// <summary>CDI specs (JSON and YAML), names, the registry's directory rules, and the edits in the OCI spec.</summary>
public sealed class CdiTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    private const string DevYaml = """
        cdiVersion: "0.6.0"
        kind: example.com/dev
        containerEdits:
          env:
          - EXAMPLE_SPEC=1
        devices:
        - name: zero
          containerEdits:
            env: ["EXAMPLE_DEVICE=zero"]
            deviceNodes:
            - path: /dev/example-zero
              hostPath: /dev/zero
              permissions: rw
        - name: full
          containerEdits:
            deviceNodes:
            - path: /dev/example-full
              hostPath: /dev/full
              type: c
              major: 1
              minor: 7
              fileMode: 0640
            mounts:
            - hostPath: /etc/hostname
              containerPath: /etc/example-hostname
              options: [ro, rbind]
            hooks:
            - hookName: createContainer
              path: /bin/true
              args: ["true", "x"]
              timeout: 5
            additionalGids: [0, 4242]
        """;

    private CdiRegistry Registry(params string[] dirs) => new(dirs, NullLogger<CdiRegistry>.Instance);

    private string Dir(string name, params (string File, string Text)[] files)
    {
        string dir = tmp[name];
        Directory.CreateDirectory(dir);
        foreach (var (file, text) in files) File.WriteAllText(Path.Combine(dir, file), text);
        return dir;
    }

    private static CdiDeviceName N(string text) => CdiDeviceNames.Parse(text, "test");

    [Fact]
    public void A_yaml_spec_reads_as_its_json_form_would()
    {
        var spec = CdiRegistry.Parse(Encoding.UTF8.GetBytes(DevYaml), isJson: false);

        Assert.Equal("0.6.0", spec.CdiVersion);
        Assert.Equal("example.com/dev", spec.Kind);
        Assert.Equal(["EXAMPLE_SPEC=1"], spec.ContainerEdits!.Env!);
        var full = spec.Devices!.Single(d => d.Name == "full").ContainerEdits!;
        Assert.Equal(7, full.DeviceNodes![0].Minor);
        Assert.Equal(0x1A0u, full.DeviceNodes[0].FileMode); // YAML 1.1 octal 0640, as sigs.k8s.io/yaml reads it
        Assert.Equal(["ro", "rbind"], full.Mounts![0].Options!);
        Assert.Equal(5, full.Hooks![0].Timeout);
        Assert.Equal([0u, 4242u], full.AdditionalGids!);
    }

    [Fact]
    public void A_json_spec_and_unquoted_yaml_strings_read_too()
    {
        var json = CdiRegistry.Parse(Encoding.UTF8.GetBytes("""
            {"cdiVersion":"0.5.0","kind":"a.b/c","devices":[{"name":"0","containerEdits":{"env":["A=1"]}}],"unknownField":{"x":1}}
            """), isJson: true);
        Assert.Equal("0", json.Devices![0].Name);

        var yaml = CdiRegistry.Parse(Encoding.UTF8.GetBytes("cdiVersion: 1.0\nkind: a.b/c\ndevices:\n- name: 0\n  containerEdits: {env: [A=1]}\n"), isJson: false);
        Assert.Equal("1.0", yaml.CdiVersion);
        Assert.Equal("0", yaml.Devices![0].Name);
    }

    [Theory]
    [InlineData("cdiVersion: x\nkind: a.b/c\ndevices:\n- &d {name: x, containerEdits: {}}\n- *d\n", "anchor")]
    [InlineData("a: &x [1]\nb: *x\n", "anchor")]
    [InlineData("cdiVersion: x\nkind: nokind\ndevices: []\n", "vendor/class")]
    [InlineData("cdiVersion: x\nkind: a.b/c\ndevices: []\n", "no devices")]
    [InlineData("cdiVersion: x\nkind: a.b/c\ndevices:\n- {name: -bad, containerEdits: {}}\n", "must start and end")]
    [InlineData("cdiVersion: x\nkind: a.b/c\ndevices:\n- {name: d, containerEdits: {env: [NOEQUALS]}}\n", "KEY=VALUE")]
    [InlineData("cdiVersion: x\nkind: a.b/c\ndevices:\n- {name: d, containerEdits: {deviceNodes: [{path: rel}]}}\n", "absolute")]
    [InlineData("cdiVersion: x\nkind: a.b/c\ndevices:\n- {name: d, containerEdits: {hooks: [{hookName: later, path: /bin/true}]}}\n", "hook name")]
    [InlineData("cdiVersion: x\nkind: a.b/c\ndevices:\n- {name: d, containerEdits: {mounts: [{hostPath: /a, containerPath: /x/../y}]}}\n", "'..'")]
    [InlineData("---\na: 1\n---\nb: 2\n", "more than one")]
    [InlineData("a: [unclosed\n", "not valid YAML")]
    [InlineData("a: 1\na: 2\n", "repeats")]
    public void Bad_specs_are_refused_saying_why(string yaml, string why)
    {
        var e = Assert.ThrowsAny<Exception>(() => CdiRegistry.Parse(Encoding.UTF8.GetBytes(yaml), isJson: false));
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void Yaml_nesting_and_size_are_bounded()
    {
        string deep = new string('[', CdiYaml.MaxDepth + 5) + new string(']', CdiYaml.MaxDepth + 5);
        Assert.Contains("deeper", Assert.Throws<FormatException>(() => CdiYaml.ToJson(deep)).Message);
        string wide = "[" + string.Join(",", Enumerable.Repeat("1", CdiYaml.MaxNodes + 1)) + "]";
        Assert.Contains("more than", Assert.Throws<FormatException>(() => CdiYaml.ToJson(wide)).Message);
    }

    [Fact]
    public void Names_come_from_cdi_devices_then_annotations_once_each()
    {
        var config = new ContainerConfig();
        config.CDIDevices.Add(new CDIDevice { Name = "example.com/dev=zero" });
        config.Annotations.Add("cdi.k8s.io/b", "example.com/dev=full, example.com/dev=zero");
        config.Annotations.Add("cdi.k8s.io/a", "vendor.io/gpu=0");
        config.Annotations.Add("other", "x=y");

        Assert.Equal(["example.com/dev=zero", "vendor.io/gpu=0", "example.com/dev=full"],
            CdiDeviceNames.Requested(config).Select(n => n.ToString()));
    }

    [Theory]
    [InlineData("zero")]
    [InlineData("example.com=zero")]
    [InlineData("example.com/dev=")]
    [InlineData("example.com/dev=-x")]
    [InlineData("1example.com/dev=x")]
    [InlineData("example.com/d$v=x")]
    public void Names_that_are_not_fully_qualified_are_invalid_arguments(string name)
    {
        var config = new ContainerConfig();
        config.CDIDevices.Add(new CDIDevice { Name = name });
        Assert.Contains("CDI", Assert.Throws<InvalidArgumentException>(() => CdiDeviceNames.Requested(config)).Message);
        var annotated = new ContainerConfig();
        annotated.Annotations.Add("cdi.k8s.io/x", name);
        Assert.Contains("cdi.k8s.io/x", Assert.Throws<InvalidArgumentException>(() => CdiDeviceNames.Requested(annotated)).Message);
    }

    [Fact]
    public void The_registry_resolves_spec_edits_once_then_each_devices()
    {
        var registry = Registry(Dir("etc", ("dev.yaml", DevYaml)), tmp["absent"]);

        var resolved = registry.Resolve([N("example.com/dev=zero"), N("example.com/dev=full")]);

        Assert.Equal(3, resolved.Edits.Count);
        Assert.Equal(["EXAMPLE_SPEC=1"], resolved.Edits[0].Env!);
        Assert.Equal(["EXAMPLE_DEVICE=zero"], resolved.Edits[1].Env!);
        Assert.Same(CdiResolution.None, registry.Resolve([]));
    }

    [Fact]
    public void An_unknown_device_is_not_found_naming_it_and_skipped_specs()
    {
        var registry = Registry(Dir("etc", ("dev.yaml", DevYaml), ("broken.json", "{not json"), ("ignored.txt", "x")));

        var e = Assert.Throws<NotFoundException>(() => registry.Resolve([N("example.com/dev=zero"), N("example.com/dev=nope")]));

        Assert.Contains("example.com/dev=nope", e.Message);
        Assert.DoesNotContain("example.com/dev=zero,", e.Message);
        Assert.Contains("broken.json", e.Message);
        Assert.DoesNotContain("ignored.txt", e.Message);
    }

    [Fact]
    public void A_later_directory_overrides_and_a_same_directory_duplicate_conflicts()
    {
        const string other = """{"cdiVersion":"0.6.0","kind":"example.com/dev","devices":[{"name":"zero","containerEdits":{"env":["FROM=run"]}}]}""";
        var overriding = Registry(Dir("etc", ("dev.yaml", DevYaml)), Dir("run", ("dev.json", other)));
        Assert.Equal(["FROM=run"], overriding.Resolve([N("example.com/dev=zero")]).Edits.Single().Env!);

        var conflicting = Registry(Dir("both", ("a.yaml", DevYaml), ("b.json", other)));
        var e = Assert.Throws<NotFoundException>(() => conflicting.Resolve([N("example.com/dev=zero")]));
        Assert.Contains("defined twice", e.Message);
        // The device only one of them defines is unaffected.
        Assert.Equal(2, conflicting.Resolve([N("example.com/dev=full")]).Edits.Count);
    }

    [Fact]
    public void Oversized_specs_and_fifos_are_skipped()
    {
        string dir = Dir("etc", ("dev.yaml", DevYaml));
        File.WriteAllText(Path.Combine(dir, "huge.yaml"), new string('#', (int)CdiRegistry.MaxSpecBytes + 1));
        string fifo = Path.Combine(dir, "fifo.json");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", fifo)) mkfifo.WaitForExit();
        Assert.True(File.Exists(fifo));

        var e = Assert.Throws<NotFoundException>(() => Registry(dir).Resolve([N("example.com/dev=none")]));

        Assert.Contains("huge.yaml", e.Message);
        Assert.Contains("fifo.json", e.Message);
    }

    [Fact]
    public void Edits_land_in_the_oci_spec_with_host_device_numbers_filled_in()
    {
        var registry = Registry(Dir("etc", ("dev.yaml", DevYaml)));
        var edits = registry.Resolve([N("example.com/dev=zero"), N("example.com/dev=full")]).Edits;
        string rootfs = tmp["rootfs"];
        TestRootfs.Create(rootfs);
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" } };
        config.Envs.Add(new KeyValue { Key = "EXAMPLE_SPEC", Value = Google.Protobuf.ByteString.CopyFromUtf8("from-cri") });

        var spec = RuntimeSpecBuilder.BuildContainer(new ContainerSpecInput
        {
            Id = "c1", Config = config,
            PodConfig = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "u1" } },
            Image = new ImageRuntimeConfig(), RootfsPath = rootfs, PidMode = PidNamespaceMode.Container,
            CgroupsPath = "/kubepods/podu1/c1", Hostname = "h1", SwapLimitSupported = true, CdiEdits = edits,
        });

        Assert.Contains("EXAMPLE_SPEC=1", spec.Process!.Env);
        Assert.DoesNotContain("EXAMPLE_SPEC=from-cri", spec.Process.Env);
        Assert.Contains("EXAMPLE_DEVICE=zero", spec.Process.Env);
        var zeroStat = Files.Lstat("/dev/zero");
        var zero = spec.Linux!.Devices!.Single(d => d.Path == "/dev/example-zero");
        Assert.Equal(("c", (long)zeroStat.RDeviceMajor, (long)zeroStat.RDeviceMinor, (uint?)(uint)zeroStat.Permissions), (zero.Type, zero.Major, zero.Minor, zero.FileMode));
        var full = spec.Linux.Devices!.Single(d => d.Path == "/dev/example-full");
        Assert.Equal(("c", 1L, 7L, (uint?)0x1A0u), (full.Type, full.Major, full.Minor, full.FileMode));
        Assert.Contains(spec.Linux.Resources!.Devices!, r => r.Allow && r.Type == "c" && r.Major == zeroStat.RDeviceMajor && r.Minor == zeroStat.RDeviceMinor && r.Access == "rw");
        Assert.Contains(spec.Linux.Resources.Devices!, r => r.Allow && r.Type == "c" && r.Major == 1 && r.Minor == 7 && r.Access == "rwm");
        var mount = spec.Mounts.Single(m => m.Destination == "/etc/example-hostname");
        Assert.Equal(("/etc/hostname", "bind"), (mount.Source, mount.Type));
        Assert.Equal(["ro", "rbind"], mount.Options!);
        var hook = Assert.Single(spec.Hooks!.CreateContainer!);
        Assert.Equal(("/bin/true", 5), (hook.Path, hook.Timeout));
        Assert.Contains(4242u, spec.Process.User.AdditionalGids!);
        Assert.Contains("\"hooks\":{\"createContainer\":[{\"path\":\"/bin/true\"", spec.ToJson());
    }

    [Fact]
    public void A_device_node_whose_host_node_is_missing_is_not_found()
    {
        var spec = CdiRegistry.Parse(Encoding.UTF8.GetBytes("cdiVersion: x\nkind: a.b/c\ndevices:\n- {name: d, containerEdits: {deviceNodes: [{path: /dev/criruntime-test-absent}]}}\n"), isJson: false);
        string rootfs = tmp["rootfs2"];
        TestRootfs.Create(rootfs);
        var e = Assert.Throws<NotFoundException>(() => RuntimeSpecBuilder.BuildContainer(new ContainerSpecInput
        {
            Id = "c1", Config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" } },
            PodConfig = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "u1" } },
            Image = new ImageRuntimeConfig(), RootfsPath = rootfs, PidMode = PidNamespaceMode.Container,
            CgroupsPath = "/kubepods/podu1/c1", Hostname = "h1", SwapLimitSupported = true, CdiEdits = [spec.Devices![0].ContainerEdits!],
        }));
        Assert.Contains("/dev/criruntime-test-absent", e.Message);
    }
}

public sealed class CdiConfigTests
{
    [Fact]
    public void Spec_dirs_default_to_etc_and_var_run_and_can_be_set_or_emptied()
    {
        Assert.Equal(["/etc/cdi", "/var/run/cdi"], CriRuntime.Config.ConfigLoader.Parse("", "t").Cdi.SpecDirs);
        Assert.Equal(["/a", "/b"], CriRuntime.Config.ConfigLoader.Parse("[cdi]\nspec_dirs = [\"/a\", \"/b\"]\n", "t").Cdi.SpecDirs);
        Assert.Empty(CriRuntime.Config.ConfigLoader.Parse("[cdi]\nspec_dirs = []\n", "t").Cdi.SpecDirs);
        Assert.Contains("spec_dirs", CriRuntime.Config.DefaultConfig.Render(new CriRuntime.Config.CriRuntimeConfig()));
    }
}
