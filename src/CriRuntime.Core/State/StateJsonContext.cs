using System.Text.Json.Serialization;
using CriRuntime.Containers;
using CriRuntime.Pods;

namespace CriRuntime.State;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, UseStringEnumConverter = true)]
[JsonSerializable(typeof(PodSandboxRecord))]
[JsonSerializable(typeof(ContainerRecord))]
internal sealed partial class StateJsonContext : JsonSerializerContext;
