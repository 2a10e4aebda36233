using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CriRuntime.Native;

/// <summary>
/// A pseudo-terminal pair the daemon owns: the master stays here, the slave becomes a child's stdio. Reads and
/// writes on the master are non-blocking with poll(2), so a blocked terminal never holds a thread past
/// cancellation (each call waits at most <see cref="PollInterval"/> between checks).
/// </summary>
public sealed unsafe partial class PseudoTerminal : IDisposable
{
    private const string Libc = "libc.so.6";
    private const int O_RDWR = 2, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    private const int F_GETFL = 3, F_SETFL = 4, TCSANOW = 0;
    private const nuint TIOCGWINSZ = 0x5413, TIOCSWINSZ = 0x5414;
    private const short POLLIN = 0x1, POLLOUT = 0x4;

    /// <summary>How long one poll waits before the cancellation token is looked at again.</summary>
    private const int PollInterval = 200;

    private PseudoTerminal(SafeFileHandle master, SafeFileHandle slave, string slavePath)
    {
        Master = master;
        Slave = slave;
        SlavePath = slavePath;
    }

    /// <summary>The master side (non-blocking): what the slave's process writes is read here, and what is written here is its input.</summary>
    public SafeFileHandle Master { get; }

    /// <summary>The slave side (/dev/pts/N), in raw mode: hand it to a child as stdio, then <see cref="CloseSlave"/>.</summary>
    public SafeFileHandle Slave { get; }

    public string SlavePath { get; }

    /// <summary>
    /// Opens a new pair. The slave starts in raw mode (no echo, no line editing, no output translation), so bytes
    /// pass through unchanged even before the program on it sets its own mode.
    /// </summary>
    public static PseudoTerminal Open()
    {
        int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0) throw NativeException.Last("posix_openpt", "/dev/ptmx");
        var masterHandle = new SafeFileHandle(master, ownsHandle: true);
        try
        {
            if (grantpt(master) != 0) throw NativeException.Last("grantpt", null);
            if (unlockpt(master) != 0) throw NativeException.Last("unlockpt", null);
            var name = new byte[128];
            int rc;
            fixed (byte* p = name) rc = ptsname_r(master, p, (nuint)name.Length);
            if (rc != 0) throw new NativeException("ptsname_r", null, rc);
            string slavePath = System.Text.Encoding.ASCII.GetString(name, 0, Array.IndexOf(name, (byte)0));
            int slave;
            fixed (byte* p = name) slave = open(p, O_RDWR | O_NOCTTY | O_CLOEXEC);
            if (slave < 0) throw NativeException.Last("open", slavePath);
            var slaveHandle = new SafeFileHandle(slave, ownsHandle: true);
            try
            {
                MakeRaw(slave, slavePath);
                int flags = fcntl(master, F_GETFL, 0);
                if (flags < 0 || fcntl(master, F_SETFL, flags | O_NONBLOCK) < 0) throw NativeException.Last("fcntl", null, "make the terminal master non-blocking");
                return new PseudoTerminal(masterHandle, slaveHandle, slavePath);
            }
            catch
            {
                slaveHandle.Dispose();
                throw;
            }
        }
        catch
        {
            masterHandle.Dispose();
            throw;
        }
    }

    private static void MakeRaw(int fd, string path)
    {
        // struct termios is 60 bytes with glibc on Linux; a larger buffer leaves room for any libc's layout,
        // and cfmakeraw does the flag arithmetic so its layout is never spelled out here.
        byte* termios = stackalloc byte[256];
        new Span<byte>(termios, 256).Clear();
        if (tcgetattr(fd, termios) != 0) throw NativeException.Last("tcgetattr", path);
        cfmakeraw(termios);
        if (tcsetattr(fd, TCSANOW, termios) != 0) throw NativeException.Last("tcsetattr", path);
    }

    /// <summary>Closes this process's copy of the slave (once a child has it), so the master sees EOF when the child's copies close.</summary>
    public void CloseSlave() => Slave.Dispose();

    /// <summary>Sets the window size (TIOCSWINSZ); the terminal's foreground process group, if it has one, gets SIGWINCH.</summary>
    public void SetWindowSize(ushort rows, ushort columns)
    {
        var size = new WinSize { Rows = rows, Columns = columns };
        bool added = false;
        Master.DangerousAddRef(ref added);
        try
        {
            if (ioctl((int)Master.DangerousGetHandle(), TIOCSWINSZ, &size) != 0) throw NativeException.Last("ioctl", SlavePath, "set the window size (TIOCSWINSZ) of");
        }
        finally
        {
            if (added) Master.DangerousRelease();
        }
    }

    /// <summary>
    /// Sets the window size of the terminal that <paramref name="pid"/> has as stdin, stdout or stderr (through
    /// /proc/PID/fd, so a terminal in another mount namespace's devpts is reached too); false when none of them is a
    /// terminal or the process is gone. The kernel then sends SIGWINCH to that terminal's foreground process group.
    /// </summary>
    public static bool TrySetWindowSizeOf(int pid, ushort rows, ushort columns)
    {
        var size = new WinSize { Rows = rows, Columns = columns };
        for (int stdio = 0; stdio <= 2; stdio++)
        {
            var path = Interop.CString($"/proc/{pid}/fd/{stdio}");
            int fd;
            fixed (byte* p = path) fd = open(p, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0) continue;
            try
            {
                if (ioctl(fd, TIOCSWINSZ, &size) == 0) return true;
            }
            finally
            {
                close(fd);
            }
        }
        return false;
    }

    /// <summary>The current window size (TIOCGWINSZ).</summary>
    public (ushort Rows, ushort Columns) GetWindowSize()
    {
        WinSize size;
        bool added = false;
        Master.DangerousAddRef(ref added);
        try
        {
            if (ioctl((int)Master.DangerousGetHandle(), TIOCGWINSZ, &size) != 0) throw NativeException.Last("ioctl", SlavePath, "get the window size (TIOCGWINSZ) of");
        }
        finally
        {
            if (added) Master.DangerousRelease();
        }
        return (size.Rows, size.Columns);
    }

    /// <summary>
    /// Reads what the slave's programs wrote, waiting until there is some. Returns 0 once every copy of the slave is
    /// closed (the kernel answers EIO then) and nothing is left to read. Blocks the calling thread.
    /// </summary>
    public int Read(Span<byte> buffer, CancellationToken cancellationToken)
    {
        bool added = false;
        Master.DangerousAddRef(ref added);
        try
        {
            int fd = (int)Master.DangerousGetHandle();
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                nint n;
                fixed (byte* p = buffer) n = read(fd, p, (nuint)buffer.Length);
                if (n >= 0) return (int)n;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Errno.EIO) return 0;
                if (errno == Errno.EINTR) continue;
                if (errno != Errno.EAGAIN) throw new NativeException("read", SlavePath, errno, "read the terminal master of");
                Wait(fd, POLLIN);
            }
        }
        finally
        {
            if (added) Master.DangerousRelease();
        }
    }

    /// <summary>Writes all of <paramref name="data"/> as input for the slave's programs. Blocks the calling thread while the terminal's input queue is full.</summary>
    public void Write(ReadOnlySpan<byte> data, CancellationToken cancellationToken)
    {
        bool added = false;
        Master.DangerousAddRef(ref added);
        try
        {
            int fd = (int)Master.DangerousGetHandle();
            while (data.Length > 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                nint n;
                fixed (byte* p = data) n = write(fd, p, (nuint)data.Length);
                if (n > 0)
                {
                    data = data[(int)n..];
                    continue;
                }
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Errno.EINTR) continue;
                if (errno == Errno.EIO) throw new EndOfStreamException($"the terminal {SlavePath} is closed: nobody reads its input any more");
                if (errno != Errno.EAGAIN) throw new NativeException("write", SlavePath, errno, "write to the terminal master of");
                Wait(fd, POLLOUT);
            }
        }
        finally
        {
            if (added) Master.DangerousRelease();
        }
    }

    private void Wait(int fd, short events)
    {
        var poll = new PollFd { Fd = fd, Events = events };
        int rc = Interop_poll(&poll, 1, PollInterval);
        if (rc < 0 && Marshal.GetLastPInvokeError() is int errno && errno != Errno.EINTR)
            throw new NativeException("poll", SlavePath, errno, "wait for the terminal master of");
    }

    public void Dispose()
    {
        Slave.Dispose();
        Master.Dispose();
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct WinSize
    {
        public ushort Rows, Columns, XPixels, YPixels;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events, Revents;
    }

    [LibraryImport(Libc, SetLastError = true)] private static partial int posix_openpt(int flags);
    [LibraryImport(Libc, SetLastError = true)] private static partial int grantpt(int fd);
    [LibraryImport(Libc, SetLastError = true)] private static partial int unlockpt(int fd);
    [LibraryImport(Libc)] private static partial int ptsname_r(int fd, byte* buf, nuint len);
    [LibraryImport(Libc, SetLastError = true)] private static partial int open(byte* path, int flags);
    [LibraryImport(Libc, SetLastError = true)] private static partial int close(int fd);
    [LibraryImport(Libc, SetLastError = true)] private static partial int fcntl(int fd, int cmd, int arg);
    [LibraryImport(Libc, SetLastError = true)] private static partial int tcgetattr(int fd, byte* termios);
    [LibraryImport(Libc, SetLastError = true)] private static partial int tcsetattr(int fd, int action, byte* termios);
    [LibraryImport(Libc)] private static partial void cfmakeraw(byte* termios);
    [LibraryImport(Libc, SetLastError = true)] private static partial int ioctl(int fd, nuint request, void* arg);
    [LibraryImport(Libc, SetLastError = true)] private static partial nint read(int fd, byte* buf, nuint count);
    [LibraryImport(Libc, SetLastError = true)] private static partial nint write(int fd, byte* buf, nuint count);
    [LibraryImport(Libc, EntryPoint = "poll", SetLastError = true)] private static partial int Interop_poll(PollFd* fds, nuint count, int timeoutMs);
}
