using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using CriRuntime.Content;

namespace CriRuntime.Images.Distribution;

/// <summary>The media types a pull deals with.</summary>
public static class MediaTypes
{
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerSchema1Prefix = "application/vnd.docker.distribution.manifest.v1";

    public const string OciConfig = "application/vnd.oci.image.config.v1+json";
    public const string DockerConfig = "application/vnd.docker.container.image.v1+json";

    public const string OciLayer = "application/vnd.oci.image.layer.v1.tar";
    public const string OciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    public const string OciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
    public const string DockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    public const string DockerForeignLayerGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    public const string OciNonDistributablePrefix = "application/vnd.oci.image.layer.nondistributable.v1.tar";

    /// <summary>What a manifest request accepts: every type this runtime can pull, most specific first.</summary>
    public static readonly string[] ManifestAccept = [OciIndex, DockerManifestList, OciManifest, DockerManifest];

    public static bool IsIndex(string mediaType) => mediaType is OciIndex or DockerManifestList;

    public static bool IsManifest(string mediaType) => mediaType is OciManifest or DockerManifest;

    public static bool IsSchema1(string? mediaType) => mediaType?.StartsWith(DockerSchema1Prefix, StringComparison.Ordinal) == true;

    public static bool IsConfig(string mediaType) => mediaType is OciConfig or DockerConfig;

    /// <summary>How a layer blob is compressed, or null when this runtime cannot unpack that media type.</summary>
    public static LayerCompression? LayerCompressionOf(string mediaType) => mediaType switch
    {
        OciLayer => LayerCompression.None,
        OciLayerGzip or DockerLayerGzip => LayerCompression.Gzip,
        OciLayerZstd => LayerCompression.Zstd,
        _ => null,
    };
}

public enum LayerCompression { None, Gzip, Zstd }

/// <summary>A manifest that cannot be used: malformed, or of a kind this runtime does not pull.</summary>
public sealed class ManifestException(string message, Exception? inner = null) : CriException(CriErrorKind.FailedPrecondition, message, inner);

/// <summary>What a manifest request returned: either an index (manifest list) or an image manifest.</summary>
public abstract record ManifestDocument(string MediaType)
{
    public IReadOnlyDictionary<string, string>? Annotations { get; init; }
}

/// <summary>An OCI image index or a Docker manifest list.</summary>
public sealed record ImageIndex(string MediaType, IReadOnlyList<Descriptor> Manifests) : ManifestDocument(MediaType);

/// <summary>An OCI image manifest or a Docker schema 2 manifest.</summary>
public sealed record ImageManifest(string MediaType, Descriptor Config, IReadOnlyList<Descriptor> Layers) : ManifestDocument(MediaType)
{
    public Descriptor? Subject { get; init; }
}

/// <summary>The image config: what to run, and the diff ids that name the unpacked layers.</summary>
public sealed record ImageConfig
{
    public string? Architecture { get; init; }
    public string? Os { get; init; }
    public string? Variant { get; init; }
    public string? OsVersion { get; init; }
    public DateTimeOffset? Created { get; init; }
    public string? Author { get; init; }
    public ContainerConfig Config { get; init; } = new();
    public required RootFs RootFs { get; init; }
    public IReadOnlyList<HistoryEntry> History { get; init; } = [];

    public IReadOnlyList<Digest> DiffIds => RootFs.DiffIds;

    /// <summary>The image's platform as its config states it (null when os or architecture is missing).</summary>
    public Platform? Platform => Os is { Length: > 0 } && Architecture is { Length: > 0 } ? new Platform(Os, Architecture, Variant) { OsVersion = OsVersion } : null;

    /// <summary>The subset a container start needs, in the form the image store keeps.</summary>
    public ImageRuntimeConfig RuntimeConfig => new()
    {
        User = Config.User,
        Env = Config.Env,
        Entrypoint = Config.Entrypoint,
        Cmd = Config.Cmd,
        WorkingDir = Config.WorkingDir,
        Labels = Config.Labels,
        StopSignal = Config.StopSignal,
        Volumes = Config.Volumes,
        ExposedPorts = Config.ExposedPorts,
    };

    public static ImageConfig Parse(ReadOnlySpan<byte> json) => ManifestParser.ParseConfig(json);
}

/// <summary>The <c>config</c> object of an image config (Docker's field names).</summary>
public sealed record ContainerConfig
{
    public string? User { get; init; }
    public IReadOnlyList<string> Env { get; init; } = [];
    public IReadOnlyList<string>? Entrypoint { get; init; }
    public IReadOnlyList<string>? Cmd { get; init; }
    public string? WorkingDir { get; init; }
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();
    public string? StopSignal { get; init; }
    /// <summary>Keys of ExposedPorts, such as <c>80/tcp</c>.</summary>
    public IReadOnlyList<string> ExposedPorts { get; init; } = [];
    /// <summary>Keys of Volumes: container paths.</summary>
    public IReadOnlyList<string> Volumes { get; init; } = [];
    public bool ArgsEscaped { get; init; }
}

public sealed record RootFs(string Type, IReadOnlyList<Digest> DiffIds);

public sealed record HistoryEntry(DateTimeOffset? Created, string? CreatedBy, string? Author, string? Comment, bool EmptyLayer);

/// <summary>Parses manifests, indexes and configs, checking what a pull relies on.</summary>
public static class ManifestParser
{
    // Bigger than any sane manifest (containerd allows ~4 MiB); stops a hostile registry from exhausting memory.
    public const int MaxManifestBytes = 4 * 1024 * 1024;

    /// <summary>
    /// The manifest's media type: the Content-Type header when it is specific, else the document's
    /// <c>mediaType</c> field, else its shape. Throws for schema 1 and for unknown types.
    /// </summary>
    public static string DetectMediaType(string? contentType, ReadOnlySpan<byte> body)
    {
        var dto = Deserialize(body, ManifestJsonContext.Default.ManifestDto, "manifest");
        return DetectMediaType(contentType, dto);
    }

    /// <summary>Parses an index or a manifest, as <see cref="DetectMediaType(string?, ReadOnlySpan{byte})"/> decides.</summary>
    public static ManifestDocument Parse(ReadOnlySpan<byte> body, string? contentType)
    {
        if (body.Length > MaxManifestBytes)
            throw new ManifestException($"manifest is {body.Length} bytes, more than the {MaxManifestBytes} this runtime accepts");
        var dto = Deserialize(body, ManifestJsonContext.Default.ManifestDto, "manifest");
        string mediaType = DetectMediaType(contentType, dto);
        if (dto.MediaType is { Length: > 0 } declared && declared != mediaType)
            throw new ManifestException($"manifest declares media type {declared} but was served as {mediaType}");
        return MediaTypes.IsIndex(mediaType) ? ToIndex(dto, mediaType) : ToManifest(dto, mediaType);
    }

    public static ImageIndex ParseIndex(ReadOnlySpan<byte> body, string? contentType = null) =>
        Parse(body, contentType) as ImageIndex ?? throw new ManifestException("expected an image index or manifest list, got an image manifest");

    public static ImageManifest ParseManifest(ReadOnlySpan<byte> body, string? contentType = null) =>
        Parse(body, contentType) as ImageManifest ?? throw new ManifestException("expected an image manifest, got an image index or manifest list");

    public static ImageConfig ParseConfig(ReadOnlySpan<byte> json)
    {
        var dto = Deserialize(json, ManifestJsonContext.Default.ConfigDto, "image config");
        if (dto.RootFs is null)
            throw new ManifestException("image config has no rootfs");
        if (dto.RootFs.Type is not null && dto.RootFs.Type != "layers")
            throw new ManifestException($"image config rootfs type is '{dto.RootFs.Type}', expected 'layers'");
        var diffIds = (dto.RootFs.DiffIds ?? []).Select((d, i) => ParseDigest(d, $"rootfs.diff_ids[{i}]")).ToList();
        var c = dto.Config;
        return new ImageConfig
        {
            Architecture = dto.Architecture,
            Os = dto.Os,
            Variant = dto.Variant,
            OsVersion = dto.OsVersion,
            Created = ParseTime(dto.Created),
            Author = dto.Author,
            RootFs = new RootFs(dto.RootFs.Type ?? "layers", diffIds),
            History = (dto.History ?? []).Select(h => new HistoryEntry(ParseTime(h.Created), h.CreatedBy, h.Author, h.Comment, h.EmptyLayer ?? false)).ToList(),
            Config = c is null ? new ContainerConfig() : new ContainerConfig
            {
                User = NullIfEmpty(c.User),
                Env = c.Env ?? [],
                Entrypoint = c.Entrypoint,
                Cmd = c.Cmd,
                WorkingDir = NullIfEmpty(c.WorkingDir),
                Labels = (c.Labels ?? []).Where(kv => kv.Value is not null).ToDictionary(kv => kv.Key, kv => kv.Value!),
                StopSignal = NullIfEmpty(c.StopSignal),
                ExposedPorts = c.ExposedPorts?.Keys.ToList() ?? [],
                Volumes = c.Volumes?.Keys.ToList() ?? [],
                ArgsEscaped = c.ArgsEscaped ?? false,
            },
        };
    }

    /// <summary>
    /// Throws unless every layer is one this runtime can fetch and unpack. Foreign layers (Windows base
    /// layers) live outside the registry and may not be redistributed, so they are refused outright.
    /// </summary>
    public static void ValidateLayers(ImageManifest manifest)
    {
        for (int i = 0; i < manifest.Layers.Count; i++)
        {
            var layer = manifest.Layers[i];
            if (layer.MediaType == MediaTypes.DockerForeignLayerGzip
                || layer.MediaType.StartsWith(MediaTypes.OciNonDistributablePrefix, StringComparison.Ordinal)
                || layer.Urls is { Count: > 0 })
                throw new ManifestException(
                    $"layer {i} ({layer.Digest}) is a foreign (non-distributable) layer of type {layer.MediaType}: such layers are " +
                    "downloaded from outside the registry (Windows base images) and are not supported; use a Linux image");
            if (layer.MediaType.EndsWith("+encrypted", StringComparison.Ordinal))
                throw new ManifestException($"layer {i} ({layer.Digest}) is encrypted ({layer.MediaType}); encrypted images are not supported");
            if (MediaTypes.LayerCompressionOf(layer.MediaType) is null)
                throw new ManifestException(
                    $"layer {i} ({layer.Digest}) has media type {layer.MediaType}, which is not a container image layer " +
                    "(expected an OCI tar, tar+gzip or tar+zstd layer or a Docker rootfs.diff.tar.gzip layer)");
        }
    }

    private static string DetectMediaType(string? contentType, ManifestDto dto)
    {
        string? header = contentType?.Split(';')[0].Trim().ToLowerInvariant();
        if (MediaTypes.IsSchema1(header) || MediaTypes.IsSchema1(dto.MediaType) || dto.SchemaVersion == 1 || dto.FsLayers is not null)
            throw new ManifestException("schema 1 images are not supported; re-push the image with a current client (docker, buildah, crane ...)");

        if (header is { Length: > 0 } && !IsGeneric(header))
        {
            if (MediaTypes.IsIndex(header) || MediaTypes.IsManifest(header)) return header;
            throw new ManifestException($"unsupported manifest media type {header}: this is not a container image (an artifact?)");
        }
        if (dto.MediaType is { Length: > 0 } field)
        {
            if (MediaTypes.IsIndex(field) || MediaTypes.IsManifest(field)) return field;
            throw new ManifestException($"unsupported manifest media type {field}: this is not a container image (an artifact?)");
        }
        // No usable type anywhere: OCI allows an absent mediaType, so go by shape.
        if (dto.Manifests is not null) return MediaTypes.OciIndex;
        if (dto.Config is not null && dto.Layers is not null) return MediaTypes.OciManifest;
        throw new ManifestException("document is neither an image index (no 'manifests') nor an image manifest (no 'config' and 'layers')");
    }

    private static bool IsGeneric(string contentType) =>
        contentType is "application/json" or "text/plain" or "application/octet-stream" or "binary/octet-stream" or "*/*";

    private static ImageIndex ToIndex(ManifestDto dto, string mediaType)
    {
        if (dto.SchemaVersion is not null and not 2)
            throw new ManifestException($"index has schemaVersion {dto.SchemaVersion}, expected 2");
        if (dto.Manifests is null)
            throw new ManifestException("index has no 'manifests'");
        var manifests = dto.Manifests.Select((d, i) => ToDescriptor(d, $"manifests[{i}]")).ToList();
        return new ImageIndex(mediaType, manifests) { Annotations = dto.Annotations };
    }

    private static ImageManifest ToManifest(ManifestDto dto, string mediaType)
    {
        if (dto.SchemaVersion is not null and not 2)
            throw new ManifestException($"manifest has schemaVersion {dto.SchemaVersion}, expected 2");
        if (dto.Config is null)
            throw new ManifestException("manifest has no 'config'");
        var config = ToDescriptor(dto.Config, "config");
        if (!MediaTypes.IsConfig(config.MediaType))
            throw new ManifestException(
                $"manifest's config has media type {config.MediaType}: this is not a container image (an artifact such as a Helm chart or a signature?)");
        var layers = (dto.Layers ?? throw new ManifestException("manifest has no 'layers'"))
            .Select((d, i) => ToDescriptor(d, $"layers[{i}]")).ToList();
        return new ImageManifest(mediaType, config, layers)
        {
            Annotations = dto.Annotations,
            Subject = dto.Subject is null ? null : ToDescriptor(dto.Subject, "subject"),
        };
    }

    private static Descriptor ToDescriptor(DescriptorDto dto, string where)
    {
        if (string.IsNullOrEmpty(dto.MediaType))
            throw new ManifestException($"{where} has no mediaType");
        var digest = ParseDigest(dto.Digest, $"{where}.digest");
        if (dto.Size is not { } size || size < 0)
            throw new ManifestException($"{where} has no valid size");
        return new Descriptor(dto.MediaType, digest, size)
        {
            Platform = dto.Platform is { } p && (p.Os is not null || p.Architecture is not null)
                ? new Platform(p.Os ?? "", p.Architecture ?? "", NullIfEmpty(p.Variant)) { OsVersion = NullIfEmpty(p.OsVersion) }
                : null,
            Urls = dto.Urls,
            Annotations = dto.Annotations,
        };
    }

    private static Digest ParseDigest(string? text, string where) =>
        Digest.TryParse(text, out var digest)
            ? digest
            : throw new ManifestException($"{where} '{text}' is not a valid digest (sha256:<64 hex> or sha512:<128 hex>)");

    private static T Deserialize<T>(ReadOnlySpan<byte> json, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, string what) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(json, type) ?? throw new ManifestException($"{what} is JSON null");
        }
        catch (JsonException e)
        {
            throw new ManifestException($"{what} is not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>RFC 3339 as Go writes it: up to nine fractional digits, which .NET's parser does not take.</summary>
    internal static DateTimeOffset? ParseTime(string? text)
    {
        if (string.IsNullOrEmpty(text)) return null;
        int dot = text.IndexOf('.');
        if (dot > 0)
        {
            int end = dot + 1;
            while (end < text.Length && char.IsAsciiDigit(text[end])) end++;
            if (end - dot - 1 > 7) text = text[..(dot + 8)] + text[end..];
        }
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time) ? time : null;
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;
}

// JSON shapes as registries write them. One shape serves index and manifest so that the type can be
// told from the fields present.
internal sealed class ManifestDto
{
    [JsonPropertyName("schemaVersion")] public int? SchemaVersion { get; set; }
    [JsonPropertyName("mediaType")] public string? MediaType { get; set; }
    [JsonPropertyName("config")] public DescriptorDto? Config { get; set; }
    [JsonPropertyName("layers")] public List<DescriptorDto>? Layers { get; set; }
    [JsonPropertyName("manifests")] public List<DescriptorDto>? Manifests { get; set; }
    [JsonPropertyName("subject")] public DescriptorDto? Subject { get; set; }
    [JsonPropertyName("annotations")] public Dictionary<string, string>? Annotations { get; set; }
    [JsonPropertyName("fsLayers")] public JsonElement? FsLayers { get; set; }
}

internal sealed class DescriptorDto
{
    [JsonPropertyName("mediaType")] public string? MediaType { get; set; }
    [JsonPropertyName("digest")] public string? Digest { get; set; }
    [JsonPropertyName("size")] public long? Size { get; set; }
    [JsonPropertyName("platform")] public PlatformDto? Platform { get; set; }
    [JsonPropertyName("urls")] public List<string>? Urls { get; set; }
    [JsonPropertyName("annotations")] public Dictionary<string, string>? Annotations { get; set; }
}

internal sealed class PlatformDto
{
    [JsonPropertyName("os")] public string? Os { get; set; }
    [JsonPropertyName("architecture")] public string? Architecture { get; set; }
    [JsonPropertyName("variant")] public string? Variant { get; set; }
    [JsonPropertyName("os.version")] public string? OsVersion { get; set; }
}

internal sealed class ConfigDto
{
    [JsonPropertyName("architecture")] public string? Architecture { get; set; }
    [JsonPropertyName("os")] public string? Os { get; set; }
    [JsonPropertyName("variant")] public string? Variant { get; set; }
    [JsonPropertyName("os.version")] public string? OsVersion { get; set; }
    [JsonPropertyName("created")] public string? Created { get; set; }
    [JsonPropertyName("author")] public string? Author { get; set; }
    [JsonPropertyName("config")] public ContainerConfigDto? Config { get; set; }
    [JsonPropertyName("rootfs")] public RootFsDto? RootFs { get; set; }
    [JsonPropertyName("history")] public List<HistoryDto>? History { get; set; }
}

internal sealed class ContainerConfigDto
{
    [JsonPropertyName("User")] public string? User { get; set; }
    [JsonPropertyName("Env")] public List<string>? Env { get; set; }
    [JsonPropertyName("Entrypoint"), JsonConverter(typeof(StringSliceConverter))] public List<string>? Entrypoint { get; set; }
    [JsonPropertyName("Cmd"), JsonConverter(typeof(StringSliceConverter))] public List<string>? Cmd { get; set; }
    [JsonPropertyName("WorkingDir")] public string? WorkingDir { get; set; }
    [JsonPropertyName("Labels")] public Dictionary<string, string?>? Labels { get; set; }
    [JsonPropertyName("StopSignal")] public string? StopSignal { get; set; }
    [JsonPropertyName("ExposedPorts")] public Dictionary<string, JsonElement>? ExposedPorts { get; set; }
    [JsonPropertyName("Volumes")] public Dictionary<string, JsonElement>? Volumes { get; set; }
    [JsonPropertyName("ArgsEscaped")] public bool? ArgsEscaped { get; set; }
}

internal sealed class RootFsDto
{
    [JsonPropertyName("type")] public string? Type { get; set; }
    [JsonPropertyName("diff_ids")] public List<string>? DiffIds { get; set; }
}

internal sealed class HistoryDto
{
    [JsonPropertyName("created")] public string? Created { get; set; }
    [JsonPropertyName("created_by")] public string? CreatedBy { get; set; }
    [JsonPropertyName("author")] public string? Author { get; set; }
    [JsonPropertyName("comment")] public string? Comment { get; set; }
    [JsonPropertyName("empty_layer")] public bool? EmptyLayer { get; set; }
}

internal sealed class RegistryErrorsDto
{
    [JsonPropertyName("errors")] public List<RegistryErrorDto>? Errors { get; set; }
}

internal sealed class RegistryErrorDto
{
    [JsonPropertyName("code")] public string? Code { get; set; }
    [JsonPropertyName("message")] public string? Message { get; set; }
}

internal sealed class TokenResponseDto
{
    [JsonPropertyName("token")] public string? Token { get; set; }
    [JsonPropertyName("access_token")] public string? AccessToken { get; set; }
    [JsonPropertyName("expires_in")] public int? ExpiresIn { get; set; }
}

/// <summary>Docker writes Entrypoint and Cmd either as an array or as one string (strslice).</summary>
internal sealed class StringSliceConverter : JsonConverter<List<string>?>
{
    public override bool HandleNull => true;

    public override List<string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.String:
                return [reader.GetString()!];
            case JsonTokenType.StartArray:
                var list = new List<string>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.String) throw new JsonException("expected a string in the array");
                    list.Add(reader.GetString()!);
                }
                return list;
            default:
                throw new JsonException("expected a string or an array of strings");
        }
    }

    public override void Write(Utf8JsonWriter writer, List<string>? value, JsonSerializerOptions options)
    {
        if (value is null) { writer.WriteNullValue(); return; }
        writer.WriteStartArray();
        foreach (var s in value) writer.WriteStringValue(s);
        writer.WriteEndArray();
    }
}

// Go's encoding/json matches field names case-insensitively; some tools rely on it.
[JsonSourceGenerationOptions(PropertyNameCaseInsensitive = true, ReadCommentHandling = JsonCommentHandling.Disallow)]
[JsonSerializable(typeof(ManifestDto))]
[JsonSerializable(typeof(ConfigDto))]
[JsonSerializable(typeof(RegistryErrorsDto))]
[JsonSerializable(typeof(TokenResponseDto))]
internal sealed partial class ManifestJsonContext : JsonSerializerContext;
