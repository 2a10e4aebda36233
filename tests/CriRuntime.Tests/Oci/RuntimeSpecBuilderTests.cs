using System.Text.Json;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Oci;
using CriRuntime.Tests.Storage;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Oci;

public sealed class RuntimeSpecBuilderTests : IDisposable
{
    private readonly TempDir tmp = new();
    private readonly string rootfs;

    public RuntimeSpecBuilderTests()
    {
        rootfs = tmp["rootfs"];
        TestRootfs.Create(rootfs, extraGroups: "extra:x:3000:app,other\nwheel:x:10:root\n");
    }

    public void Dispose() => tmp.Dispose();

    private ContainerSpecInput Input(ContainerConfig? config = null, ImageRuntimeConfig? image = null, PodSandboxConfig? pod = null) => new()
    {
        Id = "c1",
        Config = config ?? new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" } },
        PodConfig = pod ?? new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "u1" } },
        Image = image ?? new ImageRuntimeConfig(),
        RootfsPath = rootfs,
        PidMode = PidNamespaceMode.Container,
        CgroupsPath = "/kubepods/podu1/c1",
        Hostname = "h1",
        SwapLimitSupported = true,
    };

    private static ContainerConfig WithSecurity(LinuxContainerSecurityContext sc, params string[] command) =>
        new() { Metadata = new ContainerMetadata { Name = "app" }, Command = { command.Length > 0 ? command : ["sh"] }, Linux = new LinuxContainerConfig { SecurityContext = sc } };

    [Theory]
    // command, args, entrypoint, cmd => expected
    [InlineData("cmd1", "", "ep", "c", "cmd1")]
    [InlineData("cmd1", "a1", "ep", "c", "cmd1 a1")]
    [InlineData("", "a1 a2", "ep e2", "c", "ep e2 a1 a2")]
    [InlineData("", "", "ep", "c1 c2", "ep c1 c2")]
    [InlineData("", "", "", "c1", "c1")]
    [InlineData("", "a1", "", "c1", "a1")]
    public void Process_args_follow_containerd(string command, string args, string entrypoint, string cmd, string expected)
    {
        static string[] Split(string s) => s.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" } };
        config.Command.AddRange(Split(command));
        config.Args.AddRange(Split(args));
        var image = new ImageRuntimeConfig { Entrypoint = Split(entrypoint), Cmd = Split(cmd) };
        Assert.Equal(Split(expected), RuntimeSpecBuilder.BuildContainer(Input(config, image)).Process!.Args);
    }

    [Fact]
    public void No_command_anywhere_is_an_argument_error_and_an_empty_entrypoint_means_none()
    {
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" } };
        var e = Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(config, new ImageRuntimeConfig())));
        Assert.Contains("no command", e.Message);
        var image = new ImageRuntimeConfig { Entrypoint = [""], Cmd = ["run"] };
        Assert.Equal(["run"], RuntimeSpecBuilder.BuildContainer(Input(config, image)).Process!.Args);
    }

    [Fact]
    public void Env_image_first_then_cri_overrides_with_path_default_and_hostname()
    {
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" } };
        config.Envs.Add(new global::Runtime.V1.KeyValue { Key = "A", Value = Google.Protobuf.ByteString.CopyFromUtf8("cri") });
        config.Envs.Add(new global::Runtime.V1.KeyValue { Key = "C", Value = Google.Protobuf.ByteString.CopyFromUtf8("x=y") });
        var env = RuntimeSpecBuilder.BuildContainer(Input(config, new ImageRuntimeConfig { Env = ["A=image", "B=image"] })).Process!.Env;
        Assert.Equal([RuntimeSpecBuilder.DefaultPathEnv, "HOSTNAME=h1", "A=cri", "B=image", "C=x=y"], env);

        var imagePath = RuntimeSpecBuilder.BuildContainer(Input(config, new ImageRuntimeConfig { Env = ["PATH=/only", "HOSTNAME=img"] })).Process!.Env;
        Assert.Equal(["PATH=/only", "HOSTNAME=img", "A=cri", "C=x=y"], imagePath);
    }

    [Theory]
    [InlineData("/cri", "/img", "/cri")]
    [InlineData("", "/img", "/img")]
    [InlineData("", "", "/")]
    public void Cwd_from_cri_then_image_then_root(string criDir, string imageDir, string expected)
    {
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" }, WorkingDir = criDir };
        Assert.Equal(expected, RuntimeSpecBuilder.BuildContainer(Input(config, new ImageRuntimeConfig { WorkingDir = imageDir })).Process!.Cwd);
    }

    [Fact]
    public void User_from_image_name_resolves_uid_gid_and_group_membership()
    {
        var user = RuntimeSpecBuilder.BuildContainer(Input(image: new ImageRuntimeConfig { User = "app" })).Process!.User;
        Assert.Equal((1000u, 1000u), (user.Uid, user.Gid));
        Assert.Equal([1000u, 3000u], user.AdditionalGids!);

        var root = RuntimeSpecBuilder.BuildContainer(Input()).Process!.User;
        Assert.Equal((0u, 0u), (root.Uid, root.Gid));
        Assert.Equal([0u, 10u], root.AdditionalGids!);
    }

    [Fact]
    public void User_forms_uid_gid_names_and_unknown_uid()
    {
        var byIds = RuntimeSpecBuilder.BuildContainer(Input(image: new ImageRuntimeConfig { User = "1000:65534" })).Process!.User;
        Assert.Equal((1000u, 65534u), (byIds.Uid, byIds.Gid));
        Assert.Equal([65534u, 3000u], byIds.AdditionalGids!);

        var byNames = RuntimeSpecBuilder.BuildContainer(Input(image: new ImageRuntimeConfig { User = "app:extra" })).Process!.User;
        Assert.Equal((1000u, 3000u), (byNames.Uid, byNames.Gid));

        // A uid the image does not know gets gid 0, as with containerd.
        var unknown = RuntimeSpecBuilder.BuildContainer(Input(image: new ImageRuntimeConfig { User = "4242" })).Process!.User;
        Assert.Equal((4242u, 0u), (unknown.Uid, unknown.Gid));
        Assert.Equal([0u], unknown.AdditionalGids!);
    }

    [Fact]
    public void Unknown_user_or_group_name_is_an_argument_error_naming_it()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(image: new ImageRuntimeConfig { User = "ghost" })));
        Assert.Contains("'ghost'", e.Message);
        var g = Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(image: new ImageRuntimeConfig { User = "app:spooks" })));
        Assert.Contains("'spooks'", g.Message);
    }

    [Fact]
    public void Security_context_user_overrides_the_image_and_adds_supplemental_groups()
    {
        var sc = new LinuxContainerSecurityContext { RunAsUser = new Int64Value { Value = 1000 }, RunAsGroup = new Int64Value { Value = 5 } };
        sc.SupplementalGroups.Add(7);
        sc.SupplementalGroups.Add(5);
        var user = RuntimeSpecBuilder.BuildContainer(Input(WithSecurity(sc), new ImageRuntimeConfig { User = "nobody" })).Process!.User;
        Assert.Equal((1000u, 5u), (user.Uid, user.Gid));
        Assert.Equal([5u, 3000u, 7u], user.AdditionalGids!);

        var byName = RuntimeSpecBuilder.BuildContainer(Input(WithSecurity(new LinuxContainerSecurityContext { RunAsUsername = "app" }))).Process!.User;
        Assert.Equal(1000u, byName.Uid);

        var groupOnly = new LinuxContainerSecurityContext { RunAsGroup = new Int64Value { Value = 5 } };
        Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(WithSecurity(groupOnly))));
    }

    [Fact]
    public void Passwd_symlinked_out_of_the_rootfs_is_resolved_inside_it()
    {
        // etc/passwd -> ../../hostpasswd climbs out of the rootfs on the host, but inside the container
        // ".." stops at the root: the file is <rootfs>/hostpasswd, which does not exist.
        File.WriteAllText(tmp["hostpasswd"], "ghost:x:77:77::/:/bin/sh\n");
        File.Delete(Path.Combine(rootfs, "etc/passwd"));
        Files.Symlink("../../hostpasswd", Path.Combine(rootfs, "etc/passwd"));
        Assert.Null(RootfsPath.Resolve(rootfs, "/etc/passwd"));
        Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(image: new ImageRuntimeConfig { User = "ghost" })));

        File.WriteAllText(Path.Combine(rootfs, "hostpasswd"), "ghost:x:88:88::/:/bin/sh\n");
        Assert.Equal(Path.Combine(rootfs, "hostpasswd"), RootfsPath.Resolve(rootfs, "/etc/passwd"));
        Assert.Equal(88u, RuntimeSpecBuilder.BuildContainer(Input(image: new ImageRuntimeConfig { User = "ghost" })).Process!.User.Uid);
    }

    [Fact]
    public void Default_mounts_namespaces_capabilities_and_security_defaults()
    {
        var spec = RuntimeSpecBuilder.BuildContainer(Input());
        Assert.Equal(["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"], spec.Mounts.Select(m => m.Destination));
        Assert.Contains("ro", spec.Mounts.Single(m => m.Destination == "/sys").Options!);
        Assert.Contains("ro", spec.Mounts.Single(m => m.Destination == "/sys/fs/cgroup").Options!);
        Assert.Equal(RuntimeSpecBuilder.DefaultCapabilities, spec.Process!.Capabilities!.Bounding!);
        Assert.Equal(RuntimeSpecBuilder.DefaultCapabilities, spec.Process.Capabilities.Effective!);
        Assert.Null(spec.Process.Capabilities.Inheritable);
        Assert.Equal(RuntimeSpecBuilder.DefaultMaskedPaths, spec.Linux!.MaskedPaths!);
        Assert.Equal(RuntimeSpecBuilder.DefaultReadonlyPaths, spec.Linux.ReadonlyPaths!);
        Assert.Null(spec.Process.Rlimits);
        Assert.False(spec.Process.NoNewPrivileges);
        Assert.Null(spec.Hostname);
        Assert.Equal("/kubepods/podu1/c1", spec.Linux.CgroupsPath);
        Assert.Equal([("mount", null), ("pid", null)], spec.Linux.Namespaces.Select(n => (n.Type, n.Path)));
        var deviceRule = Assert.Single(spec.Linux.Resources!.Devices!);
        Assert.Equal((false, "rwm"), (deviceRule.Allow, deviceRule.Access));
        Assert.Equal("container", spec.Annotations![RuntimeSpecBuilder.ContainerTypeAnnotation]);
        Assert.Equal("app", spec.Annotations[RuntimeSpecBuilder.ContainerNameAnnotation]);
        Assert.Equal("ns", spec.Annotations[RuntimeSpecBuilder.SandboxNamespaceAnnotation]);
        Assert.Equal("u1", spec.Annotations[RuntimeSpecBuilder.SandboxUidAnnotation]);
    }

    [Fact]
    public void Namespaces_join_the_given_paths_and_follow_the_pid_mode()
    {
        var input = Input() with
        {
            NetworkNamespacePath = "/run/netns/n", IpcNamespacePath = "/run/ipcns/i", UtsNamespacePath = "/run/utsns/u",
            PidMode = PidNamespaceMode.Pod, PodPidNamespacePath = "/proc/42/ns/pid",
        };
        var ns = RuntimeSpecBuilder.BuildContainer(input).Linux!.Namespaces.ToDictionary(n => n.Type, n => n.Path);
        Assert.Equal(new Dictionary<string, string?>
        {
            ["mount"] = null, ["network"] = "/run/netns/n", ["ipc"] = "/run/ipcns/i", ["uts"] = "/run/utsns/u", ["pid"] = "/proc/42/ns/pid",
        }, ns);
        Assert.DoesNotContain(RuntimeSpecBuilder.BuildContainer(input with { PidMode = PidNamespaceMode.Node }).Linux!.Namespaces, n => n.Type == "pid");
        Assert.Throws<ArgumentException>(() => RuntimeSpecBuilder.BuildContainer(input with { PodPidNamespacePath = null }));
    }

    [Fact]
    public void Cri_mounts_are_rbinds_sorted_by_depth_with_readonly_and_created_host_paths()
    {
        string a = tmp["a"], b = tmp["missing/b"];
        Directory.CreateDirectory(a);
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" } };
        config.Mounts.Add(new Mount { ContainerPath = "/data/deep/x", HostPath = a });
        config.Mounts.Add(new Mount { ContainerPath = "/data", HostPath = b, Readonly = true });
        config.Mounts.Add(new Mount { ContainerPath = "/proc", HostPath = a, Propagation = MountPropagation.PropagationPrivate });
        var spec = RuntimeSpecBuilder.BuildContainer(Input(config) with { HostsFile = tmp["hosts"], ShmPath = tmp["shm"] });

        Assert.True(Directory.Exists(b)); // created, as containerd does for kubelet's hostPath volumes
        var binds = spec.Mounts.Where(m => m.Type == "bind").ToList();
        Assert.Equal(["/data", "/proc", "/etc/hosts", "/dev/shm", "/data/deep/x"], binds.Select(m => m.Destination));
        Assert.Equal(["rbind", "rprivate", "ro"], binds[0].Options!);
        Assert.Equal(["rbind", "rprivate", "rw"], binds[1].Options!);
        Assert.Equal(tmp["shm"], binds[3].Source);
        // The default /proc and /dev/shm mounts give way to the CRI/pod ones.
        Assert.Single(spec.Mounts, m => m.Destination == "/proc");
        Assert.Single(spec.Mounts, m => m.Destination == "/dev/shm");
        Assert.Null(spec.Linux!.RootfsPropagation);
    }

    [Fact]
    public void Container_own_etc_mounts_win_and_pod_files_follow_readonly_rootfs()
    {
        var sc = new LinuxContainerSecurityContext { ReadonlyRootfs = true };
        var config = WithSecurity(sc);
        config.Mounts.Add(new Mount { ContainerPath = "/etc/hosts", HostPath = tmp["mine"] });
        var spec = RuntimeSpecBuilder.BuildContainer(Input(config) with { HostsFile = tmp["pod-hosts"], HostnameFile = tmp["hostname"] });
        Assert.Equal(tmp["mine"], spec.Mounts.Single(m => m.Destination == "/etc/hosts").Source);
        Assert.Contains("ro", spec.Mounts.Single(m => m.Destination == "/etc/hostname").Options!);
        Assert.True(spec.Root!.Readonly);
    }

    [Fact]
    public void Propagation_needs_a_shared_or_slave_source_and_sets_rootfs_propagation()
    {
        string shared = tmp["shared"];
        Directory.CreateDirectory(shared);
        Mounts.Mount("tmpfs", shared, "tmpfs", MountFlags.None, "size=1m");
        Mounts.Mount(null, shared, null, MountFlags.Private);
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" } };
        config.Mounts.Add(new Mount { ContainerPath = "/x", HostPath = shared, Propagation = MountPropagation.PropagationBidirectional });
        var e = Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(config)));
        Assert.Contains("not a shared mount", e.Message);

        Mounts.Mount(null, shared, null, MountFlags.Shared);
        var spec = RuntimeSpecBuilder.BuildContainer(Input(config));
        Assert.Equal(["rbind", "rshared", "rw"], spec.Mounts.Single(m => m.Destination == "/x").Options!);
        Assert.Equal("rshared", spec.Linux!.RootfsPropagation);

        config.Mounts[0].Propagation = MountPropagation.PropagationHostToContainer;
        spec = RuntimeSpecBuilder.BuildContainer(Input(config));
        Assert.Equal(["rbind", "rslave", "rw"], spec.Mounts.Single(m => m.Destination == "/x").Options!);
        Assert.Equal("rslave", spec.Linux!.RootfsPropagation);
    }

    [Fact]
    public void Resources_map_to_oci_with_swap_equal_to_memory()
    {
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" },
            Linux = new LinuxContainerConfig
            {
                Resources = new LinuxContainerResources
                {
                    CpuShares = 256, CpuQuota = 20000, CpuPeriod = 100000, CpusetCpus = "0", CpusetMems = "0",
                    MemoryLimitInBytes = 1 << 26, OomScoreAdj = 900, HugepageLimits = { new HugepageLimit { PageSize = "2MB", Limit = 4096 } },
                },
            },
        };
        var spec = RuntimeSpecBuilder.BuildContainer(Input(config));
        var r = spec.Linux!.Resources!;
        Assert.Equal((256ul, 20000L, 100000ul, "0", "0"), (r.Cpu!.Shares!.Value, r.Cpu.Quota!.Value, r.Cpu.Period!.Value, r.Cpu.Cpus, r.Cpu.Mems));
        Assert.Equal((1L << 26, 1L << 26), (r.Memory!.Limit!.Value, r.Memory.Swap!.Value));
        Assert.Equal(("2MB", 4096ul), (r.HugepageLimits!.Single().PageSize, r.HugepageLimits!.Single().Limit));
        Assert.Equal(900, spec.Process!.OomScoreAdj);

        var noSwap = RuntimeSpecBuilder.BuildContainer(Input(config) with { SwapLimitSupported = false });
        Assert.Null(noSwap.Linux!.Resources!.Memory!.Swap);
        var none = RuntimeSpecBuilder.BuildContainer(Input()).Linux!.Resources!;
        Assert.Null(none.Cpu);
        Assert.Null(none.Memory);
    }

    [Fact]
    public void Capabilities_add_drop_and_all()
    {
        var sc = new LinuxContainerSecurityContext { Capabilities = new Capability { AddCapabilities = { "NET_ADMIN", "CAP_SYS_TIME" }, DropCapabilities = { "chown", "KILL" } } };
        var caps = RuntimeSpecBuilder.BuildContainer(Input(WithSecurity(sc))).Process!.Capabilities!.Bounding!;
        Assert.Contains("CAP_NET_ADMIN", caps);
        Assert.Contains("CAP_SYS_TIME", caps);
        Assert.DoesNotContain("CAP_CHOWN", caps);
        Assert.DoesNotContain("CAP_KILL", caps);

        var all = new LinuxContainerSecurityContext { Capabilities = new Capability { AddCapabilities = { "ALL" }, DropCapabilities = { "CHOWN" } } };
        var allCaps = RuntimeSpecBuilder.BuildContainer(Input(WithSecurity(all))).Process!.Capabilities!.Bounding!;
        Assert.Equal(RuntimeSpecBuilder.CurrentCapabilities().Where(c => c != "CAP_CHOWN"), allCaps);

        var none = new LinuxContainerSecurityContext { Capabilities = new Capability { DropCapabilities = { "ALL" }, AddCapabilities = { "NET_BIND_SERVICE" } } };
        Assert.Equal(["CAP_NET_BIND_SERVICE"], RuntimeSpecBuilder.BuildContainer(Input(WithSecurity(none))).Process!.Capabilities!.Bounding!);
    }

    /// <summary>
    /// "All" is what the daemon holds, as containerd's WithAllCurrentCapabilities: on a node whose bounding set lacks
    /// CAP_SYS_RESOURCE, asking runc for it fails the start ("unable to apply caps: operation not permitted").
    /// </summary>
    [Fact]
    public void Privileged_and_add_ALL_grant_the_daemons_current_capabilities_only()
    {
        var held = RuntimeSpecBuilder.AllCapabilities.Where(c => c != "CAP_SYS_RESOURCE").ToList();
        var pod = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p" }, Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { Privileged = true } } };

        var privileged = Input(WithSecurity(new LinuxContainerSecurityContext { Privileged = true }), pod: pod) with { GrantableCapabilities = held };
        var caps = RuntimeSpecBuilder.BuildContainer(privileged).Process!.Capabilities!;
        Assert.Equal(held, caps.Bounding!);
        Assert.Equal(held, caps.Effective!);
        Assert.Equal(held, caps.Permitted!);

        var addAll = Input(WithSecurity(new LinuxContainerSecurityContext { Capabilities = new Capability { AddCapabilities = { "all" }, DropCapabilities = { "NET_RAW" } } })) with { GrantableCapabilities = held };
        Assert.Equal(held.Where(c => c != "CAP_NET_RAW"), RuntimeSpecBuilder.BuildContainer(addAll).Process!.Capabilities!.Bounding!);
    }

    [Fact]
    public void Current_capabilities_are_the_known_ones_in_this_process_CapEff()
    {
        Assert.Equal(["CAP_CHOWN", "CAP_KILL", "CAP_CHECKPOINT_RESTORE"], RuntimeSpecBuilder.CapabilitiesIn((1UL << 0) | (1UL << 5) | (1UL << 40) | (1UL << 63)));
        Assert.Equal(RuntimeSpecBuilder.AllCapabilities.Where(c => c != "CAP_SYS_RESOURCE"), RuntimeSpecBuilder.CapabilitiesIn(0x000001fffeffffff));

        string status = File.ReadAllText("/proc/self/status");
        string capEff = status.Split('\n').Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal)).Split(':')[1].Trim();
        ulong mask = Convert.ToUInt64(capEff, 16);
        var expected = Enumerable.Range(0, RuntimeSpecBuilder.AllCapabilities.Count).Where(bit => (mask >> bit & 1) == 1).Select(bit => RuntimeSpecBuilder.AllCapabilities[bit]);
        Assert.Equal(expected, RuntimeSpecBuilder.CurrentCapabilities());
    }

    [Fact]
    public void Proc_status_capability_lines_parse_and_a_missing_one_is_an_error()
    {
        const string status = "Name:\tcriruntime\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n";
        Assert.Equal(0x000001fffeffffffUL, CriRuntime.Native.ProcessCapabilities.ParseStatusField(status, "CapEff"));
        Assert.Equal(0UL, CriRuntime.Native.ProcessCapabilities.ParseStatusField(status, "CapInh"));
        Assert.Throws<FormatException>(() => CriRuntime.Native.ProcessCapabilities.ParseStatusField(status, "CapAmb"));
        Assert.Throws<FormatException>(() => CriRuntime.Native.ProcessCapabilities.ParseStatusField("CapEff:\tzz\n", "CapEff"));
    }

    [Fact]
    public void Privileged_gets_all_caps_no_masks_rw_sys_and_needs_a_privileged_pod()
    {
        var sc = new LinuxContainerSecurityContext { Privileged = true, NoNewPrivs = true };
        Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(WithSecurity(sc))));
        var pod = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p" }, Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { Privileged = true } } };
        var spec = RuntimeSpecBuilder.BuildContainer(Input(WithSecurity(sc), pod: pod));
        Assert.Equal(RuntimeSpecBuilder.CurrentCapabilities(), spec.Process!.Capabilities!.Bounding!);
        Assert.Null(spec.Linux!.MaskedPaths);
        Assert.Null(spec.Linux.ReadonlyPaths);
        Assert.Contains("rw", spec.Mounts.Single(m => m.Destination == "/sys").Options!);
        Assert.True(spec.Linux.Resources!.Devices!.Single().Allow);
        Assert.Contains(spec.Linux.Devices!, d => d.Path == "/dev/null" && d.Type == "c" && d.Major == 1 && d.Minor == 3);
        Assert.True(spec.Process.NoNewPrivileges);
        Assert.Null(RuntimeSpecBuilder.BuildContainer(Input(WithSecurity(sc), pod: pod) with { PrivilegedWithHostDevices = false }).Linux!.Devices);
    }

    [Fact]
    public void Devices_sysctls_and_kubelet_masked_paths()
    {
        var sc = new LinuxContainerSecurityContext { MaskedPaths = { "/proc/x" }, ReadonlyPaths = { "/proc/y" } };
        var config = WithSecurity(sc);
        config.Devices.Add(new Device { HostPath = "/dev/null", ContainerPath = "/dev/mynull", Permissions = "rw" });
        var pod = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p" }, Linux = new LinuxPodSandboxConfig { Sysctls = { ["net.ipv4.ip_forward"] = "1" } } };
        var spec = RuntimeSpecBuilder.BuildContainer(Input(config, pod: pod));
        var dev = spec.Linux!.Devices!.Single();
        Assert.Equal(("/dev/mynull", "c", 1L, 3L), (dev.Path, dev.Type, dev.Major, dev.Minor));
        Assert.Contains(spec.Linux.Resources!.Devices!, d => d.Allow && d.Major == 1 && d.Minor == 3 && d.Access == "rw");
        Assert.Equal("1", spec.Linux.Sysctl!["net.ipv4.ip_forward"]);
        Assert.Equal(["/proc/x"], spec.Linux.MaskedPaths!);
        Assert.Equal(["/proc/y"], spec.Linux.ReadonlyPaths!);
        config.Devices[0].Permissions = "rwx";
        Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(config, pod: pod)));
    }

    [Fact]
    public void Json_is_camel_case_without_nulls_and_round_trips()
    {
        var spec = RuntimeSpecBuilder.BuildContainer(Input());
        spec.Linux!.Resources!.Memory = new SpecMemory { DisableOomKiller = true };
        string json = spec.ToJson();
        using var doc = JsonDocument.Parse(json);
        Assert.Equal("1.0.2", doc.RootElement.GetProperty("ociVersion").GetString());
        Assert.Equal("/kubepods/podu1/c1", doc.RootElement.GetProperty("linux").GetProperty("cgroupsPath").GetString());
        Assert.True(doc.RootElement.GetProperty("linux").GetProperty("resources").GetProperty("memory").GetProperty("disableOOMKiller").GetBoolean());
        Assert.False(doc.RootElement.TryGetProperty("hostname", out _));
        Assert.DoesNotContain("null", json);
        Assert.Equal(json, RuntimeSpec.FromJson(json).ToJson());
    }

    [Fact]
    public void Infra_spec_and_rootfs()
    {
        string infra = tmp["infra"];
        RuntimeSpecBuilder.PrepareInfraRootfs(infra);
        RuntimeSpecBuilder.PrepareInfraRootfs(infra); // again: no error
        Assert.True(File.Exists(Path.Combine(infra, "catatonit")));
        Assert.True(Directory.Exists(Path.Combine(infra, "proc")));
        Assert.Throws<FileNotFoundException>(() => RuntimeSpecBuilder.PrepareInfraRootfs(tmp["x"], "/no/catatonit"));

        var spec = RuntimeSpecBuilder.BuildInfra(infra, "/run/netns/n", null, "/run/utsns/u", "/kubepods/p/infra", "pod-host");
        Assert.Equal(["/catatonit", "-P"], spec.Process!.Args);
        Assert.Equal("pod-host", spec.Hostname);
        Assert.Empty(spec.Process.Capabilities!.Bounding!);
        Assert.True(spec.Root!.Readonly);
        Assert.Equal(["pid", "mount", "network", "uts"], spec.Linux!.Namespaces.Select(n => n.Type));
        Assert.Null(RuntimeSpecBuilder.BuildInfra(infra, null, null, null, "/c", "h").Hostname);

        string bundle = tmp["bundle"];
        RuntimeSpecBuilder.WriteBundle(bundle, spec);
        Assert.Equal(spec.ToJson(), File.ReadAllText(Path.Combine(bundle, "config.json")));
    }
}
