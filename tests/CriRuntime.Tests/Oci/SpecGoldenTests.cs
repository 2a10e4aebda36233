using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Oci;
using CriRuntime.Tests.Storage;
using Google.Protobuf;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Oci;

/// <summary>
/// The config.json bytes of a representative set of CRI inputs, compared with files produced by the spec builder
/// as it was before it became a list of spec options (issue #12). A change to any generated spec shows up here;
/// when a change is meant, regenerate with CRIRUNTIME_UPDATE_GOLDEN_SPECS=1 and review the diff of GoldenSpecs/.
/// Machine-dependent parts are pinned or normalised: the scratch directory becomes /GOLDEN, the capabilities
/// "ALL" grants are injected, swap support is given, privileged containers do not walk the host's /dev, and
/// oom_score_adj is checked against this process's floor and then written as requested.
/// </summary>
public sealed class SpecGoldenTests : IDisposable
{
    private const string Placeholder = "/GOLDEN";
    private readonly TempDir tmp = new();
    private readonly string rootfs;

    // A fixed grantable set: everything but CAP_SYS_RESOURCE, as on hosts that drop it.
    private static readonly IReadOnlyList<string> Grantable = RuntimeSpecBuilder.AllCapabilities.Where(c => c != "CAP_SYS_RESOURCE").ToList();

    public SpecGoldenTests()
    {
        rootfs = tmp["rootfs"];
        TestRootfs.Create(rootfs, extraGroups: "extra:x:3000:app,other\nwheel:x:10:root\n");
    }

    public void Dispose() => tmp.Dispose();

    public static TheoryData<string> CaseNames() => [.. ContainerCases.Concat(InfraCases)];

    private static readonly string[] ContainerCases =
    [
        "plain", "image-config", "privileged", "host-namespaces", "pod-namespaces", "run-as-user-group", "run-as-username",
        "readonly-rootfs", "caps-add-drop-ambient", "caps-add-all", "caps-drop-all", "seccomp-runtime-default",
        "seccomp-runtime-default-sys-admin", "seccomp-legacy-path", "seccomp-localhost", "seccomp-unconfined",
        "resources", "resources-no-swap", "devices-and-kubelet-paths", "mounts", "mounts-host-to-container", "sysctls",
    ];

    private static readonly string[] InfraCases = ["infra", "infra-host-namespaces"];

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Spec_json_is_byte_identical_to_the_golden_file(string name)
    {
        var (spec, requestedOom) = Build(name);
        // oom_score_adj is clamped to this process's own floor (no CAP_SYS_RESOURCE): check, then pin to the request.
        Assert.Equal(Math.Max(requestedOom, RuntimeSpecBuilder.OomScoreAdjFloor), spec.Process!.OomScoreAdj);
        spec.Process.OomScoreAdj = requestedOom;

        string actual = Encoding.UTF8.GetString(spec.ToUtf8Json()).Replace(Files.RealPath(tmp.Path), Placeholder).Replace(tmp.Path, Placeholder);
        string file = Path.Combine(GoldenDir(), name + ".json");
        if (Environment.GetEnvironmentVariable("CRIRUNTIME_UPDATE_GOLDEN_SPECS") == "1")
        {
            Directory.CreateDirectory(GoldenDir());
            File.WriteAllText(file, actual + "\n");
        }
        Assert.True(File.Exists(file), $"{file} is missing: run with CRIRUNTIME_UPDATE_GOLDEN_SPECS=1 to write it");
        string expected = File.ReadAllText(file).TrimEnd('\n');

        // The built-in seccomp profile and archMap follow the machine; the files were written on x86_64.
        if (RuntimeInformation.OSArchitecture != Architecture.X64)
            (expected, actual) = (WithoutSeccomp(expected), WithoutSeccomp(actual));
        if (expected != actual)
        {
            int at = Enumerable.Range(0, Math.Min(expected.Length, actual.Length)).FirstOrDefault(i => expected[i] != actual[i], Math.Min(expected.Length, actual.Length));
            string Around(string s) => s[Math.Max(0, at - 80)..Math.Min(s.Length, at + 80)];
            Assert.Fail($"{name}: spec differs from {file} at character {at}\nexpected: …{Around(expected)}…\nactual:   …{Around(actual)}…");
        }
    }

    [Fact]
    public void Every_golden_file_belongs_to_a_case()
    {
        var files = Directory.EnumerateFiles(GoldenDir(), "*.json").Select(f => Path.GetFileNameWithoutExtension(f)!).Order().ToList();
        Assert.Equal(ContainerCases.Concat(InfraCases).Order(), files);
    }

    private static string GoldenDir([CallerFilePath] string source = "") => Path.Combine(Path.GetDirectoryName(source)!, "GoldenSpecs");

    private static string WithoutSeccomp(string json)
    {
        var node = JsonNode.Parse(json)!;
        (node["linux"] as JsonObject)?.Remove("seccomp");
        return node.ToJsonString();
    }

    private (RuntimeSpec Spec, int RequestedOom) Build(string name)
    {
        if (name.StartsWith("infra", StringComparison.Ordinal))
        {
            string infra = tmp["infra"];
            var infraSpec = name == "infra"
                ? RuntimeSpecBuilder.BuildInfra(infra, "/run/netns/n1", "/run/ipcns/i1", "/run/utsns/u1", "/kubepods/podu1/infra", "pod-host")
                : RuntimeSpecBuilder.BuildInfra(infra, null, null, null, "/kubepods/podu1/infra", "pod-host");
            return (infraSpec, -998);
        }
        var input = ContainerInput(name);
        return (RuntimeSpecBuilder.BuildContainer(input), (int)(input.Config.Linux?.Resources?.OomScoreAdj ?? 0));
    }

    private static ContainerConfig Config(LinuxContainerSecurityContext? security = null, LinuxContainerResources? resources = null)
    {
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app", Attempt = 1 }, Command = { "sh" } };
        if (security is not null || resources is not null)
            config.Linux = new LinuxContainerConfig { SecurityContext = security, Resources = resources };
        return config;
    }

    private static PodSandboxConfig Pod(bool privileged = false) => new()
    {
        Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "u1" },
        Linux = privileged ? new LinuxPodSandboxConfig { SecurityContext = new LinuxSandboxSecurityContext { Privileged = true } } : null,
    };

    private static SecurityProfile Seccomp(SecurityProfile.Types.ProfileType type, string localhostRef = "") =>
        new() { ProfileType = type, LocalhostRef = localhostRef };

    private ContainerSpecInput Input(ContainerConfig config, PodSandboxConfig? pod = null, ImageRuntimeConfig? image = null) => new()
    {
        Id = "c1",
        Config = config,
        PodConfig = pod ?? Pod(),
        Image = image ?? new ImageRuntimeConfig(),
        RootfsPath = rootfs,
        PidMode = PidNamespaceMode.Container,
        CgroupsPath = "/kubepods/podu1/c1",
        Hostname = "h1",
        SwapLimitSupported = true,
        GrantableCapabilities = Grantable,
        // Pinned so the files do not depend on the build machine: the cgroup namespace and the LSMs have their own
        // tests (LsmSpecTests).
        CgroupV2 = false,
        Lsm = new FakeLsmHost(),
    };

    private ContainerSpecInput ContainerInput(string name)
    {
        switch (name)
        {
            case "plain":
                return Input(Config());
            case "image-config":
            {
                var config = Config();
                config.Command.Clear();
                config.Args.Add("--flag");
                config.WorkingDir = "/work";
                config.Tty = true;
                config.Stdin = true;
                config.Envs.Add(new KeyValue { Key = "A", Value = ByteString.CopyFromUtf8("cri") });
                config.Envs.Add(new KeyValue { Key = "B", Value = ByteString.CopyFromUtf8("") });
                config.Envs.Add(new KeyValue { Key = "C", Value = ByteString.CopyFromUtf8("x=y") });
                config.Annotations["example.com/container"] = "not copied";
                config.Labels["app"] = "not copied";
                var pod = Pod();
                pod.Annotations["example.com/pod"] = "not copied";
                var image = new ImageRuntimeConfig
                {
                    User = "app", Env = ["PATH=/image/bin", "A=image", "D=image"], Entrypoint = ["/entry", "-v"], Cmd = ["ignored"],
                    WorkingDir = "/image-dir",
                };
                return Input(config, pod, image) with { SandboxId = "sandbox-1", ImageName = "registry.example/app:1" };
            }
            case "privileged":
            {
                var config = Config(new LinuxContainerSecurityContext
                {
                    Privileged = true, NoNewPrivs = true, Seccomp = Seccomp(SecurityProfile.Types.ProfileType.RuntimeDefault),
                    MaskedPaths = { "/proc/x" },
                });
                config.Devices.Add(new Device { HostPath = "/dev/null", ContainerPath = "/dev/extra-null", Permissions = "rw" });
                return Input(config, Pod(privileged: true)) with { PrivilegedWithHostDevices = false };
            }
            case "host-namespaces":
                return Input(Config()) with { PidMode = PidNamespaceMode.Node };
            case "pod-namespaces":
                return Input(Config()) with
                {
                    NetworkNamespacePath = "/run/netns/n1", IpcNamespacePath = "/run/ipcns/i1", UtsNamespacePath = "/run/utsns/u1",
                    PidMode = PidNamespaceMode.Pod, PodPidNamespacePath = "/proc/42/ns/pid",
                };
            case "run-as-user-group":
            {
                var sc = new LinuxContainerSecurityContext { RunAsUser = new Int64Value { Value = 1000 }, RunAsGroup = new Int64Value { Value = 5 } };
                sc.SupplementalGroups.Add(7);
                sc.SupplementalGroups.Add(5);
                return Input(Config(sc), image: new ImageRuntimeConfig { User = "nobody" });
            }
            case "run-as-username":
                return Input(Config(new LinuxContainerSecurityContext { RunAsUsername = "app", RunAsGroup = new Int64Value { Value = 3000 } }));
            case "readonly-rootfs":
                return Input(Config(new LinuxContainerSecurityContext { ReadonlyRootfs = true })) with
                {
                    HostnameFile = PodFile("hostname"), HostsFile = PodFile("hosts"), ResolvConfFile = PodFile("resolv.conf"), ShmPath = PodDir("shm"),
                };
            case "caps-add-drop-ambient":
                return Input(Config(new LinuxContainerSecurityContext
                {
                    Capabilities = new Capability
                    {
                        AddCapabilities = { "NET_ADMIN", "CAP_SYS_TIME", "net_admin" }, DropCapabilities = { "chown", "KILL" },
                        AddAmbientCapabilities = { "NET_BIND_SERVICE", "SYS_ADMIN" },
                    },
                }));
            case "caps-add-all":
                return Input(Config(new LinuxContainerSecurityContext { Capabilities = new Capability { AddCapabilities = { "ALL" }, DropCapabilities = { "CHOWN" } } }));
            case "caps-drop-all":
                return Input(Config(new LinuxContainerSecurityContext { Capabilities = new Capability { DropCapabilities = { "ALL" }, AddCapabilities = { "NET_BIND_SERVICE" } } }));
            case "seccomp-runtime-default":
                return Input(Config(new LinuxContainerSecurityContext { Seccomp = Seccomp(SecurityProfile.Types.ProfileType.RuntimeDefault) }));
            case "seccomp-runtime-default-sys-admin":
                return Input(Config(new LinuxContainerSecurityContext
                {
                    Seccomp = Seccomp(SecurityProfile.Types.ProfileType.RuntimeDefault),
                    Capabilities = new Capability { AddCapabilities = { "SYS_ADMIN", "DAC_READ_SEARCH" } },
                }));
            case "seccomp-legacy-path":
#pragma warning disable CS0612 // the deprecated field is still sent by older kubelets
                return Input(Config(new LinuxContainerSecurityContext { SeccompProfilePath = "runtime/default" }));
#pragma warning restore CS0612
            case "seccomp-localhost":
            {
                string profile = tmp["profile.json"];
                File.WriteAllText(profile, """
                    {
                      "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                      "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                                  {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
                      "syscalls": [
                        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                        {"names": ["chown"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
                      ]
                    }
                    """);
                return Input(Config(new LinuxContainerSecurityContext { Seccomp = Seccomp(SecurityProfile.Types.ProfileType.Localhost, profile) }));
            }
            case "seccomp-unconfined":
                return Input(Config(new LinuxContainerSecurityContext { Seccomp = Seccomp(SecurityProfile.Types.ProfileType.Unconfined) }));
            case "resources":
                return Input(Config(resources: new LinuxContainerResources
                {
                    CpuShares = 256, CpuQuota = 20000, CpuPeriod = 100000, CpusetCpus = "0-1", CpusetMems = "0",
                    MemoryLimitInBytes = 1 << 26, MemorySwapLimitInBytes = 1 << 27, OomScoreAdj = 500,
                    HugepageLimits = { new HugepageLimit { PageSize = "2MB", Limit = 4096 }, new HugepageLimit { PageSize = "1GB", Limit = 0 } },
                    Unified = { ["memory.high"] = "50000000", ["pids.max"] = "100" },
                }));
            case "resources-no-swap":
                return Input(Config(resources: new LinuxContainerResources { MemoryLimitInBytes = 1 << 26, MemorySwapLimitInBytes = 1 << 27, CpuShares = 2 }))
                    with { SwapLimitSupported = false };
            case "devices-and-kubelet-paths":
            {
                // A directory of device nodes: one nested node, so the walk's order cannot depend on the file system.
                string devDir = PodDir("devs/sub");
                Files.Mknod(Path.Combine(devDir, "null-copy"), FileType.CharacterDevice, Oct.Parse("640"), 1, 3);
                var sc = new LinuxContainerSecurityContext { MaskedPaths = { "/proc/x", "/proc/z" }, ReadonlyPaths = { "/proc/y" } };
                var config = Config(sc);
                config.Devices.Add(new Device { HostPath = "/dev/null", ContainerPath = "/dev/mynull", Permissions = "rw" });
                config.Devices.Add(new Device { HostPath = "/dev/zero", ContainerPath = "/dev/zero", Permissions = "" });
                config.Devices.Add(new Device { HostPath = tmp["devs"], ContainerPath = "/dev/group" });
                return Input(config);
            }
            case "mounts":
            {
                string shared = SharedMount("shared");
                var config = Config();
                config.Mounts.Add(new Mount { ContainerPath = "/data/deep/x", HostPath = PodDir("a") });
                config.Mounts.Add(new Mount { ContainerPath = "/data", HostPath = tmp["created-by-builder/b"], Readonly = true });
                config.Mounts.Add(new Mount { ContainerPath = "/proc", HostPath = PodDir("a"), Propagation = MountPropagation.PropagationPrivate });
                config.Mounts.Add(new Mount { ContainerPath = "/bidi", HostPath = shared, Propagation = MountPropagation.PropagationBidirectional, SelinuxRelabel = true });
                config.Mounts.Add(new Mount { ContainerPath = "/slave/./y/../z", HostPath = shared, Propagation = MountPropagation.PropagationHostToContainer });
                config.Mounts.Add(new Mount { ContainerPath = "/etc/hosts", HostPath = PodFile("own-hosts"), SelinuxRelabel = true });
                return Input(config) with
                {
                    HostnameFile = PodFile("hostname"), HostsFile = PodFile("hosts"), ResolvConfFile = PodFile("resolv.conf"), ShmPath = PodDir("shm"),
                };
            }
            case "mounts-host-to-container":
            {
                var config = Config();
                config.Mounts.Add(new Mount { ContainerPath = "/dev", HostPath = PodDir("dev") });
                config.Mounts.Add(new Mount { ContainerPath = "/host", HostPath = SharedMount("shared2"), Propagation = MountPropagation.PropagationHostToContainer });
                return Input(config) with { ShmPath = PodDir("shm") };
            }
            case "sysctls":
            {
                var pod = Pod();
                pod.Linux = new LinuxPodSandboxConfig { Sysctls = { ["net.ipv4.ip_forward"] = "1", ["kernel.shm_rmid_forced"] = "1" } };
                return Input(Config(), pod);
            }
            default:
                throw new ArgumentException($"no golden case {name}");
        }
    }

    private string PodFile(string name)
    {
        File.WriteAllText(tmp[name], name);
        return tmp[name];
    }

    private string PodDir(string name) => Directory.CreateDirectory(tmp[name]).FullName;

    /// <summary>A tmpfs made a shared mount, as propagating binds need.</summary>
    private string SharedMount(string name)
    {
        string dir = PodDir(name);
        Mounts.Mount("tmpfs", dir, "tmpfs", MountFlags.None, "size=1m");
        Mounts.Mount(null, dir, null, MountFlags.Shared);
        return dir;
    }
}
