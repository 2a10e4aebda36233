using CriRuntime.Config;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Oci;

/// <summary>
/// The OCI runtimes a pod can choose with RuntimeHandler ([runtime.handlers.NAME] in the config).
/// Each keeps its state under its own --root, so our containers never mix with anyone else's.
/// </summary>
public sealed class RuntimeHandlers : IContainerRuntimes
{
    private readonly Dictionary<string, IContainerRuntime> runtimes;

    public RuntimeHandlers(CriRuntimeConfig config, Conmon conmon, ILoggerFactory loggers)
    {
        DefaultHandler = config.Runtime.DefaultHandler;
        runtimes = config.Runtime.Handlers.ToDictionary(
            h => h.Key,
            h =>
            {
                var logger = loggers.CreateLogger($"CriRuntime.Oci.{h.Key}");
                return (IContainerRuntime)new ConmonRuntime(new OciRuntime(h.Key, h.Value.Path, Path.Combine(config.State, "runtime", h.Key), logger), conmon, logger);
            },
            StringComparer.Ordinal);
    }

    public string DefaultHandler { get; }

    public IEnumerable<string> Names => runtimes.Keys;

    /// <summary>The runtime for a CRI runtime_handler; "" means the default.</summary>
    public IContainerRuntime Resolve(string? handler)
    {
        string name = string.IsNullOrEmpty(handler) ? DefaultHandler : handler;
        return runtimes.TryGetValue(name, out var runtime)
            ? runtime
            : throw new InvalidArgumentException(
                $"runtime handler '{name}' is not configured; known handlers: {string.Join(", ", runtimes.Keys.Order())} (add [runtime.handlers.{name}] to the config)");
    }
}
