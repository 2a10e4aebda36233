using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using CriRuntime.Native;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Oci;

/// <summary>The running container an attach joins, and how it was created (what its monitor holds).</summary>
public sealed record AttachTarget(string Id, string BundleDir, bool Tty, bool Stdin, bool StdinOnce);

/// <summary>
/// Where an attach's streams go. The container's stdout and stderr are written as they come (with a tty they are
/// one stream, written to <see cref="WriteStdout"/>); stdin is read until it returns 0. A null member is not
/// connected. <see cref="Resizes"/> carries the client's window sizes for a tty.
/// </summary>
public sealed record AttachStdio(
    Func<Memory<byte>, CancellationToken, ValueTask<int>>? ReadStdin,
    Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? WriteStdout,
    Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? WriteStderr,
    ChannelReader<TerminalSize>? Resizes);

/// <summary>
/// Attaching to a container's stdio through conmon, as CRI-O does. conmon listens on <c>BUNDLE/attach</c>
/// (SOCK_SEQPACKET, bound there with --full-attach): every client gets each chunk of the container's output as one
/// packet whose first byte names the pipe (2 stdout, 3 stderr; a terminal is stdout) and whose rest is at most
/// 8192 bytes; what a client sends is the container's stdin, and a client shutting down its sending side makes
/// conmon close the container's stdin when it was started with --stdin and without --leave-stdin-open
/// (stdin_once). Window sizes go to conmon's control FIFO <c>BUNDLE/ctl</c> as "1 HEIGHT WIDTH\n"; conmon sets them
/// on the container's terminal. When the container exits conmon closes every attach connection.
/// </summary>
public static class ConmonAttach
{
    private const byte StdoutPipe = 2, StderrPipe = 3;
    private const int ResizeEvent = 1;

    /// <summary>conmon's STDIO_BUF_SIZE plus the pipe byte; larger packets are never sent.</summary>
    private const int PacketSize = 8192 + 1;

    /// <summary>Stdin is sent in packets no larger than what conmon reads at once (it reads 32 KiB; a smaller packet leaves room).</summary>
    private const int StdinChunk = 8192;

    /// <summary>
    /// Streams until the container's output ends (it exited) or, for a container that keeps its stdin open and has
    /// no terminal, until the client's stdin ends (as CRI-O: the client is done, the container goes on).
    /// Cancellation (the client left) just disconnects; the container runs on.
    /// </summary>
    public static async Task AttachAsync(AttachTarget target, AttachStdio stdio, ILogger logger, CancellationToken ct)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        using (var bundle = OpenBundle(target))
        {
            // Through /proc/self/fd, so a bundle path past sun_path's 108 bytes still works.
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(FilesAt.ProcPath(bundle, "attach")), ct).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                throw new FailedPreconditionException($"container {target.Id} cannot be attached to: its monitor is gone ({e.Message}); it has probably just exited");
            }
        }

        using var pumps = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var output = PumpOutputAsync(socket, stdio, pumps.Token);
        var input = PumpStdinAsync(socket, stdio.ReadStdin, pumps.Token);
        var resizes = PumpResizesAsync(target, stdio.Resizes, logger, pumps.Token);
        try
        {
            if (stdio.ReadStdin != null && target.Stdin && !target.StdinOnce && !target.Tty)
            {
                var first = await Task.WhenAny(output, input).WaitAsync(ct).ConfigureAwait(false);
                await first.ConfigureAwait(false);
            }
            else
            {
                await output.WaitAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            pumps.Cancel();
            foreach (var pump in new[] { output, input, resizes })
            {
                try { await pump.ConfigureAwait(false); } catch (Exception) { }
            }
        }
    }

    private static Microsoft.Win32.SafeHandles.SafeFileHandle OpenBundle(AttachTarget target)
    {
        try
        {
            return Files.OpenDirectory(target.BundleDir);
        }
        catch (NativeException e) when (e.Errno == Errno.ENOENT)
        {
            throw new FailedPreconditionException($"container {target.Id} cannot be attached to: its bundle is gone; it has probably just been removed");
        }
    }

    private static async Task PumpOutputAsync(Socket socket, AttachStdio stdio, CancellationToken ct)
    {
        var packet = new byte[PacketSize + 1];
        while (true)
        {
            int n;
            try
            {
                n = await socket.ReceiveAsync(packet, SocketFlags.None, ct).ConfigureAwait(false);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown)
            {
                return;
            }
            if (n == 0) return;
            if (n == 1) continue;
            var data = packet.AsMemory(1, n - 1);
            var to = packet[0] switch
            {
                StdoutPipe => stdio.WriteStdout,
                StderrPipe => stdio.WriteStderr,
                _ => null,
            };
            if (to != null) await to(data, ct).ConfigureAwait(false);
        }
    }

    private static async Task PumpStdinAsync(Socket socket, Func<Memory<byte>, CancellationToken, ValueTask<int>>? from, CancellationToken ct)
    {
        if (from == null) return;
        var buffer = new byte[StdinChunk];
        try
        {
            int n;
            while ((n = await from(buffer, ct).ConfigureAwait(false)) > 0)
                await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, ct).ConfigureAwait(false);
            // conmon closes the container's stdin on this when the container is stdin_once.
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // conmon went away (the container exited): nothing more to give it.
        }
    }

    private static async Task PumpResizesAsync(AttachTarget target, ChannelReader<TerminalSize>? resizes, ILogger logger, CancellationToken ct)
    {
        if (resizes == null || !target.Tty) return;
        string ctl = Path.Combine(target.BundleDir, "ctl");
        await foreach (var size in resizes.ReadAllAsync(ct).ConfigureAwait(false))
        {
            var line = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{ResizeEvent} {size.Height} {size.Width}\n"));
            if (!Fifos.TryWrite(ctl, line))
                logger.LogDebug("Resize of container {Id}'s terminal dropped: nobody reads {Ctl}", target.Id, ctl);
        }
    }
}
