using System.Net.Sockets;

namespace CriRuntime.Hosting;

/// <summary>
/// Binds the CRI unix socket ourselves, so its mode (0660) is set before anyone can connect and a
/// live socket of another daemon is never stolen. Kestrel then serves on the listening handle.
/// </summary>
internal static class UnixSocketListener
{
    // .NET unlinks a unix socket's path when its Socket is disposed or finalized. Kestrel serves the
    // descriptor, so this object must never be collected: it would delete the path under the daemon.
    internal static Socket? Listening { get; private set; }

    /// <summary>Binds and listens; returns the listening descriptor, now owned by whoever serves it.</summary>
    public static ulong Bind(string path)
    {
        string directory = Path.GetDirectoryName(path) ?? "/";
        // Made here: 0711, so the socket's group can reach the socket (0660) but list nothing beside it.
        CriRuntime.Native.FileModes.CreateDirectory(directory, CriRuntime.Native.FileModes.TraversableDirectory);

        if (Path.Exists(path))
        {
            var info = new FileInfo(path);
            if ((info.Attributes & FileAttributes.Directory) != 0)
                throw new StartupException($"socket path {path} is a directory; choose another 'socket' in the config or remove it");
            if (IsServed(path))
                throw new StartupException($"another process is already serving on {path} (is criruntime already running?); stop it or set a different 'socket' in the config");
            // Left behind by a daemon that did not shut down cleanly.
            File.Delete(path);
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
            socket.Listen(512);
            ulong handle = (ulong)socket.SafeHandle.DangerousGetHandle();
            // Kestrel wraps the descriptor in a socket of its own and closes it at shutdown;
            // ours must never close it too (the number could by then be another file's).
            socket.SafeHandle.SetHandleAsInvalid();
            GC.SuppressFinalize(socket);
            Listening = socket;
            return handle;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new StartupException($"cannot listen on {path}: {e.Message}", e);
        }
    }

    private static bool IsServed(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Removes the socket file if it is still the one we bound (not a successor's).</summary>
    public static void Remove(string path)
    {
        try
        {
            if (Path.Exists(path) && !IsServed(path)) File.Delete(path);
        }
        catch (IOException)
        {
        }
    }
}
