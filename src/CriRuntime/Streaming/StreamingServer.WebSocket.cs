using System.Net.WebSockets;
using CriRuntime.Streaming.WebSockets;

namespace CriRuntime.Streaming;

/// <summary>A WebSocket streaming connection, accepted with its subprotocol, handed to the handler of its kind.</summary>
/// <param name="Protocol">The negotiated subprotocol; channel.k8s.io when the client named none.</param>
internal sealed record WebSocketStreamingConnection(StreamingRequest Request, string Protocol, WebSocket Socket, TimeSpan IdleTimeout);

/// <summary>
/// Serves one kind of streaming connection over WebSocket (k8s.io/apimachinery's wsstream channel protocols). A
/// kind gets WebSocket by registering one of these beside its SPDY <see cref="IStreamingHandler"/>; the server
/// does the token, the handshake, subprotocol negotiation and the session metrics for all of them.
/// </summary>
internal interface IWebSocketStreamingHandler
{
    /// <summary>The subprotocols this handler speaks, in the server's order of preference.</summary>
    IReadOnlyList<string> Protocols { get; }

    Task ServeAsync(WebSocketStreamingConnection connection, CancellationToken cancellationToken);
}

internal sealed partial class StreamingServer
{
    private static string TransportOf(HttpContext context) => context.WebSockets.IsWebSocketRequest ? "websocket" : "spdy";

    /// <summary>The handler and subprotocol a WebSocket upgrade will get.</summary>
    private sealed record WebSocketUpgrade(IWebSocketStreamingHandler Handler, string Protocol);

    /// <summary>
    /// Whether a WebSocket upgrade (GET with Upgrade: websocket) can be served, answered before its token is
    /// consumed: a kind with no WebSocket handler is 501 and no protocol in common is 403 (as wsstream's
    /// handshake), both without the 101, so that a client that tries WebSocket first (client-go's
    /// FallbackExecutor) sees a failed upgrade and falls back to SPDY with the same URL. Otherwise the first of
    /// the client's Sec-WebSocket-Protocol values (its order) the handler speaks wins; none named means
    /// channel.k8s.io (""). Null when the request was answered.
    /// </summary>
    private async Task<WebSocketUpgrade?> NegotiateWebSocketAsync(HttpContext context, StreamingKind kind)
    {
        if (!webSocketHandlers.TryGetValue(kind, out var handler))
        {
            StreamingMetrics.Reject(kind, "websocket");
            await PlainAsync(context, StatusCodes.Status501NotImplemented, $"{kind} over WebSocket is not served; upgrade to SPDY/3.1 instead").ConfigureAwait(false);
            return null;
        }
        var clientProtocols = context.WebSockets.WebSocketRequestedProtocols;
        var protocol = ChannelProtocols.Negotiate([.. clientProtocols], handler.Protocols);
        if (protocol == null)
        {
            StreamingMetrics.Reject(kind, "websocket");
            await PlainAsync(context, StatusCodes.Status403Forbidden,
                $"unable to upgrade: requested protocol(s) are not supported: {string.Join(", ", clientProtocols)}; supports {string.Join(", ", handler.Protocols)}").ConfigureAwait(false);
            return null;
        }
        return new WebSocketUpgrade(handler, protocol);
    }

    /// <summary>Completes the handshake <see cref="NegotiateWebSocketAsync"/> allowed and hands the socket to the kind's handler.</summary>
    private async Task HandleWebSocketAsync(HttpContext context, StreamingKind kind, StreamingRequest request, WebSocketUpgrade upgrade)
    {
        var (handler, protocol) = upgrade;
        var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { SubProtocol = protocol.Length == 0 ? null : protocol }).ConfigureAwait(false);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token, context.RequestAborted);
        using var tracked = StreamingMetrics.Begin(kind, "websocket");
        try
        {
            await handler.ServeAsync(new WebSocketStreamingConnection(request, protocol.Length == 0 ? ChannelProtocols.V1 : protocol, socket,
                config.IdleTimeout), linked.Token).ConfigureAwait(false);
            tracked.Complete();
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException)
        {
            tracked.Abort();
            logger.LogDebug("{Kind} WebSocket connection ended: {Message}", kind, e.Message);
        }
        finally
        {
            socket.Dispose();
        }
    }
}
