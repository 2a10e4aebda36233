using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace CriRuntime.Native;

/// <summary>Extended attributes. The path variants are the l* calls: a symlink's own attributes.</summary>
public static unsafe class Xattrs
{
    /// <summary>lsetxattr; throws <see cref="NativeException"/> (EPERM/ENOTSUP when not allowed or not supported).</summary>
    public static void Set(string path, string name, ReadOnlySpan<byte> value)
    {
        int errno = TrySet(path, name, value);
        if (errno != 0) throw new NativeException("lsetxattr", path, errno, $"lsetxattr {name} on");
    }

    /// <summary>lsetxattr returning errno (0 on success), for callers that tolerate some failures.</summary>
    public static int TrySet(string path, string name, ReadOnlySpan<byte> value)
    {
        var p = Interop.CString(path);
        var n = Interop.CString(name);
        fixed (byte* pp = p, pn = n, pv = value)
        {
            byte dummy = 0;
            return Interop.lsetxattr(pp, pn, pv == null ? &dummy : pv, (nuint)value.Length, 0) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
    }

    public static void Set(SafeFileHandle file, string name, ReadOnlySpan<byte> value, string? display = null)
    {
        int errno = TrySet(file, name, value);
        if (errno != 0) throw new NativeException("fsetxattr", display, errno, $"fsetxattr {name} on");
    }

    public static int TrySet(SafeFileHandle file, string name, ReadOnlySpan<byte> value)
    {
        var n = Interop.CString(name);
        fixed (byte* pn = n, pv = value)
        {
            byte dummy = 0;
            int rc = Interop.fsetxattr(Files.Fd(file), pn, pv == null ? &dummy : pv, (nuint)value.Length, 0);
            int errno = rc == 0 ? 0 : Marshal.GetLastPInvokeError();
            GC.KeepAlive(file);
            return errno;
        }
    }

    /// <summary>lgetxattr; null when the attribute is not set (ENODATA).</summary>
    public static byte[]? Get(string path, string name)
    {
        var p = Interop.CString(path);
        var n = Interop.CString(name);
        fixed (byte* pp = p, pn = n)
        {
            while (true)
            {
                nint size = Interop.lgetxattr(pp, pn, null, 0);
                if (size < 0) return GetFailed("lgetxattr", path, name);
                var buffer = new byte[size];
                fixed (byte* pb = buffer)
                {
                    nint got = Interop.lgetxattr(pp, pn, size == 0 ? null : pb, (nuint)size);
                    if (got >= 0) return got == size ? buffer : buffer[..(int)got];
                    if (Marshal.GetLastPInvokeError() != Errno.ERANGE) return GetFailed("lgetxattr", path, name);
                }
                // ERANGE: it grew between the two calls; ask again.
            }
        }
    }

    public static byte[]? Get(SafeFileHandle file, string name, string? display = null)
    {
        var n = Interop.CString(name);
        int fd = Files.Fd(file);
        fixed (byte* pn = n)
        {
            while (true)
            {
                nint size = Interop.fgetxattr(fd, pn, null, 0);
                if (size < 0) return GetFailed("fgetxattr", display, name);
                var buffer = new byte[size];
                fixed (byte* pb = buffer)
                {
                    nint got = Interop.fgetxattr(fd, pn, size == 0 ? null : pb, (nuint)size);
                    if (got >= 0) { GC.KeepAlive(file); return got == size ? buffer : buffer[..(int)got]; }
                    if (Marshal.GetLastPInvokeError() != Errno.ERANGE) return GetFailed("fgetxattr", display, name);
                }
            }
        }
    }

    /// <summary>llistxattr: the attribute names set on the path itself.</summary>
    public static IReadOnlyList<string> List(string path)
    {
        var p = Interop.CString(path);
        fixed (byte* pp = p)
        {
            while (true)
            {
                nint size = Interop.llistxattr(pp, null, 0);
                if (size < 0) throw NativeException.Last("llistxattr", path);
                if (size == 0) return [];
                var buffer = new byte[size];
                fixed (byte* pb = buffer)
                {
                    nint got = Interop.llistxattr(pp, pb, (nuint)size);
                    if (got >= 0)
                        return Encoding.UTF8.GetString(buffer, 0, (int)got).Split('\0', StringSplitOptions.RemoveEmptyEntries);
                    if (Marshal.GetLastPInvokeError() != Errno.ERANGE) throw NativeException.Last("llistxattr", path);
                }
            }
        }
    }

    public static void Remove(string path, string name)
    {
        var p = Interop.CString(path);
        var n = Interop.CString(name);
        fixed (byte* pp = p, pn = n)
        {
            if (Interop.lremovexattr(pp, pn) != 0) throw NativeException.Last("lremovexattr", path, $"lremovexattr {name} on");
        }
    }

    private static byte[]? GetFailed(string call, string? path, string name)
    {
        int errno = Marshal.GetLastPInvokeError();
        return errno == Errno.ENODATA ? null : throw new NativeException(call, path, errno, $"{call} {name} on");
    }
}
