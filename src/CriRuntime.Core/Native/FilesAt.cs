using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace CriRuntime.Native;

/// <summary>
/// Calls relative to an open directory (openat, mkdirat, ...). Each takes a single path component
/// <c>name</c> and never follows a symlink there, so walking a tree one component at a time with
/// these cannot be redirected outside it. <c>display</c> is only used in error messages.
/// </summary>
public static unsafe class FilesAt
{
    /// <summary>Opens the subdirectory <paramref name="name"/>; null with errno set when that fails
    /// (ENOENT: missing; ELOOP/ENOTDIR: a symlink or not a directory).</summary>
    public static SafeFileHandle? TryOpenDirectory(SafeFileHandle dir, string name, out int errno)
    {
        var n = Interop.CString(name);
        fixed (byte* pn = n)
        {
            int fd = LibC.openat(Files.Fd(dir), pn, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_NOFOLLOW | LibC.O_CLOEXEC, 0);
            errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
            GC.KeepAlive(dir);
            return fd < 0 ? null : new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    public static SafeFileHandle OpenDirectory(SafeFileHandle dir, string name, string? display = null) =>
        TryOpenDirectory(dir, name, out int errno) ?? throw new NativeException("openat", display ?? name, errno);

    /// <summary>Opens the regular file <paramref name="name"/> for reading (O_NOFOLLOW: a symlink there fails with ELOOP).</summary>
    public static SafeFileHandle OpenRead(SafeFileHandle dir, string name, string? display = null)
    {
        var n = Interop.CString(name);
        fixed (byte* pn = n)
        {
            int fd = LibC.openat(Files.Fd(dir), pn, LibC.O_RDONLY | LibC.O_NOFOLLOW | LibC.O_NONBLOCK | LibC.O_CLOEXEC, 0);
            if (fd < 0) throw NativeException.Last("openat", display ?? name);
            GC.KeepAlive(dir);
            return new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    /// <summary>readlinkat: the target of the symlink <paramref name="name"/>, not followed.</summary>
    public static string ReadLink(SafeFileHandle dir, string name, string? display = null)
    {
        var n = Interop.CString(name);
        var buffer = new byte[4096];
        fixed (byte* pn = n, pb = buffer)
        {
            long length = LibC.readlinkat(Files.Fd(dir), pn, pb, buffer.Length);
            if (length < 0) throw NativeException.Last("readlinkat", display ?? name);
            GC.KeepAlive(dir);
            return System.Text.Encoding.UTF8.GetString(buffer, 0, (int)length);
        }
    }

    /// <summary>Creates a new regular file for writing (O_CREAT|O_EXCL|O_NOFOLLOW): never an existing one.</summary>
    public static SafeFileHandle CreateFile(SafeFileHandle dir, string name, int mode, string? display = null)
    {
        var n = Interop.CString(name);
        fixed (byte* pn = n)
        {
            int fd = LibC.openat(Files.Fd(dir), pn,
                LibC.O_WRONLY | LibC.O_CREAT | LibC.O_EXCL | LibC.O_NOFOLLOW | LibC.O_CLOEXEC, (ushort)(mode & 0xFFF));
            if (fd < 0) throw NativeException.Last("openat", display ?? name);
            GC.KeepAlive(dir);
            return new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    public static void Mkdir(SafeFileHandle dir, string name, int mode, string? display = null)
    {
        var n = Interop.CString(name);
        fixed (byte* pn = n)
        {
            if (LibC.mkdirat(Files.Fd(dir), pn, (ushort)(mode & 0xFFF)) != 0) throw NativeException.Last("mkdirat", display ?? name);
        }
        GC.KeepAlive(dir);
    }

    public static void Mknod(SafeFileHandle dir, string name, FileType type, int permissions, uint major, uint minor, string? display = null)
    {
        var n = Interop.CString(name);
        fixed (byte* pn = n)
        {
            if (LibC.mknodat(Files.Fd(dir), pn, Files.NodeMode(type, permissions), Devices.MakeDev(major, minor)) != 0)
                throw NativeException.Last("mknodat", display ?? name);
        }
        GC.KeepAlive(dir);
    }

    public static void Symlink(string target, SafeFileHandle dir, string name, string? display = null)
    {
        var t = Interop.CString(target);
        var n = Interop.CString(name);
        fixed (byte* pt = t, pn = n)
        {
            if (LibC.symlinkat(pt, Files.Fd(dir), pn) != 0) throw NativeException.Last("symlinkat", display ?? name);
        }
        GC.KeepAlive(dir);
    }

    /// <summary>linkat without AT_SYMLINK_FOLLOW: a symlink source is linked itself, not its target.</summary>
    public static void Link(SafeFileHandle oldDir, string oldName, SafeFileHandle newDir, string newName, string? display = null)
    {
        var o = Interop.CString(oldName);
        var n = Interop.CString(newName);
        fixed (byte* po = o, pn = n)
        {
            if (LibC.linkat(Files.Fd(oldDir), po, Files.Fd(newDir), pn, 0) != 0) throw NativeException.Last("linkat", display ?? newName);
        }
        GC.KeepAlive(oldDir);
        GC.KeepAlive(newDir);
    }

    public static void Unlink(SafeFileHandle dir, string name, bool directory, string? display = null)
    {
        var n = Interop.CString(name);
        fixed (byte* pn = n)
        {
            if (LibC.unlinkat(Files.Fd(dir), pn, directory ? LibC.AT_REMOVEDIR : 0) != 0) throw NativeException.Last("unlinkat", display ?? name);
        }
        GC.KeepAlive(dir);
    }

    /// <summary>fstatat(AT_SYMLINK_NOFOLLOW), or null when <paramref name="name"/> does not exist.</summary>
    public static FileStatus? TryStat(SafeFileHandle dir, string name, string? display = null) =>
        TryStat(dir, name, () => display ?? name);

    /// <summary>As above; the name for a message is only built on failure (deep tree walks).</summary>
    public static FileStatus? TryStat(SafeFileHandle dir, string name, Func<string> display)
    {
        var n = Interop.CString(name);
        stat st;
        fixed (byte* pn = n)
        {
            if (LibC.fstatat(Files.Fd(dir), pn, &st, LibC.AT_SYMLINK_NOFOLLOW) == 0) return Files.Convert(st);
        }
        int errno = Marshal.GetLastPInvokeError();
        GC.KeepAlive(dir);
        return errno == Errno.ENOENT ? null : throw new NativeException("fstatat", display(), errno);
    }

    /// <summary>fchownat(AT_SYMLINK_NOFOLLOW): a symlink's own owner is changed.</summary>
    public static void Chown(SafeFileHandle dir, string name, int uid, int gid, string? display = null)
    {
        var n = Interop.CString(name);
        fixed (byte* pn = n)
        {
            if (LibC.fchownat(Files.Fd(dir), pn, (uint)uid, (uint)gid, LibC.AT_SYMLINK_NOFOLLOW) != 0)
                throw NativeException.Last("fchownat", display ?? name);
        }
        GC.KeepAlive(dir);
    }

    /// <summary>fchmodat(AT_SYMLINK_NOFOLLOW): fails (EOPNOTSUPP) rather than chmod a symlink's target.</summary>
    public static void Chmod(SafeFileHandle dir, string name, int mode, string? display = null)
    {
        var n = Interop.CString(name);
        fixed (byte* pn = n)
        {
            if (LibC.fchmodat(Files.Fd(dir), pn, (ushort)(mode & 0xFFF), LibC.AT_SYMLINK_NOFOLLOW) != 0)
                throw NativeException.Last("fchmodat", display ?? name);
        }
        GC.KeepAlive(dir);
    }

    /// <summary>utimensat(AT_SYMLINK_NOFOLLOW) with nanosecond times.</summary>
    public static void SetTimes(SafeFileHandle dir, string name, UnixTimestamp accessTime, UnixTimestamp modificationTime, string? display = null)
    {
        var n = Interop.CString(name);
        timespec* times = stackalloc timespec[2];
        times[0] = Files.ToTimespec(accessTime);
        times[1] = Files.ToTimespec(modificationTime);
        fixed (byte* pn = n)
        {
            if (LibC.utimensat(Files.Fd(dir), pn, times, LibC.AT_SYMLINK_NOFOLLOW) != 0)
                throw NativeException.Last("utimensat", display ?? name);
        }
        GC.KeepAlive(dir);
    }

    public static void Chown(SafeFileHandle file, int uid, int gid, string? display = null)
    {
        if (LibC.fchown(Files.Fd(file), (uint)uid, (uint)gid) != 0) throw NativeException.Last("fchown", display);
        GC.KeepAlive(file);
    }

    public static void Chmod(SafeFileHandle file, int mode, string? display = null)
    {
        if (LibC.fchmod(Files.Fd(file), (ushort)(mode & 0xFFF)) != 0) throw NativeException.Last("fchmod", display);
        GC.KeepAlive(file);
    }

    public static void SetTimes(SafeFileHandle file, UnixTimestamp accessTime, UnixTimestamp modificationTime, string? display = null)
    {
        timespec* times = stackalloc timespec[2];
        times[0] = Files.ToTimespec(accessTime);
        times[1] = Files.ToTimespec(modificationTime);
        if (LibC.futimens(Files.Fd(file), times) != 0) throw NativeException.Last("futimens", display);
        GC.KeepAlive(file);
    }

    /// <summary>
    /// A path naming <paramref name="name"/> inside the open directory, for calls that only exist
    /// path-based (l*xattr): the /proc magic link pins the directory, the last component is not followed.
    /// </summary>
    public static string ProcPath(SafeFileHandle dir, string? name = null) =>
        name is null ? $"/proc/self/fd/{Files.Fd(dir)}" : $"/proc/self/fd/{Files.Fd(dir)}/{name}";

    /// <summary>Removes <paramref name="name"/> and, if it is a directory, everything below it, never
    /// following symlinks or crossing a mount point, iteratively (<see cref="TreeRemoval"/>). False when it did not exist.</summary>
    /// <param name="removed">Called with the status of each file and directory removed.</param>
    public static bool RemoveTree(SafeFileHandle dir, string name, string? display = null, Action<FileStatus>? removed = null) =>
        TreeRemoval.Remove(dir, name, display, removed);

    /// <summary>Entry names of an open directory (without . and ..).</summary>
    public static List<string> ListDirectory(SafeFileHandle dir)
    {
        // Enumerating through the fd's /proc link reads exactly the directory we hold open.
        var names = new List<string>();
        foreach (var entry in new DirectoryInfo(ProcPath(dir)).EnumerateFileSystemInfos())
            names.Add(entry.Name);
        GC.KeepAlive(dir);
        return names;
    }
}
