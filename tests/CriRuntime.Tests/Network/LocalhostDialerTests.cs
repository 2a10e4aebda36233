using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CriRuntime.Native;
using CriRuntime.Network;
using CriRuntime.Tests.Storage;
using Xunit;

namespace CriRuntime.Tests.Network;

/// <summary>Port-forward dialling against the real kernel, as root: a pinned network namespace of its own and the host's loopback.</summary>
public sealed class LocalhostDialerTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Fact]
    public async Task Dials_localhost_of_the_pinned_namespace_IPv4_then_IPv6_and_never_the_hosts()
    {
        string dir = Path.Combine(tmp.Path, "pod");
        Directory.CreateDirectory(dir);
        var pinned = await Namespaces.CreatePinnedAsync(dir, NamespaceKinds.Network, null, CancellationToken.None);
        string netns = pinned.NetworkPath!;
        try
        {
            // A fresh namespace's loopback is down; a pod's is brought up by CNI's loopback plugin.
            using (var up = Process.Start(new ProcessStartInfo("nsenter", [$"--net={netns}", "ip", "link", "set", "lo", "up"]) { UseShellExecute = false })!)
            {
                await up.WaitForExitAsync();
                Assert.Equal(0, up.ExitCode);
            }
            using var timeout = new CancellationTokenSource(Wait);

            // Listeners made in the namespace: one on 127.0.0.1, one on ::1 only.
            using var v4 = await ListenInAsync(netns, IPAddress.Loopback);
            using var v6 = await ListenInAsync(netns, IPAddress.IPv6Loopback);
            await AssertEchoAsync(v4, await LocalhostDialer.DialAsync(netns, PortOf(v4), timeout.Token), timeout.Token);
            await AssertEchoAsync(v6, await LocalhostDialer.DialAsync(netns, PortOf(v6), timeout.Token), timeout.Token);

            // A port that only the host listens on is refused inside the namespace, on both families.
            using var host = new TcpListener(IPAddress.Loopback, 0);
            host.Start();
            int hostPort = ((IPEndPoint)host.LocalEndpoint).Port;
            var refused = await Assert.ThrowsAsync<PortDialException>(() => LocalhostDialer.DialAsync(netns, hostPort, timeout.Token));
            Assert.Equal(CriErrorKind.Unavailable, refused.ErrorKind);
            Assert.Equal($"IPv4: dial tcp4 127.0.0.1:{hostPort}: connect: connection refused IPv6: dial tcp6 [::1]:{hostPort}: connect: connection refused", refused.Message);

            // Null dials the daemon's own namespace, where the host's listener is.
            var hostSide = LocalhostDialer.DialAsync(null, hostPort, timeout.Token);
            using var accepted = await host.AcceptSocketAsync(timeout.Token);
            using var dialled = await hostSide;
            Assert.Equal(hostPort, ((IPEndPoint)dialled.RemoteEndPoint!).Port);
        }
        finally
        {
            Namespaces.Unpin(netns);
        }
    }

    [Fact]
    public async Task Refuses_ports_outside_1_to_65535()
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => LocalhostDialer.DialAsync(null, 0, CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => LocalhostDialer.DialAsync(null, 65536, CancellationToken.None));
    }

    private static async Task<Socket> ListenInAsync(string netns, IPAddress address)
    {
        var socket = await NamespaceSockets.CreateTcpSocketAsync(netns, address.AddressFamily, CancellationToken.None);
        socket.Bind(new IPEndPoint(address, 0));
        socket.Listen();
        return socket;
    }

    private static int PortOf(Socket listener) => ((IPEndPoint)listener.LocalEndPoint!).Port;

    private static async Task AssertEchoAsync(Socket listener, Socket client, CancellationToken cancellationToken)
    {
        using (client)
        {
            using var server = await listener.AcceptAsync(cancellationToken);
            await client.SendAsync("ping"u8.ToArray(), SocketFlags.None, cancellationToken);
            var buffer = new byte[4];
            int n = 0;
            while (n < 4) n += await server.ReceiveAsync(buffer.AsMemory(n), SocketFlags.None, cancellationToken);
            Assert.Equal("ping"u8.ToArray(), buffer);
        }
    }
}
