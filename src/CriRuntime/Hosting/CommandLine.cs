using CriRuntime.Config;

namespace CriRuntime.Hosting;

/// <summary>The daemon's command line: serve, or print the default config or the version.</summary>
internal static class CommandLine
{
    public const string DefaultConfigPath = "/etc/criruntime/config.toml";

    private const string Usage = """
        usage: criruntime [--config FILE]    serve the CRI v1 API (default config: /etc/criruntime/config.toml)
               criruntime config default   print the default configuration, one comment per key
               criruntime --version        print the version
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        string? configPath = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "config" when i + 1 < args.Length && args[i + 1] == "default":
                    Console.Out.Write(DefaultConfig.Render());
                    return 0;
                case "--version" or "version":
                    Console.Out.WriteLine($"{DaemonInfo.Name} {DaemonInfo.Version} (CRI {DaemonInfo.RuntimeApiVersion})");
                    return 0;
                case "-h" or "--help" or "help":
                    Console.Out.WriteLine(Usage);
                    return 0;
                case "--config" or "-c" when i + 1 < args.Length:
                    configPath = args[++i];
                    break;
                default:
                    if (args[i].StartsWith("--config=", StringComparison.Ordinal))
                    {
                        configPath = args[i]["--config=".Length..];
                        break;
                    }
                    Console.Error.WriteLine($"criruntime: unknown argument '{args[i]}'\n{Usage}");
                    return 2;
            }
        }

        CriRuntimeConfig config;
        try
        {
            // An explicit --config must exist; the default path may be absent (all defaults).
            config = ConfigLoader.Load(configPath ?? DefaultConfigPath, mustExist: configPath is not null);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"criruntime: {e.Message}");
            return 2;
        }

        try
        {
            await Daemon.RunAsync(config, configPath ?? DefaultConfigPath).ConfigureAwait(false);
            return 0;
        }
        catch (StartupException e)
        {
            Console.Error.WriteLine($"criruntime: {e.Message}");
            return 1;
        }
    }
}

/// <summary>A reason the daemon cannot start that the operator can fix; printed without a stack trace.</summary>
internal sealed class StartupException(string message, Exception? inner = null) : Exception(message, inner);

internal static class DaemonInfo
{
    public const string Name = "criruntime";
    public const string RuntimeApiVersion = "v1";

    /// <summary>The kubelet-facing API version string Version answers with.</summary>
    public const string KubeletApiVersion = "0.1.0";

    public static string Version { get; } =
        typeof(DaemonInfo).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";
}
