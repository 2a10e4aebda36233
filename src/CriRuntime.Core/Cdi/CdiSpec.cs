using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace CriRuntime.Cdi;

// The Container Device Interface spec file (github.com/cncf-tags/container-device-interface specs-go/config.go),
// the fields criruntime applies. Unknown fields are ignored, as the CDI library's JSON decoding ignores them.

/// <summary>One CDI spec file: the devices of one kind (vendor/class) and edits every one of them brings.</summary>
public sealed class CdiSpecFile
{
    public string? CdiVersion { get; set; }
    public string? Kind { get; set; }
    public Dictionary<string, string>? Annotations { get; set; }
    public List<CdiDevice>? Devices { get; set; }
    public CdiContainerEdits? ContainerEdits { get; set; }
}

public sealed class CdiDevice
{
    public string? Name { get; set; }
    public Dictionary<string, string>? Annotations { get; set; }
    public CdiContainerEdits? ContainerEdits { get; set; }
}

/// <summary>What a device (or its whole spec) changes in a container's OCI spec.</summary>
public sealed class CdiContainerEdits
{
    public List<string>? Env { get; set; }
    public List<CdiDeviceNode>? DeviceNodes { get; set; }
    public List<CdiHook>? Hooks { get; set; }
    public List<CdiMount>? Mounts { get; set; }
    public List<uint>? AdditionalGids { get; set; }
}

public sealed class CdiDeviceNode
{
    /// <summary>The path in the container.</summary>
    public string? Path { get; set; }

    /// <summary>The node on the host; the container path when absent.</summary>
    public string? HostPath { get; set; }

    /// <summary>"c", "u", "b" or "p"; read from the host node when absent.</summary>
    public string? Type { get; set; }

    public long? Major { get; set; }
    public long? Minor { get; set; }
    public uint? FileMode { get; set; }

    /// <summary>Device cgroup access, letters of "rwm"; "rwm" when absent.</summary>
    public string? Permissions { get; set; }

    public uint? Uid { get; set; }
    public uint? Gid { get; set; }
}

public sealed class CdiHook
{
    /// <summary>prestart, createRuntime, createContainer, startContainer, poststart or poststop.</summary>
    public string? HookName { get; set; }

    public string? Path { get; set; }
    public List<string>? Args { get; set; }
    public List<string>? Env { get; set; }
    public int? Timeout { get; set; }
}

public sealed class CdiMount
{
    public string? HostPath { get; set; }
    public string? ContainerPath { get; set; }
    public List<string>? Options { get; set; }
    public string? Type { get; set; }
}

/// <summary>
/// Reads a string field from a JSON string, or from a number or boolean as its text: YAML writes <c>cdiVersion: 1.0</c>
/// or a device <c>name: 0</c> unquoted, and the CDI library (sigs.k8s.io/yaml) reads those as the strings they look like.
/// </summary>
internal sealed class LenientStringConverter : JsonConverter<string>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.String => reader.GetString(),
        JsonTokenType.Number => Encoding.UTF8.GetString(reader.HasValueSequence ? System.Buffers.BuffersExtensions.ToArray(reader.ValueSequence) : reader.ValueSpan.ToArray()),
        JsonTokenType.True => "true",
        JsonTokenType.False => "false",
        JsonTokenType.Null => null,
        _ => throw new JsonException($"expected a string, found {reader.TokenType}"),
    };

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    NumberHandling = JsonNumberHandling.AllowReadingFromString,
    Converters = [typeof(LenientStringConverter)],
    // A spec is a small tree; a deeper one is not a spec.
    MaxDepth = 32)]
[JsonSerializable(typeof(CdiSpecFile))]
internal sealed partial class CdiJsonContext : JsonSerializerContext;
