using System.Net;
using System.Net.Sockets;
using CriRuntime.Native;

namespace CriRuntime.Network;

/// <summary>A port-forward target that could not be reached; the message says what each address family answered.</summary>
public sealed class PortDialException(string message, Exception? inner = null) : CriException(CriErrorKind.Unavailable, message, inner);

/// <summary>
/// Dials localhost:PORT inside a pod's network namespace (or the host's, for host-network pods) as containerd's
/// port-forward does: IPv4 (127.0.0.1) first, then IPv6 (::1), one after the other and never in parallel, each
/// attempt bounded by <see cref="AttemptTimeout"/>. No socat and no helper process: the socket is made in the
/// namespace (<see cref="NamespaceSockets"/>) and connected from here.
/// </summary>
public static class LocalhostDialer
{
    /// <summary>How long one connect may take (containerd's dial timeout), so a silently dropped SYN cannot hang a request.</summary>
    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// A connected socket to localhost:<paramref name="port"/> in the network namespace at
    /// <paramref name="netnsPath"/>, or in the daemon's own when it is null. Throws <see cref="PortDialException"/>
    /// naming both attempts' errors when neither connects.
    /// </summary>
    public static async Task<Socket> DialAsync(string? netnsPath, int port, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        var v4 = await TryDialAsync(netnsPath, IPAddress.Loopback, port, cancellationToken).ConfigureAwait(false);
        if (v4.Socket != null) return v4.Socket;
        var v6 = await TryDialAsync(netnsPath, IPAddress.IPv6Loopback, port, cancellationToken).ConfigureAwait(false);
        if (v6.Socket != null) return v6.Socket;
        throw new PortDialException($"IPv4: dial tcp4 127.0.0.1:{port}: {v4.Error} IPv6: dial tcp6 [::1]:{port}: {v6.Error}");
    }

    private static async Task<(Socket? Socket, string? Error)> TryDialAsync(string? netnsPath, IPAddress address, int port, CancellationToken cancellationToken)
    {
        Socket socket;
        try
        {
            socket = netnsPath == null
                ? new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
                : await NamespaceSockets.CreateTcpSocketAsync(netnsPath, address.AddressFamily, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or NativeException)
        {
            // A namespace without IPv6 refuses AF_INET6 sockets (EAFNOSUPPORT): that family just fails.
            return (null, $"socket: {e.Message}");
        }
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        attempt.CancelAfter(AttemptTimeout);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(address, port), attempt.Token).ConfigureAwait(false);
            socket.NoDelay = true;
            return (socket, null);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            return (null, $"connect: {Describe(e)}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            return (null, $"connect: no answer within {AttemptTimeout.TotalSeconds:0} s");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static string Describe(SocketException e) => e.SocketErrorCode switch
    {
        SocketError.ConnectionRefused => "connection refused",
        SocketError.NetworkUnreachable => "network is unreachable",
        SocketError.AddressNotAvailable => "cannot assign requested address",
        _ => e.Message,
    };
}
