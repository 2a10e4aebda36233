using System.Text.Json;
using System.Text.Json.Serialization;

namespace CriRuntime.Oci;

// A C# model of the OCI runtime spec (runtime-spec 1.0.2, Linux parts only): what goes into a
// bundle's config.json. Mutable on purpose: the builder fills it in step by step as containerd's
// SpecOpts do. Property names follow the spec's JSON names (camelCase, a few spelled out below).

public sealed class RuntimeSpec
{
    public const string Version = "1.0.2";

    public string OciVersion { get; set; } = Version;
    public SpecProcess? Process { get; set; }
    public SpecRoot? Root { get; set; }
    public string? Hostname { get; set; }
    public List<SpecMount> Mounts { get; set; } = [];
    public SpecHooks? Hooks { get; set; }
    public SpecLinux? Linux { get; set; }
    public Dictionary<string, string>? Annotations { get; set; }

    public string ToJson() => JsonSerializer.Serialize(this, RuntimeSpecJsonContext.Default.RuntimeSpec);

    public byte[] ToUtf8Json() => JsonSerializer.SerializeToUtf8Bytes(this, RuntimeSpecJsonContext.Default.RuntimeSpec);

    public static RuntimeSpec FromJson(string json) =>
        JsonSerializer.Deserialize(json, RuntimeSpecJsonContext.Default.RuntimeSpec)
        ?? throw new JsonException("runtime spec JSON is null");
}

public sealed class SpecProcess
{
    public bool Terminal { get; set; }
    public SpecUser User { get; set; } = new();
    public List<string> Args { get; set; } = [];
    public List<string> Env { get; set; } = [];
    public string Cwd { get; set; } = "/";
    public SpecCapabilities? Capabilities { get; set; }
    public List<SpecRlimit>? Rlimits { get; set; }
    public bool NoNewPrivileges { get; set; }
    public string? ApparmorProfile { get; set; }
    public int? OomScoreAdj { get; set; }
    public string? SelinuxLabel { get; set; }
}

public sealed class SpecUser
{
    public uint Uid { get; set; }
    public uint Gid { get; set; }
    public uint? Umask { get; set; }
    public List<uint>? AdditionalGids { get; set; }
}

public sealed class SpecCapabilities
{
    public List<string>? Bounding { get; set; }
    public List<string>? Effective { get; set; }
    public List<string>? Inheritable { get; set; }
    public List<string>? Permitted { get; set; }
    public List<string>? Ambient { get; set; }
}

public sealed class SpecRlimit
{
    public required string Type { get; set; }
    public ulong Hard { get; set; }
    public ulong Soft { get; set; }
}

public sealed class SpecRoot
{
    public required string Path { get; set; }
    public bool Readonly { get; set; }
}

public sealed class SpecMount
{
    public required string Destination { get; set; }
    public string? Type { get; set; }
    public string? Source { get; set; }
    public List<string>? Options { get; set; }
}

/// <summary>OCI hooks the runtime runs around the container's life (CDI devices bring them).</summary>
public sealed class SpecHooks
{
    public List<SpecHook>? Prestart { get; set; }
    public List<SpecHook>? CreateRuntime { get; set; }
    public List<SpecHook>? CreateContainer { get; set; }
    public List<SpecHook>? StartContainer { get; set; }
    public List<SpecHook>? Poststart { get; set; }
    public List<SpecHook>? Poststop { get; set; }
}

public sealed class SpecHook
{
    public required string Path { get; set; }
    public List<string>? Args { get; set; }
    public List<string>? Env { get; set; }
    public int? Timeout { get; set; }
}

public sealed class SpecLinux
{
    public Dictionary<string, string>? Sysctl { get; set; }
    public SpecLinuxResources? Resources { get; set; }
    public string? CgroupsPath { get; set; }
    public List<SpecNamespace> Namespaces { get; set; } = [];
    public List<SpecDevice>? Devices { get; set; }
    public string? RootfsPropagation { get; set; }
    public List<string>? MaskedPaths { get; set; }
    public List<string>? ReadonlyPaths { get; set; }
    public string? MountLabel { get; set; }
    public SpecSeccomp? Seccomp { get; set; }
}

/// <summary>linux.seccomp: the runtime compiles this into the container's BPF filter.</summary>
public sealed class SpecSeccomp
{
    public required string DefaultAction { get; set; }
    public uint? DefaultErrnoRet { get; set; }
    public List<string>? Architectures { get; set; }
    public List<string>? Flags { get; set; }
    public List<SpecSyscall> Syscalls { get; set; } = [];
}

public sealed class SpecSyscall
{
    public required List<string> Names { get; set; }
    public required string Action { get; set; }
    public uint? ErrnoRet { get; set; }
    public List<SpecSeccompArg>? Args { get; set; }
}

public sealed class SpecSeccompArg
{
    public uint Index { get; set; }
    public ulong Value { get; set; }
    public ulong ValueTwo { get; set; }
    public required string Op { get; set; }
}

public static class NamespaceTypes
{
    public const string Pid = "pid", Network = "network", Mount = "mount", Ipc = "ipc", Uts = "uts", User = "user", Cgroup = "cgroup";
}

public sealed class SpecNamespace
{
    public required string Type { get; set; }
    public string? Path { get; set; }
}

public sealed class SpecDevice
{
    public required string Type { get; set; }
    public required string Path { get; set; }
    public long Major { get; set; }
    public long Minor { get; set; }
    public uint? FileMode { get; set; }
    public uint? Uid { get; set; }
    public uint? Gid { get; set; }
}

public sealed class SpecLinuxResources
{
    public List<SpecDeviceCgroup>? Devices { get; set; }
    public SpecMemory? Memory { get; set; }
    public SpecCpu? Cpu { get; set; }
    public SpecPids? Pids { get; set; }
    public List<SpecHugepageLimit>? HugepageLimits { get; set; }
    public Dictionary<string, string>? Unified { get; set; }
}

public sealed class SpecDeviceCgroup
{
    public bool Allow { get; set; }
    public string? Type { get; set; }
    public long? Major { get; set; }
    public long? Minor { get; set; }
    public string? Access { get; set; }
}

public sealed class SpecMemory
{
    public long? Limit { get; set; }
    public long? Reservation { get; set; }
    public long? Swap { get; set; }
    public ulong? Swappiness { get; set; }
    [JsonPropertyName("disableOOMKiller")]
    public bool? DisableOomKiller { get; set; }
}

public sealed class SpecCpu
{
    public ulong? Shares { get; set; }
    public long? Quota { get; set; }
    public ulong? Period { get; set; }
    public string? Cpus { get; set; }
    public string? Mems { get; set; }
}

public sealed class SpecPids
{
    public long Limit { get; set; }
}

public sealed class SpecHugepageLimit
{
    public required string PageSize { get; set; }
    public ulong Limit { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RuntimeSpec))]
[JsonSerializable(typeof(SpecLinuxResources))]
[JsonSerializable(typeof(OciStateJson))]
internal sealed partial class RuntimeSpecJsonContext : JsonSerializerContext;

/// <summary>The output of <c>runtime state</c> (the fields we use).</summary>
internal sealed class OciStateJson
{
    public string? Id { get; set; }
    public string? Status { get; set; }
    public int Pid { get; set; }
    public string? Bundle { get; set; }
}
