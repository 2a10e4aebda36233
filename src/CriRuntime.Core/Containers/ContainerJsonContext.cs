using System.Text.Json.Serialization;

namespace CriRuntime.Containers;

// Records are written snake_case with enums as strings; the context lives beside its record so that State/ knows no record type.
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, UseStringEnumConverter = true)]
[JsonSerializable(typeof(ContainerRecord))]
internal sealed partial class ContainerJsonContext : JsonSerializerContext;
