using System.Text.Json.Serialization;

namespace CriRuntime.Pods;

// Records are written snake_case with enums as strings; the context lives beside its record so that State/ knows no record type.
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, UseStringEnumConverter = true)]
[JsonSerializable(typeof(PodSandboxRecord))]
internal sealed partial class PodJsonContext : JsonSerializerContext;
