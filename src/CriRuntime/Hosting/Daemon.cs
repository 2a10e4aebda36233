using System.Net;
using CriRuntime.Config;
using CriRuntime.Images;
using CriRuntime.Images.Distribution;
using CriRuntime.Containers;
using CriRuntime.Events;
using CriRuntime.Hosting.Http2;
using CriRuntime.Lifecycle;
using CriRuntime.Native;
using CriRuntime.Network.Cni;
using CriRuntime.Oci;
using CriRuntime.Pods;
using CriRuntime.Recovery;
using CriRuntime.Server;
using CriRuntime.Stats;
using CriRuntime.Storage;
using CriRuntime.Streaming;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Hosting.Systemd;
using Prometheus;

namespace CriRuntime.Hosting;

/// <summary>Builds and runs the daemon: the stores, the gRPC services on the unix socket, and /metrics.</summary>
internal static class Daemon
{
    /// <summary>Concurrent HTTP/2 streams one client connection may hold open; grpc-go servers set no limit.</summary>
    internal const int MaxStreamsPerConnection = 10_000;

    /// <summary>A tree an older daemon (or a looser umask) left readable by others is narrowed before anything is served.</summary>
    private static void TightenStateModes(CriRuntimeConfig config, ILogger logger)
    {
        var narrowed = CriRuntime.Security.StateTreeModes.Tighten(config.Root, config.State, out var skipped);
        foreach (string dir in skipped)
            logger.LogWarning("{Dir} is a system directory and also criruntime's root or state: its own mode is left as it is; give criruntime a directory of its own", dir);
        if (narrowed.Count == 0) return;
        const int shown = 20;
        string list = string.Join(", ", narrowed.Take(shown).Select(n => $"{n.Path} {Convert.ToString(n.OldMode, 8)}->{Convert.ToString(n.NewMode, 8)}"));
        logger.LogWarning("Narrowed the modes of {Count} paths under {Root} and {State} that other users could read or traverse: {Paths}{More}",
            narrowed.Count, config.Root, config.State, list, narrowed.Count > shown ? $" and {narrowed.Count - shown} more" : "");
    }

    public static async Task RunAsync(CriRuntimeConfig config, string configPath)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        ConfigureLogging(builder.Logging, config);
        builder.Host.UseSystemd();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));

        // root holds nothing another user needs; state holds the CRI socket, which its group may reach (issue #11).
        FileModes.CreateDirectory(config.Root, FileModes.PrivateDirectory);
        FileModes.CreateDirectory(config.State, FileModes.TraversableDirectory);
        AddCoreServices(builder.Services, config);

        builder.Services.AddGrpc(o =>
        {
            // The first added runs outermost: metrics must see the status code ErrorInterceptor chose.
            o.Interceptors.Add<MetricsInterceptor>();
            o.Interceptors.Add<ErrorInterceptor>();
            o.MaxReceiveMessageSize = 16 * 1024 * 1024;
            o.MaxSendMessageSize = 16 * 1024 * 1024;
        });

        // The .NET runtime's event counters and meters would each run a listener and a timer in the
        // daemon for numbers nobody on a node asks for; the process_* metrics stay.
        Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions { SuppressEventCounters = true, SuppressMeters = true, SuppressDebugMetrics = true });

        ulong socketHandle = UnixSocketListener.Bind(config.Socket);
        IPEndPoint? metricsEndpoint = string.IsNullOrEmpty(config.Metrics.Address) ? null : ParseEndpoint(config.Metrics.Address, "metrics.address");
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // The kubelet sends every call, and keeps its event and log streams open, on one connection;
            // Kestrel's default of 100 streams per connection would queue all further calls behind them.
            kestrel.Limits.Http2.MaxStreamsPerConnection = MaxStreamsPerConnection;
            // Kestrel takes over the listening socket we bound (and set the mode of) ourselves. The
            // rewrite lets grpc-go clients that send the socket path as :authority in (see Http2/).
            kestrel.ListenHandle(socketHandle, listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                listen.UseAuthorityRewrite();
            });
            if (metricsEndpoint is not null)
                kestrel.Listen(metricsEndpoint, listen => listen.Protocols = HttpProtocols.Http1);
        });

        var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("criruntime");
        logger.LogInformation("Starting {Name} {Version} with config {Config}, root {Root}, state {State}",
            DaemonInfo.Name, DaemonInfo.Version, File.Exists(configPath) ? configPath : "(defaults)", config.Root, config.State);

        TightenStateModes(config, logger);

        try
        {
            // Recover before serving: the first List a kubelet sends must already be right (order: Recovery/StartupRecovery).
            await app.Services.GetRequiredService<StartupRecovery>().RunAsync(CancellationToken.None).ConfigureAwait(false);
            app.Services.GetRequiredService<ExitMonitor>().Start();
        }
        catch (Exception e)
        {
            UnixSocketListener.Remove(config.Socket);
            throw new StartupException($"cannot load state from {config.Root}: {e.Message}", e);
        }

        // The streaming server (its own listener on [streaming] address), with a handler per kind.
        StreamingServer streaming;
        try
        {
            streaming = await StreamingServer.StartAsync(config.Streaming, app.Services.GetRequiredService<StreamingRequestCache>(),
                new Dictionary<StreamingKind, IStreamingHandler>
                {
                    [StreamingKind.Exec] = app.Services.GetRequiredService<ExecHandler>(),
                    [StreamingKind.PortForward] = app.Services.GetRequiredService<PortForwardHandler>(),
                    [StreamingKind.Attach] = app.Services.GetRequiredService<AttachHandler>(),
                },
                app.Services.GetRequiredService<ILoggerFactory>(), CancellationToken.None,
                // Port-forward has no WebSocket handler: its upgrade is refused (501) before the handshake, so clients fall back to SPDY.
                webSocketHandlers: new Dictionary<StreamingKind, IWebSocketStreamingHandler>
                {
                    [StreamingKind.Exec] = app.Services.GetRequiredService<WebSocketExecHandler>(),
                    [StreamingKind.Attach] = app.Services.GetRequiredService<WebSocketAttachHandler>(),
                })
                .ConfigureAwait(false);
            app.Services.GetRequiredService<StreamingEndpoint>().Server = streaming;
        }
        catch
        {
            UnixSocketListener.Remove(config.Socket);
            throw;
        }
        await using var streamingServer = streaming.ConfigureAwait(false);

        app.MapGrpcService<CriRuntimeService>();
        app.MapGrpcService<CriImageService>();
        if (metricsEndpoint is not null)
        {
            DaemonMetrics.Register(app.Services);
            app.MapMetrics();
        }

        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
            string metrics = addresses?.FirstOrDefault(a => a.StartsWith("http://", StringComparison.Ordinal) && !a.StartsWith("http://unix:", StringComparison.Ordinal)) is { } m ? $"{m}/metrics" : "off";
            logger.LogInformation("Serving CRI on unix://{Socket}; metrics {Metrics}", config.Socket, metrics);
        });

        try
        {
            await app.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            UnixSocketListener.Remove(config.Socket);
            logger.LogInformation("Stopped; containers keep running");
        }
    }

    private static void AddCoreServices(IServiceCollection services, CriRuntimeConfig config)
    {
        services.AddSingleton(config);
        services.AddSingleton(sp => new ImageStore(Path.Combine(config.Root, "images"), sp.GetRequiredService<ILogger<ImageStore>>()));
        services.AddSingleton(sp => new LayerStore(Path.Combine(config.Root, "overlay"), sp.GetRequiredService<ILogger<LayerStore>>()));
        services.AddSingleton(_ => new BlobStore(Path.Combine(config.Root, "blobs")));
        services.AddSingleton(_ => new RegistryHosts(config.Registry.ConfigPath));
        services.AddSingleton(sp => new RegistryClient(sp.GetRequiredService<RegistryHosts>(), sp.GetRequiredService<ILogger<RegistryClient>>(),
            TimeSpan.FromSeconds(config.Registry.RequestTimeoutSeconds)));
        services.AddSingleton<ImageManager>();
        services.AddSingleton(_ => Cgroups.Detect());
        services.AddSingleton(sp => new CniManager(config.Cni.ConfDir, config.Cni.BinDirs, Path.Combine(config.Root, "cni", "results"),
            sp.GetRequiredService<ILogger<CniManager>>(), TimeSpan.FromSeconds(config.Cni.PluginTimeoutSeconds)));
        services.AddSingleton(sp => new PodCidrConfig(config.Cni.ConfDir, config.Cni.ConfTemplate, sp.GetRequiredService<ILogger<PodCidrConfig>>()));
        services.AddSingleton(sp => new Conmon(config.Runtime.Conmon, sp.GetRequiredService<ILogger<Conmon>>()));
        services.AddSingleton<IContainerRuntimes, RuntimeHandlers>();
        services.AddSingleton<ContainerEventHub>();
        services.AddSingleton<PodSandboxManager>();
        services.AddSingleton(sp => new CriRuntime.Cdi.CdiRegistry(config.Cdi.SpecDirs, sp.GetRequiredService<ILogger<CriRuntime.Cdi.CdiRegistry>>()));
        services.AddSingleton<ContainerManager>();
        services.AddSingleton<IImagesInUse>(sp => sp.GetRequiredService<ContainerManager>());
        services.AddSingleton<PodLifecycle>();
        services.AddSingleton<ExitMonitor>();
        services.AddSingleton<RecoveryReport>();
        services.AddSingleton<ImageRecovery>();
        services.AddSingleton<PodRecovery>();
        services.AddSingleton<ContainerRecovery>();
        services.AddSingleton<ImageGarbageCollection>();
        services.AddSingleton<StartupRecovery>();
        services.AddSingleton<StatsCollector>();
        services.AddSingleton<CriMetrics>();
        services.AddHostedService<IdleMemoryTrimmer>();
        services.AddSingleton(_ => new StreamingRequestCache());
        services.AddSingleton<StreamingEndpoint>();
        services.AddSingleton<ExecHandler>();
        services.AddSingleton<WebSocketExecHandler>();
        services.AddSingleton<WebSocketAttachHandler>();
        services.AddSingleton<PortForwardHandler>();
        services.AddSingleton<AttachHandler>();
    }

    private static void ConfigureLogging(ILoggingBuilder logging, CriRuntimeConfig config)
    {
        logging.ClearProviders();
        // Under systemd, UseSystemd switches this console logger to journald's format.
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
        });
        logging.SetMinimumLevel(config.LogLevel switch
        {
            "trace" => LogLevel.Trace,
            "debug" => LogLevel.Debug,
            "warning" => LogLevel.Warning,
            "error" => LogLevel.Error,
            _ => LogLevel.Information,
        });
        // The web stack's per-request chatter is noise for a node daemon.
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Grpc.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
    }

    private static IPEndPoint ParseEndpoint(string address, string key) =>
        IPEndPoint.TryParse(address, out var endpoint)
            ? endpoint
            : throw new StartupException($"{key} '{address}' is not an IP address and port such as 127.0.0.1:9464");
}
