using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace CriRuntime.Native;

/// <summary>
/// Reads files on the node whose path a request names (a Localhost seccomp profile, ...). The path is the
/// client's choice, so it may be a FIFO nobody writes (a blocking open or read would hang the call), a
/// device such as /dev/zero (endless), or simply huge: the file is opened O_NONBLOCK, must be a regular
/// file by fstat on that very descriptor, and is read only up to a bound.
/// </summary>
public static unsafe class RequestedFiles
{
    /// <summary>
    /// The content of the regular file at <paramref name="path"/>, at most <paramref name="maxBytes"/> long.
    /// Anything else is an <see cref="InvalidArgumentException"/> whose message names <paramref name="field"/> and the path.
    /// </summary>
    public static byte[] ReadRegularFile(string path, int maxBytes, string field)
    {
        SafeFileHandle handle;
        try
        {
            // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. O_NOCTTY: a terminal
            // device must not become our controlling terminal.
            handle = Files.Open(path, LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_NOCTTY, "open");
        }
        catch (NativeException e)
        {
            throw new InvalidArgumentException($"{field} {path} cannot be read: {e.Message}");
        }
        using (handle)
        {
            var status = Files.Fstat(handle);
            if (status.Type != FileType.RegularFile)
                throw new InvalidArgumentException($"{field} {path} is not a regular file (it is a {Describe(status.Type)}); name a regular file on the node");
            if (status.Size > maxBytes)
                throw new InvalidArgumentException($"{field} {path} is {status.Size} bytes, more than the {maxBytes} allowed");
            // The file may grow after fstat: read one byte past the bound to notice.
            var buffer = new byte[Math.Min((long)maxBytes + 1, Math.Max(status.Size + 1, 4096))];
            int filled = 0;
            while (true)
            {
                if (filled == buffer.Length)
                {
                    if (buffer.Length > maxBytes)
                        throw new InvalidArgumentException($"{field} {path} is larger than the {maxBytes} bytes allowed");
                    Array.Resize(ref buffer, (int)Math.Min((long)maxBytes + 1, (long)buffer.Length * 2));
                }
                long n;
                fixed (byte* p = &buffer[filled])
                    n = LibC.read(Files.Fd(handle), p, buffer.Length - filled);
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Errno.EINTR) continue;
                    throw new InvalidArgumentException($"{field} {path} cannot be read: {new NativeException("read", path, errno).Message}");
                }
                if (n == 0) break;
                filled += (int)n;
            }
            return buffer.AsSpan(0, filled).ToArray();
        }
    }

    private static string Describe(FileType type) => type switch
    {
        FileType.Fifo => "FIFO",
        FileType.CharacterDevice => "character device",
        FileType.BlockDevice => "block device",
        FileType.Directory => "directory",
        FileType.Socket => "socket",
        _ => "special file",
    };
}
