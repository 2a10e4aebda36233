using System.Runtime.InteropServices;

namespace CriRuntime.Native;

/// <summary>Writing to a FIFO whose reader may be gone.</summary>
public static unsafe partial class Fifos
{
    private const int O_WRONLY = 1, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;

    /// <summary>
    /// Opens the FIFO without blocking and writes <paramref name="message"/> in one write (atomic up
    /// to PIPE_BUF). False when nobody has it open for reading (ENXIO) or it does not exist (ENOENT):
    /// a plain open would block forever in that case.
    /// </summary>
    public static bool TryWrite(string path, ReadOnlySpan<byte> message)
    {
        var p = Interop.CString(path);
        int fd;
        fixed (byte* pp = p) fd = open(pp, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno is Errno.ENXIO or Errno.ENOENT) return false;
            throw new NativeException("open", path, errno);
        }
        try
        {
            fixed (byte* pm = message)
            {
                while (true)
                {
                    nint n = write(fd, pm, (nuint)message.Length);
                    if (n == message.Length) return true;
                    int errno = Marshal.GetLastPInvokeError();
                    if (n < 0 && errno == Errno.EINTR) continue;
                    if (n < 0 && errno == Errno.EPIPE) return false;
                    throw n < 0 ? new NativeException("write", path, errno) : new IOException($"short write to {path}");
                }
            }
        }
        finally { close(fd); }
    }

    [LibraryImport("libc.so.6", SetLastError = true)] private static partial int open(byte* path, int flags);
    [LibraryImport("libc.so.6", SetLastError = true)] private static partial nint write(int fd, byte* buf, nuint count);
    [LibraryImport("libc.so.6", SetLastError = true)] private static partial int close(int fd);
}
