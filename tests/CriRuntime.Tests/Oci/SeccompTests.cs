using System.Text;
using System.Text.Json.Nodes;
using CriRuntime.Oci;
using CriRuntime.Oci.Spec;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Oci;

/// <summary>Seccomp filters enforced by the real runc and crun: the built-in RuntimeDefault and a Localhost profile file.</summary>
public sealed class SeccompTests
{
    public static TheoryData<string> Runtimes => new() { "runc", "crun" };

    private static Action<ContainerConfig> WithSeccomp(SecurityProfile profile) => c =>
        c.Linux = new LinuxContainerConfig { SecurityContext = new LinuxContainerSecurityContext { Seccomp = profile } };

    [Theory, MemberData(nameof(Runtimes))]
    public async Task RuntimeDefault_filters_namespace_creation_and_leaves_ordinary_work_alone(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string confined = ctx.NewId("default");
        await ctx.RunAsync(confined, WithSeccomp(new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.RuntimeDefault }), ["sleep", "100000"]);
        string unconfined = ctx.NewId("unconfined");
        await ctx.RunAsync(unconfined, WithSeccomp(new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Unconfined }), ["sleep", "100000"]);

        // Mode 2 is a BPF filter; 0 none.
        Assert.Equal("2", await SeccompModeAsync(ctx, confined));
        Assert.Equal("0", await SeccompModeAsync(ctx, unconfined));

        // A user namespace needs no capability, so only the filter stops it.
        var blocked = await ctx.Runtime.ExecSyncAsync(confined, ["busybox", "unshare", "-U", "true"], TimeSpan.FromSeconds(20), default);
        Assert.NotEqual(0, blocked.ExitCode);
        Assert.Contains("Operation not permitted", Encoding.UTF8.GetString(blocked.Stderr));
        var allowed = await ctx.Runtime.ExecSyncAsync(unconfined, ["busybox", "unshare", "-U", "true"], TimeSpan.FromSeconds(20), default);
        Assert.True(allowed.ExitCode == 0, "unshare -U without a filter: " + Encoding.UTF8.GetString(allowed.Stderr));

        // Forks, pipes, files, sockets and signals still work under the filter.
        var work = await ctx.Runtime.ExecSyncAsync(confined,
            ["sh", "-c", "echo data > /tmp/f && busybox cat /tmp/f | busybox wc -c && (sleep 0.1 &) && kill -0 $$ && echo done"],
            TimeSpan.FromSeconds(20), default);
        Assert.Equal("5\ndone\n", Encoding.UTF8.GetString(work.Stdout));
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task Localhost_profile_from_a_file_is_enforced(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string profilePath = Path.Combine(ctx.Base, "no-mkdir.json");
        await File.WriteAllTextAsync(profilePath, """
            {
              "defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [
                { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }
              ]
            }
            """);
        string id = ctx.NewId("localhost");
        await ctx.RunAsync(id, WithSeccomp(new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Localhost, LocalhostRef = profilePath }),
            ["sleep", "100000"]);

        var mkdir = await ctx.Runtime.ExecSyncAsync(id, ["busybox", "mkdir", "/tmp/denied"], TimeSpan.FromSeconds(20), default);
        Assert.NotEqual(0, mkdir.ExitCode);
        Assert.Contains("Permission denied", Encoding.UTF8.GetString(mkdir.Stderr)); // errno 13 from the profile
        var touch = await ctx.Runtime.ExecSyncAsync(id, ["busybox", "touch", "/tmp/allowed"], TimeSpan.FromSeconds(20), default);
        Assert.Equal(0, touch.ExitCode);
    }

    private static async Task<string> SeccompModeAsync(RuntimeTestContext ctx, string id)
    {
        var status = await ctx.Runtime.ExecSyncAsync(id, ["busybox", "grep", "^Seccomp:", "/proc/self/status"], TimeSpan.FromSeconds(20), default);
        Assert.Equal(0, status.ExitCode);
        return Encoding.UTF8.GetString(status.Stdout).Split(':')[1].Trim();
    }
}

/// <summary>How CRI security profiles become the spec's linux.seccomp: pure logic.</summary>
public sealed class SeccompProfileTests
{
    private static readonly string[] DefaultCaps = [.. RuntimeSpecBuilder.DefaultCapabilities];

    private static SecurityProfile Profile(SecurityProfile.Types.ProfileType type, string localhostRef = "") =>
        new() { ProfileType = type, LocalhostRef = localhostRef };

    private static HashSet<string> AllowedNames(SpecSeccomp profile) =>
        profile.Syscalls.Where(s => s.Action == SeccompProfiles.ActAllow && s.Args is null).SelectMany(s => s.Names).ToHashSet();

    [Fact]
    public void Runtime_default_denies_with_eperm_and_allows_ordinary_calls()
    {
        var profile = SeccompProfiles.RuntimeDefault(DefaultCaps);
        Assert.Equal("SCMP_ACT_ERRNO", profile.DefaultAction);
        Assert.Equal(1u, profile.DefaultErrnoRet);
        Assert.Contains("SCMP_ARCH_X86_64", profile.Architectures!);
        var allowed = AllowedNames(profile);
        Assert.Superset(new HashSet<string> { "read", "write", "openat", "execve", "futex", "epoll_wait", "socket", "chown", "setuid", "ptrace" }, allowed);
        // The default capability set has none of the capabilities these need.
        Assert.DoesNotContain("mount", allowed);
        Assert.DoesNotContain("unshare", allowed);
        Assert.DoesNotContain("setns", allowed);
        Assert.DoesNotContain("reboot", allowed);
        Assert.DoesNotContain("init_module", allowed);
        Assert.DoesNotContain("clone", allowed); // only the masked rule below
        Assert.DoesNotContain("clone3", allowed);
        var clone = Assert.Single(profile.Syscalls, s => s.Names.SequenceEqual(["clone"]));
        var arg = Assert.Single(clone.Args!);
        Assert.Equal("SCMP_CMP_MASKED_EQ", arg.Op);
        Assert.Equal(0x7E020000UL, arg.Value);
        Assert.Equal(0UL, arg.ValueTwo);
        var clone3 = Assert.Single(profile.Syscalls, s => s.Names.SequenceEqual(["clone3"]));
        Assert.Equal((SeccompProfiles.ActErrno, 38u), (clone3.Action, clone3.ErrnoRet!.Value));
    }

    [Fact]
    public void Capabilities_unlock_the_calls_they_stand_for()
    {
        var profile = SeccompProfiles.RuntimeDefault([.. DefaultCaps, "CAP_SYS_ADMIN", "CAP_SYS_TIME", "CAP_SYS_PTRACE"]);
        var allowed = AllowedNames(profile);
        Assert.Superset(new HashSet<string> { "mount", "unshare", "setns", "clone", "clone3", "settimeofday", "process_vm_readv" }, allowed);
        Assert.DoesNotContain(profile.Syscalls, s => s.Names.SequenceEqual(["clone"]) && s.Args is not null);
        Assert.DoesNotContain("reboot", allowed);
    }

    [Fact]
    public void No_profile_unconfined_and_privileged_run_without_a_filter()
    {
        Assert.Null(SeccompProfiles.ForContainer(null, null, privileged: false, DefaultCaps));
        Assert.Null(SeccompProfiles.ForContainer(null, "unconfined", privileged: false, DefaultCaps));
        Assert.Null(SeccompProfiles.ForContainer(Profile(SecurityProfile.Types.ProfileType.Unconfined), null, privileged: false, DefaultCaps));
        Assert.Null(SeccompProfiles.ForContainer(Profile(SecurityProfile.Types.ProfileType.RuntimeDefault), null, privileged: true, DefaultCaps));
        Assert.NotNull(SeccompProfiles.ForContainer(Profile(SecurityProfile.Types.ProfileType.RuntimeDefault), null, privileged: false, DefaultCaps));
        Assert.NotNull(SeccompProfiles.ForContainer(null, "runtime/default", privileged: false, DefaultCaps));
        Assert.NotNull(SeccompProfiles.ForContainer(null, "docker/default", privileged: false, DefaultCaps));
    }

    [Theory]
    [InlineData("relative/profile.json", "not an absolute path")]
    [InlineData("", "not an absolute path")]
    [InlineData("/no/such/profile.json", "cannot be read")]
    public void Unusable_localhost_refs_are_refused_naming_the_problem(string path, string problem)
    {
        var e = Assert.Throws<InvalidArgumentException>(() =>
            SeccompProfiles.ForContainer(Profile(SecurityProfile.Types.ProfileType.Localhost, path), null, privileged: false, DefaultCaps));
        Assert.Contains(problem, e.Message);
    }

    [Theory]
    [InlineData("{ not json", "not a valid seccomp profile")]
    [InlineData("[]", "not a JSON object")]
    [InlineData("{\"syscalls\": []}", "defaultAction is missing")]
    [InlineData("{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"mkdir\"]}]}", "has no action")]
    public void Broken_profile_files_are_refused_naming_the_file(string json, string problem)
    {
        string path = Path.Combine(Path.GetTempPath(), "criruntime-seccomp-" + Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(path, json);
        try
        {
            var e = Assert.Throws<InvalidArgumentException>(() => SeccompProfiles.Localhost(path, DefaultCaps));
            Assert.Contains(path, e.Message);
            Assert.Contains(problem, e.Message);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Legacy_profile_path_must_be_one_of_the_known_forms() =>
        Assert.Contains("localhost/<absolute path>",
            Assert.Throws<InvalidArgumentException>(() => SeccompProfiles.ForContainer(null, "bogus", privileged: false, DefaultCaps)).Message);

    [Fact]
    public void Docker_format_profiles_keep_rules_whose_includes_and_excludes_hold()
    {
        var profile = SeccompProfiles.ParseProfile("""
            {
              "defaultAction": "SCMP_ACT_ERRNO",
              "defaultErrnoRet": 1,
              "archMap": [
                { "architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] },
                { "architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"] }
              ],
              "syscalls": [
                { "names": ["read", "write"], "action": "SCMP_ACT_ALLOW" },
                { "name": "getpid", "action": "SCMP_ACT_ALLOW" },
                { "names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": { "caps": ["CAP_SYS_ADMIN"] } },
                { "names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": { "caps": ["CAP_SYS_ADMIN"] },
                  "args": [ { "index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ" } ] },
                { "names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": { "arches": ["amd64"] } },
                { "names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": { "arches": ["arm64"] } },
                { "names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": { "minKernel": "4.8" } },
                { "names": ["futuristic"], "action": "SCMP_ACT_ALLOW", "includes": { "minKernel": "99.0" } }
              ]
            }
            """, DefaultCaps);
        Assert.Equal(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], profile.Architectures!);
        Assert.Equal(1u, profile.DefaultErrnoRet);
        var names = profile.Syscalls.SelectMany(s => s.Names).ToList();
        Assert.Equal(["read", "write", "getpid", "clone", "arch_prctl", "ptrace"], names);
        var cloneArg = Assert.Single(profile.Syscalls.Single(s => s.Names[0] == "clone").Args!);
        Assert.Equal((0u, 2114060288UL, "SCMP_CMP_MASKED_EQ"), (cloneArg.Index, cloneArg.Value, cloneArg.Op));
    }

    [Fact]
    public void The_spec_carries_the_filter_in_oci_field_names()
    {
        var spec = new RuntimeSpec { Linux = new SpecLinux { Seccomp = SeccompProfiles.RuntimeDefault(DefaultCaps) } };
        var seccomp = JsonNode.Parse(spec.ToJson())!["linux"]!["seccomp"]!;
        Assert.Equal("SCMP_ACT_ERRNO", (string?)seccomp["defaultAction"]);
        Assert.Equal(1u, (uint?)seccomp["defaultErrnoRet"]);
        var clone = seccomp["syscalls"]!.AsArray().Single(s => (string?)s!["names"]![0] == "clone")!;
        Assert.Equal("SCMP_CMP_MASKED_EQ", (string?)clone["args"]![0]!["op"]);
        Assert.Equal(0UL, (ulong?)clone["args"]![0]!["valueTwo"]);
        var clone3 = seccomp["syscalls"]!.AsArray().Single(s => (string?)s!["names"]![0] == "clone3")!;
        Assert.Equal(38u, (uint?)clone3["errnoRet"]);
    }
}
