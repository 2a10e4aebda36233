using System.Net;
using System.Security.Cryptography.X509Certificates;
using CriRuntime.Config;
using CriRuntime.Hosting;
using CriRuntime.Streaming.Spdy;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace CriRuntime.Streaming;

/// <summary>An upgraded streaming connection handed to the handler of its kind.</summary>
internal sealed record StreamingConnection(StreamingRequest Request, string Protocol, SpdySession Session, TimeSpan StreamCreationTimeout);

/// <summary>Serves one kind of streaming connection (exec, attach or port-forward) once it is upgraded to SPDY.</summary>
internal interface IStreamingHandler
{
    Task ServeAsync(StreamingConnection connection, CancellationToken cancellationToken);
}

/// <summary>
/// The streaming server the Exec, Attach and PortForward RPCs send their clients to: its own Kestrel on
/// <c>[streaming] address</c> (HTTP/1.1, optionally TLS), apart from the CRI socket and /metrics. A request for
/// <c>/exec/TOKEN</c>, <c>/attach/TOKEN</c> or <c>/portforward/TOKEN</c> consumes the token (unknown, used or
/// expired: 404), negotiates the subprotocol from X-Stream-Protocol-Version and upgrades to SPDY/3.1, as
/// k8s.io/apimachinery's upgrader and the kubelet's streaming server do.
/// </summary>
internal sealed partial class StreamingServer : IAsyncDisposable
{
    /// <summary>Exec and attach subprotocols, the server's order of preference (the client's order decides).</summary>
    public static readonly string[] RemoteCommandProtocols = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];

    public static readonly string[] PortForwardProtocols = ["portforward.k8s.io"];

    private const string ProtocolHeader = "X-Stream-Protocol-Version";
    private const string AcceptedProtocolsHeader = "X-Accepted-Stream-Protocol-Versions";

    private readonly WebApplication app;
    private readonly StreamingRequestCache cache;
    private readonly IReadOnlyDictionary<StreamingKind, IStreamingHandler> handlers;
    private readonly IReadOnlyDictionary<StreamingKind, IWebSocketStreamingHandler> webSocketHandlers;
    private readonly StreamingSection config;
    private readonly ILogger logger;
    private readonly CancellationTokenSource stopping = new();

    private StreamingServer(WebApplication app, StreamingRequestCache cache, IReadOnlyDictionary<StreamingKind, IStreamingHandler> handlers,
        IReadOnlyDictionary<StreamingKind, IWebSocketStreamingHandler> webSocketHandlers, StreamingSection config, ILogger logger)
    {
        this.app = app;
        this.cache = cache;
        this.handlers = handlers;
        this.webSocketHandlers = webSocketHandlers;
        this.config = config;
        this.logger = logger;
    }

    /// <summary>The server's base URL, with the port it really listens on (http://127.0.0.1:PORT).</summary>
    public Uri BaseUrl { get; private set; } = null!;

    /// <summary>The absolute URL a client of <paramref name="kind"/> connects to with <paramref name="token"/>.</summary>
    public string UrlFor(StreamingKind kind, string token) => new Uri(BaseUrl, $"{PathOf(kind)}/{token}").ToString();

    public static async Task<StreamingServer> StartAsync(StreamingSection config, StreamingRequestCache cache,
        IReadOnlyDictionary<StreamingKind, IStreamingHandler> handlers, ILoggerFactory loggerFactory, CancellationToken cancellationToken,
        IReadOnlyDictionary<StreamingKind, IWebSocketStreamingHandler>? webSocketHandlers = null)
    {
        if (!IPEndPoint.TryParse(config.Address, out var endpoint))
            throw new StartupException($"streaming.address '{config.Address}' is not an IP address and port such as 127.0.0.1:0");
        X509Certificate2? certificate = LoadCertificate(config);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggerFactory);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(endpoint, listen =>
            {
                listen.Protocols = HttpProtocols.Http1;
                if (certificate != null) listen.UseHttps(certificate);
            });
            // Only the request line and headers come before the upgrade; keep them small.
            kestrel.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            kestrel.Limits.MaxRequestBodySize = 0;
            kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(30);
        });
        var app = builder.Build();
        var server = new StreamingServer(app, cache, handlers, webSocketHandlers ?? new Dictionary<StreamingKind, IWebSocketStreamingHandler>(),
            config, loggerFactory.CreateLogger("streaming"));
        // Pings keep NATs and proxies from dropping a quiet session; the idle timeout counts data messages only.
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.FromSeconds(30) });
        app.Map("/{kind}/{token}", server.HandleAsync);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new StartupException($"streaming.address {config.Address}: cannot listen there: {e.Message}", e);
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var port = new Uri(address.Replace("[::]", "localhost", StringComparison.Ordinal)).Port;
        var host = endpoint.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any)
            ? Dns.GetHostName()
            : endpoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{endpoint.Address}]" : endpoint.Address.ToString();
        server.BaseUrl = new Uri($"{(certificate != null ? "https" : "http")}://{host}:{port}/");
        server.logger.LogInformation("Streaming server on {Url}", server.BaseUrl);
        return server;
    }

    private static X509Certificate2? LoadCertificate(StreamingSection config)
    {
        var cert = config.TlsCertFile;
        var key = config.TlsKeyFile;
        if (cert.Length == 0 && key.Length == 0) return null;
        if (cert.Length == 0 || key.Length == 0)
            throw new StartupException("streaming.tls_cert_file and streaming.tls_key_file must be set together (both for HTTPS, neither for HTTP); " +
                $"only {(cert.Length == 0 ? "tls_key_file" : "tls_cert_file")} is set");
        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(cert, key);
            // Kestrel on Linux needs the key in a form it can use for TLS; a PKCS#12 round trip gives one.
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException or UnauthorizedAccessException)
        {
            throw new StartupException($"streaming.tls_cert_file {cert} / tls_key_file {key}: cannot load them as a PEM certificate and key: {e.Message}", e);
        }
    }

    private static string PathOf(StreamingKind kind) => kind switch
    {
        StreamingKind.Exec => "exec",
        StreamingKind.Attach => "attach",
        _ => "portforward",
    };

    private async Task HandleAsync(HttpContext context)
    {
        var kindText = (string)context.Request.RouteValues["kind"]!;
        var token = (string)context.Request.RouteValues["token"]!;
        StreamingKind? kind = kindText switch
        {
            "exec" => StreamingKind.Exec,
            "attach" => StreamingKind.Attach,
            "portforward" => StreamingKind.PortForward,
            _ => null,
        };
        if (kind == null)
        {
            await PlainAsync(context, StatusCodes.Status404NotFound, $"no such streaming endpoint '/{kindText}'; the Exec, Attach and PortForward RPCs return the URLs to use").ConfigureAwait(false);
            return;
        }
        // A WebSocket upgrade this server would refuse is refused before the token is looked at, so the token
        // stays good for the SPDY request a falling-back client (client-go's FallbackExecutor) makes next.
        WebSocketUpgrade? webSocket = null;
        if (context.WebSockets.IsWebSocketRequest && (webSocket = await NegotiateWebSocketAsync(context, kind.Value).ConfigureAwait(false)) == null)
            return;
        // Consumed before anything else, so a token is used once whatever happens next.
        var request = cache.Consume(token, kind.Value);
        if (request == null)
        {
            StreamingMetrics.Reject(kind.Value, TransportOf(context));
            await PlainAsync(context, StatusCodes.Status404NotFound, $"streaming token not found: it is unknown, already used or older than {StreamingRequestCache.DefaultTtl.TotalSeconds:0} s; call {kind} again for a new URL").ConfigureAwait(false);
            return;
        }
        if (webSocket != null)
        {
            await HandleWebSocketAsync(context, kind.Value, request, webSocket).ConfigureAwait(false);
            return;
        }
        var upgrade = context.Features.Get<IHttpUpgradeFeature>();
        var connection = context.Request.Headers.Connection.ToString();
        var upgradeTo = context.Request.Headers.Upgrade.ToString();
        if (upgrade is not { IsUpgradableRequest: true } || !connection.Contains("upgrade", StringComparison.OrdinalIgnoreCase) ||
            !upgradeTo.Contains("SPDY/3.1", StringComparison.OrdinalIgnoreCase))
        {
            StreamingMetrics.Reject(kind.Value, "spdy");
            await PlainAsync(context, StatusCodes.Status400BadRequest, "unable to upgrade: the request needs 'Connection: Upgrade' and 'Upgrade: SPDY/3.1', or a WebSocket upgrade (GET with 'Upgrade: websocket')").ConfigureAwait(false);
            return;
        }
        var serverProtocols = kind == StreamingKind.PortForward ? PortForwardProtocols : RemoteCommandProtocols;
        var (protocol, problem) = Negotiate(context.Request.Headers[ProtocolHeader], serverProtocols);
        if (protocol == null)
        {
            StreamingMetrics.Reject(kind.Value, "spdy");
            if (problem == null)
            {
                context.Response.Headers[AcceptedProtocolsHeader] = serverProtocols;
                await PlainAsync(context, StatusCodes.Status403Forbidden,
                    $"unable to upgrade: unable to negotiate protocol: client supports {string.Join(", ", Split(context.Request.Headers[ProtocolHeader]))}, server accepts {string.Join(", ", serverProtocols)}").ConfigureAwait(false);
            }
            else await PlainAsync(context, StatusCodes.Status400BadRequest, problem).ConfigureAwait(false);
            return;
        }
        if (!handlers.TryGetValue(kind.Value, out var handler))
        {
            StreamingMetrics.Reject(kind.Value, "spdy");
            await PlainAsync(context, StatusCodes.Status501NotImplemented, $"{kind} is not served yet").ConfigureAwait(false);
            return;
        }

        context.Response.Headers[ProtocolHeader] = protocol;
        context.Response.Headers.Upgrade = "SPDY/3.1";
        var transport = await upgrade.UpgradeAsync().ConfigureAwait(false);
        var session = new SpdySession(transport, SpdyRole.Server,
            new SpdySessionOptions { IdleTimeout = config.IdleTimeout }, logger);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token, context.RequestAborted);
        using var tracked = StreamingMetrics.Begin(kind.Value, "spdy");
        await using (session.ConfigureAwait(false))
        {
            session.Start();
            try
            {
                await handler.ServeAsync(new StreamingConnection(request, protocol, session, config.StreamCreationTimeout), linked.Token).ConfigureAwait(false);
                tracked.Complete();
                // Let the client close first once it has read everything: closing a socket it still writes to
                // (a late WINDOW_UPDATE) could reset the connection before it read the last frames.
                await session.Completion.WaitAsync(TimeSpan.FromSeconds(1), linked.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or TimeoutException or SpdyStreamClosedException or IOException)
            {
                tracked.Abort();
                logger.LogDebug("{Kind} streaming connection ended: {Message}", kind, e.Message);
            }
        }
    }

    /// <summary>
    /// The first of the client's protocols (in its order) the server speaks, as apimachinery's Handshake: a missing
    /// or empty header is a problem (400); no common protocol is (null, null) (403).
    /// </summary>
    internal static (string? Protocol, string? Problem) Negotiate(IEnumerable<string?> headerValues, IReadOnlyList<string> serverProtocols)
    {
        var values = headerValues.ToList();
        if (values.Count == 0) return (null, $"unable to upgrade: header {ProtocolHeader} does not exist; name the protocols the client speaks, for example v4.channel.k8s.io");
        var clientProtocols = Split(values);
        if (clientProtocols.Count == 0) return (null, $"unable to upgrade: header {ProtocolHeader} names no protocol");
        foreach (var candidate in clientProtocols)
            if (serverProtocols.Contains(candidate)) return (candidate, null);
        return (null, null);
    }

    private static List<string> Split(IEnumerable<string?> values) =>
        values.SelectMany(v => (v ?? "").Split(',')).Select(p => p.Trim(' ')).Where(p => p.Length > 0).ToList();

    private static async Task PlainAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync(message + "\n").ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        stopping.Cancel();
        using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await app.StopAsync(quick.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        await app.DisposeAsync().ConfigureAwait(false);
        stopping.Dispose();
    }
}
