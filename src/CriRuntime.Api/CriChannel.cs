using System.Net.Sockets;
using Grpc.Net.Client;

namespace CriRuntime.Api;

/// <summary>Opens gRPC channels to a CRI endpoint on a unix socket, the way kubelet and crictl reach a runtime.</summary>
public static class CriChannel
{
    /// <summary>
    /// A channel to <paramref name="socketPath"/> (a path, or a <c>unix://</c> URI). Every HTTP/2
    /// connection the channel makes is a new connection to that socket.
    /// </summary>
    public static GrpcChannel ForUnixSocket(string socketPath, int maxMessageBytes = 16 * 1024 * 1024)
    {
        string path = socketPath.StartsWith("unix://", StringComparison.Ordinal) ? socketPath["unix://".Length..] : socketPath;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            EnableMultipleHttp2Connections = true,
        };
        // The authority is not used on a unix socket; "localhost" keeps HTTP/2 happy.
        return GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = maxMessageBytes,
            MaxSendMessageSize = maxMessageBytes,
        });
    }
}
