using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace CriRuntime.Native;

/// <summary>
/// TCP sockets that belong to another network namespace. A socket stays in the namespace it was made in, so only
/// socket(2) has to run on a thread that joined the namespace; connecting, reading and writing then happen on the
/// daemon's ordinary threads, asynchronously, and reach that namespace's addresses (its own localhost).
/// </summary>
public static partial class NamespaceSockets
{
    private const int AF_INET = 2, AF_INET6 = 10, SOCK_STREAM = 1, SOCK_CLOEXEC = 0x80000;

    /// <summary>A new, unconnected TCP socket of <paramref name="family"/> in the network namespace at <paramref name="netnsPath"/> (a pin or /proc/PID/ns/net).</summary>
    public static async Task<Socket> CreateTcpSocketAsync(string netnsPath, AddressFamily family, CancellationToken cancellationToken)
    {
        int domain = family switch
        {
            AddressFamily.InterNetwork => AF_INET,
            AddressFamily.InterNetworkV6 => AF_INET6,
            _ => throw new ArgumentOutOfRangeException(nameof(family), family, "only IPv4 and IPv6 sockets are made in a namespace"),
        };
        // Only socket(2) runs in the namespace: the thread makes no other thread and ends right after.
        int fd = await Namespaces.RunInNetworkNamespaceAsync(netnsPath, () =>
        {
            int made = socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (made < 0) throw NativeException.Last("socket", netnsPath, $"socket({family}) in the network namespace");
            return made;
        }, cancellationToken).ConfigureAwait(false);
        var handle = new SafeSocketHandle(fd, ownsHandle: true);
        try
        {
            return new Socket(handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);
}
