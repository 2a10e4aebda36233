using CriRuntime.Images;
using CriRuntime.Oci;
using CriRuntime.Oci.Spec;
using CriRuntime.Tests.Storage;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Oci;

/// <summary>
/// AppArmor and SELinux in the spec (issue #11, item 7) and the cgroup namespace (item 8). Neither LSM is enabled on the
/// build machines, so the host is a <see cref="FakeLsmHost"/>; the real host's probes and apparmor_parser are not run here.
/// </summary>
public sealed class LsmSpecTests : IDisposable
{
    private readonly TempDir tmp = new();
    private readonly string rootfs;

    public LsmSpecTests()
    {
        rootfs = tmp["rootfs"];
        TestRootfs.Create(rootfs);
    }

    public void Dispose() => tmp.Dispose();

    private ContainerSpecInput Input(LsmHost host, LinuxContainerSecurityContext? security = null, PodSandboxConfig? pod = null,
        bool cgroupV2 = true, IEnumerable<Mount>? mounts = null)
    {
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Command = { "sh" } };
        if (security is not null) config.Linux = new LinuxContainerConfig { SecurityContext = security };
        if (mounts is not null) config.Mounts.AddRange(mounts);
        pod ??= new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "u1" } };
        if (security?.Privileged == true) pod.Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { Privileged = true } };
        return new ContainerSpecInput
        {
            Id = "c1", Config = config, PodConfig = pod, Image = new ImageRuntimeConfig(), RootfsPath = rootfs,
            PidMode = PidNamespaceMode.Container, CgroupsPath = "/kubepods/podu1/c1", Hostname = "h1", SwapLimitSupported = true,
            GrantableCapabilities = RuntimeSpecBuilder.AllCapabilities, CgroupV2 = cgroupV2, Lsm = host,
        };
    }

    private static SecurityProfile Profile(SecurityProfile.Types.ProfileType type, string localhost = "") => new() { ProfileType = type, LocalhostRef = localhost };

    // --- AppArmor ---

    [Fact]
    public void With_AppArmor_no_profile_on_a_plain_container_loads_and_applies_the_default_once()
    {
        var host = new FakeLsmHost { AppArmor = true };
        var first = RuntimeSpecBuilder.BuildContainer(Input(host));
        var second = RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { Apparmor = Profile(SecurityProfile.Types.ProfileType.RuntimeDefault) }));
        Assert.Equal("criruntime-default", first.Process!.ApparmorProfile);
        Assert.Equal("criruntime-default", second.Process!.ApparmorProfile);
        var load = Assert.Single(host.Loads);
        Assert.Equal("criruntime-default", load.Name);
        Assert.Contains("profile criruntime-default flags=(attach_disconnected,mediate_deleted) {", load.Text);
    }

    [Fact]
    public void With_AppArmor_a_privileged_container_without_a_profile_and_an_unconfined_one_get_none()
    {
        var host = new FakeLsmHost { AppArmor = true };
        Assert.Null(RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { Privileged = true })).Process!.ApparmorProfile);
        Assert.Null(RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { Apparmor = Profile(SecurityProfile.Types.ProfileType.Unconfined) })).Process!.ApparmorProfile);
#pragma warning disable CS0612
        Assert.Null(RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { ApparmorProfile = "unconfined" })).Process!.ApparmorProfile);
#pragma warning restore CS0612
        Assert.Empty(host.Loads);
    }

    [Fact]
    public void With_AppArmor_a_privileged_container_that_asks_for_runtime_default_gets_it_as_in_containerd()
    {
        var host = new FakeLsmHost { AppArmor = true };
        var spec = RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { Privileged = true, Apparmor = Profile(SecurityProfile.Types.ProfileType.RuntimeDefault) }));
        Assert.Equal("criruntime-default", spec.Process!.ApparmorProfile);
    }

    [Fact]
    public void Localhost_applies_a_loaded_profile_and_refuses_one_that_is_not_loaded()
    {
        var host = new FakeLsmHost { AppArmor = true };
        host.Loaded.Add("my-profile");
        var spec = RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { Apparmor = Profile(SecurityProfile.Types.ProfileType.Localhost, "my-profile") }));
        Assert.Equal("my-profile", spec.Process!.ApparmorProfile);
#pragma warning disable CS0612
        var legacy = RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { ApparmorProfile = "localhost/my-profile" }));
#pragma warning restore CS0612
        Assert.Equal("my-profile", legacy.Process!.ApparmorProfile);

        var e = Assert.Throws<FailedPreconditionException>(() => RuntimeSpecBuilder.BuildContainer(
            Input(host, new LinuxContainerSecurityContext { Apparmor = Profile(SecurityProfile.Types.ProfileType.Localhost, "ghost") })));
        Assert.Contains("ghost", e.Message);
        Assert.Contains("not loaded", e.Message);
        Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(
            Input(host, new LinuxContainerSecurityContext { Apparmor = Profile(SecurityProfile.Types.ProfileType.Localhost, "") })));
        Assert.Empty(host.Loads);
    }

    [Theory]
    [InlineData("runtime-default", "")]
    [InlineData("localhost", "")]
    [InlineData("legacy", "runtime/default")]
    [InlineData("legacy", "localhost/x")]
    public void Without_AppArmor_any_profile_but_unconfined_is_refused_as_containerd_refuses_it(string kind, string legacy)
    {
        var host = new FakeLsmHost { AppArmor = false };
        var security = new LinuxContainerSecurityContext();
#pragma warning disable CS0612
        if (kind == "runtime-default") security.Apparmor = Profile(SecurityProfile.Types.ProfileType.RuntimeDefault);
        else if (kind == "localhost") security.Apparmor = Profile(SecurityProfile.Types.ProfileType.Localhost, "p");
        else security.ApparmorProfile = legacy;
#pragma warning restore CS0612
        var e = Assert.Throws<FailedPreconditionException>(() => RuntimeSpecBuilder.BuildContainer(Input(host, security)));
        Assert.StartsWith("apparmor is not supported", e.Message);
    }

    [Fact]
    public void Without_AppArmor_no_profile_or_unconfined_runs_without_one()
    {
        var host = new FakeLsmHost { AppArmor = false };
        Assert.Null(RuntimeSpecBuilder.BuildContainer(Input(host)).Process!.ApparmorProfile);
        Assert.Null(RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { Apparmor = Profile(SecurityProfile.Types.ProfileType.Unconfined) })).Process!.ApparmorProfile);
    }

    [Fact]
    public void A_malformed_legacy_profile_string_is_an_argument_error()
    {
#pragma warning disable CS0612
        var e = Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(
            Input(new FakeLsmHost { AppArmor = true }, new LinuxContainerSecurityContext { ApparmorProfile = "docker-default" })));
#pragma warning restore CS0612
        Assert.Contains("localhost/NAME", e.Message);
    }

    [Fact]
    public void The_generated_profile_denies_what_reaches_the_node_and_uses_the_hosts_includes()
    {
        string full = AppArmorProfile.Generate("criruntime-default", new AppArmorIncludes(true, true, true), "criruntime-daemon");
        Assert.StartsWith("#", full);
        Assert.Contains("abi <abi/3.0>,", full);
        Assert.Contains("#include <tunables/global>", full);
        Assert.Contains("  #include <abstractions/base>", full);
        Assert.DoesNotContain("@{PROC}=/proc/", full);
        foreach (string rule in new[]
        {
            "deny mount,", "deny @{PROC}/* w,", "deny @{PROC}/sysrq-trigger rwklx,", "deny @{PROC}/kcore rwklx,",
            "deny /sys/firmware/** rwklx,", "deny /sys/kernel/security/** rwklx,", "deny /sys/fs/cg[^r]*/** wklx,",
            "signal (receive) peer=criruntime-daemon,", "signal (send,receive) peer=criruntime-default,",
            "ptrace (trace,tracedby,read,readby) peer=criruntime-default,", "network,", "capability,", "file,", "umount,",
        })
            Assert.Contains("  " + rule + "\n", full);
        Assert.EndsWith("}\n", full);

        string bare = AppArmorProfile.Generate("x", new AppArmorIncludes(false, false, false), "unconfined");
        Assert.Contains("@{PROC}=/proc/\n", bare);
        Assert.DoesNotContain("#include", bare);
        Assert.DoesNotContain("abi <", bare);
    }

    [Theory]
    [InlineData("criruntime-default (enforce)\n", "criruntime-default")]
    [InlineData("my profile (complain)", "my profile")]
    [InlineData("unconfined\n", "unconfined")]
    [InlineData("", "unconfined")]
    [InlineData("/usr/bin/foo", "/usr/bin/foo")]
    public void Profile_names_are_read_as_the_kernel_lists_them(string line, string name) =>
        Assert.Equal(name, AppArmorProfile.ProfileNameOf(line));

    // --- SELinux ---

    [Fact]
    public void With_SELinux_the_options_become_the_process_and_mount_labels()
    {
        var host = new FakeLsmHost { Selinux = true };
        var spec = RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext
        {
            SelinuxOptions = new SELinuxOption { User = "user_u", Role = "role_r", Type = "type_t", Level = "s0:c1,c2" },
        }));
        Assert.Equal("user_u:role_r:type_t:s0:c1,c2", spec.Process!.SelinuxLabel);
        // The file label keeps the policy's object role and file type; user and level come from the options.
        Assert.Equal("user_u:object_r:container_file_t:s0:c1,c2", spec.Linux!.MountLabel);
    }

    [Fact]
    public void With_SELinux_a_container_without_options_takes_its_pods_and_missing_fields_are_the_defaults()
    {
        var host = new FakeLsmHost { Selinux = true };
        var pod = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "u1" },
            Linux = new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { SelinuxOptions = new SELinuxOption { Level = "s0:c5,c6" } } },
        };
        var spec = RuntimeSpecBuilder.BuildContainer(Input(host, pod: pod));
        Assert.Equal("system_u:system_r:container_t:s0:c5,c6", spec.Process!.SelinuxLabel);
        Assert.Equal("system_u:object_r:container_file_t:s0:c5,c6", spec.Linux!.MountLabel);
    }

    [Fact]
    public void With_SELinux_relabel_mounts_get_the_mount_label_and_others_are_left_alone()
    {
        var host = new FakeLsmHost { Selinux = true };
        string relabelled = tmp["vol-z"], plain = tmp["vol-plain"];
        Directory.CreateDirectory(relabelled);
        Directory.CreateDirectory(plain);
        RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { SelinuxOptions = new SELinuxOption { Level = "s0:c1,c2" } },
            mounts: [new Mount { HostPath = relabelled, ContainerPath = "/z", SelinuxRelabel = true }, new Mount { HostPath = plain, ContainerPath = "/p" }]));
        var relabel = Assert.Single(host.Relabels);
        Assert.Equal((relabelled, "system_u:object_r:container_file_t:s0:c1,c2"), relabel);
    }

    [Fact]
    public void Without_SELinux_the_options_and_relabels_are_ignored_and_noted()
    {
        var host = new FakeLsmHost { Selinux = false };
        string vol = tmp["vol"];
        Directory.CreateDirectory(vol);
        var spec = RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { SelinuxOptions = new SELinuxOption { Type = "spc_t" } },
            mounts: [new Mount { HostPath = vol, ContainerPath = "/v", SelinuxRelabel = true }]));
        Assert.Null(spec.Process!.SelinuxLabel);
        Assert.Null(spec.Linux!.MountLabel);
        Assert.Empty(host.Relabels);
        Assert.Equal(["c1"], host.IgnoredNotes);

        // Nothing asked, nothing noted.
        var quiet = new FakeLsmHost { Selinux = false };
        RuntimeSpecBuilder.BuildContainer(Input(quiet));
        Assert.Empty(quiet.IgnoredNotes);
    }

    [Fact]
    public void A_context_part_with_a_colon_or_newline_is_refused()
    {
        var host = new FakeLsmHost { Selinux = true };
        Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { SelinuxOptions = new SELinuxOption { Type = "a:b" } })));
        Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(host, new LinuxContainerSecurityContext { SelinuxOptions = new SELinuxOption { Level = "s0\nx" } })));
    }

    [Fact]
    public void Relabelling_a_system_directory_is_refused()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => SelinuxRelabel.Tree("/etc/", "system_u:object_r:container_file_t:s0"));
        Assert.Contains("/etc", e.Message);
        Assert.Throws<InvalidArgumentException>(() => SelinuxRelabel.Tree("/", "x"));
    }

    // --- cgroup namespace ---

    [Fact]
    public void On_cgroup_v2_a_plain_container_gets_a_cgroup_namespace_of_its_own()
    {
        var spec = RuntimeSpecBuilder.BuildContainer(Input(new FakeLsmHost()));
        var cgroupns = Assert.Single(spec.Linux!.Namespaces, n => n.Type == NamespaceTypes.Cgroup);
        Assert.Null(cgroupns.Path);
    }

    [Fact]
    public void Privileged_containers_and_cgroup_v1_hosts_keep_the_hosts_cgroup_namespace()
    {
        var privileged = RuntimeSpecBuilder.BuildContainer(Input(new FakeLsmHost(), new LinuxContainerSecurityContext { Privileged = true }));
        Assert.DoesNotContain(privileged.Linux!.Namespaces, n => n.Type == NamespaceTypes.Cgroup);
        var v1 = RuntimeSpecBuilder.BuildContainer(Input(new FakeLsmHost(), cgroupV2: false));
        Assert.DoesNotContain(v1.Linux!.Namespaces, n => n.Type == NamespaceTypes.Cgroup);
    }
}
