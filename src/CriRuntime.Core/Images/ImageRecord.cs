using System.Text.Json.Serialization;
using CriRuntime.Content;

namespace CriRuntime.Images;

/// <summary>
/// One image as the node knows it. The id is the config digest (what kubelet and crictl call the
/// image id); tags and repo digests are the references that name it.
/// </summary>
public sealed record ImageRecord
{
    public required Digest Id { get; init; }
    public required IReadOnlyList<string> RepoTags { get; init; }
    public required IReadOnlyList<string> RepoDigests { get; init; }

    /// <summary>The platform manifest that was unpacked (not the index).</summary>
    public required Digest ManifestDigest { get; init; }

    /// <summary>Chain ids of the layers, bottom first: the overlay lower dirs.</summary>
    public required IReadOnlyList<Digest> ChainIds { get; init; }

    /// <summary>Unpacked size of all layers, in bytes.</summary>
    public required long Size { get; init; }

    public required string Platform { get; init; }
    public required DateTimeOffset PulledAt { get; init; }
    public required ImageRuntimeConfig Config { get; init; }

    /// <summary>Blobs kept for this image (index, manifest, config) so they are freed with it.</summary>
    public required IReadOnlyList<Digest> Blobs { get; init; }
}

/// <summary>The parts of an image config that running a container needs.</summary>
public sealed record ImageRuntimeConfig
{
    public string? User { get; init; }
    public IReadOnlyList<string> Env { get; init; } = [];
    public IReadOnlyList<string>? Entrypoint { get; init; }
    public IReadOnlyList<string>? Cmd { get; init; }
    public string? WorkingDir { get; init; }
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();
    public string? StopSignal { get; init; }
    public IReadOnlyList<string> Volumes { get; init; } = [];
    public IReadOnlyList<string> ExposedPorts { get; init; } = [];
}

[JsonSourceGenerationOptions(WriteIndented = false, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    Converters = [typeof(DigestJsonConverter)])]
[JsonSerializable(typeof(ImageDatabase))]
internal sealed partial class ImageJsonContext : JsonSerializerContext;

/// <summary>The on-disk form of the image store: one file, rewritten atomically on every change.</summary>
internal sealed record ImageDatabase(int Version, IReadOnlyList<ImageRecord> Images);

/// <summary>Digests are written as their usual "sha256:hex" text.</summary>
public sealed class DigestJsonConverter : JsonConverter<Digest>
{
    public override Digest Read(ref System.Text.Json.Utf8JsonReader reader, Type typeToConvert, System.Text.Json.JsonSerializerOptions options) =>
        Digest.Parse(reader.GetString() ?? throw new System.Text.Json.JsonException("digest is null"));

    public override void Write(System.Text.Json.Utf8JsonWriter writer, Digest value, System.Text.Json.JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString());
}
