using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace CriRuntime.Native;

/// <summary>Path-based file system calls. None of them follows a symlink in the last path component.</summary>
public static unsafe class Files
{
    public static FileStatus Lstat(string path) =>
        TryLstat(path) ?? throw new NativeException("lstat", path, Errno.ENOENT);

    /// <summary>lstat, or null when the path does not exist (ENOENT/ENOTDIR).</summary>
    public static FileStatus? TryLstat(string path)
    {
        var p = Interop.CString(path);
        stat st;
        fixed (byte* pp = p)
        {
            if (LibC.lstat(pp, &st) == 0) return Convert(st);
        }
        int errno = Marshal.GetLastPInvokeError();
        if (errno is Errno.ENOENT or Errno.ENOTDIR) return null;
        throw new NativeException("lstat", path, errno);
    }

    public static FileStatus Fstat(SafeFileHandle handle)
    {
        stat st;
        if (LibC.fstat(Fd(handle), &st) != 0) throw NativeException.Last("fstat", null);
        GC.KeepAlive(handle);
        return Convert(st);
    }

    /// <summary>Creates a device node or fifo; permissions are subject to the umask (chmod afterwards).</summary>
    public static void Mknod(string path, FileType type, int permissions, uint major = 0, uint minor = 0)
    {
        var p = Interop.CString(path);
        fixed (byte* pp = p)
        {
            if (LibC.mknod(pp, NodeMode(type, permissions), Devices.MakeDev(major, minor)) != 0)
                throw NativeException.Last("mknod", path);
        }
    }

    /// <summary>An overlayfs whiteout: a 0:0 character device owned by root.</summary>
    public static void MakeWhiteout(string path)
    {
        Mknod(path, FileType.CharacterDevice, 0, 0, 0);
        Lchown(path, 0, 0);
    }

    public static void Lchown(string path, int uid, int gid)
    {
        var p = Interop.CString(path);
        fixed (byte* pp = p)
        {
            if (LibC.lchown(pp, (uint)uid, (uint)gid) != 0) throw NativeException.Last("lchown", path);
        }
    }

    /// <summary>fchownat(AT_FDCWD, path, ..., AT_SYMLINK_NOFOLLOW).</summary>
    public static void Fchownat(string path, int uid, int gid)
    {
        var p = Interop.CString(path);
        fixed (byte* pp = p)
        {
            if (LibC.fchownat(LibC.AT_FDCWD, pp, (uint)uid, (uint)gid, LibC.AT_SYMLINK_NOFOLLOW) != 0)
                throw NativeException.Last("fchownat", path);
        }
    }

    /// <summary>chmod(2), which follows symlinks: only for paths known not to be one.</summary>
    public static void Chmod(string path, int mode)
    {
        var p = Interop.CString(path);
        fixed (byte* pp = p)
        {
            if (LibC.chmod(pp, (ushort)(mode & 0xFFF)) != 0) throw NativeException.Last("chmod", path);
        }
    }

    public static void Link(string existingPath, string newPath)
    {
        var a = Interop.CString(existingPath);
        var b = Interop.CString(newPath);
        fixed (byte* pa = a, pb = b)
        {
            if (LibC.link(pa, pb) != 0) throw NativeException.Last("link", newPath, $"link {existingPath} to");
        }
    }

    public static void Symlink(string target, string linkPath)
    {
        var a = Interop.CString(target);
        var b = Interop.CString(linkPath);
        fixed (byte* pa = a, pb = b)
        {
            if (LibC.symlink(pa, pb) != 0) throw NativeException.Last("symlink", linkPath);
        }
    }

    public static string ReadLink(string path)
    {
        var p = Interop.CString(path);
        var buffer = new byte[4096];
        fixed (byte* pp = p, pb = buffer)
        {
            long n = LibC.readlinkat(LibC.AT_FDCWD, pp, pb, buffer.Length);
            if (n < 0) throw NativeException.Last("readlink", path);
            return Encoding.UTF8.GetString(buffer, 0, (int)n);
        }
    }

    /// <summary>utimensat with nanoseconds; by default the link itself is changed, not its target.</summary>
    public static void SetTimes(string path, UnixTimestamp accessTime, UnixTimestamp modificationTime, bool followSymlinks = false)
    {
        var p = Interop.CString(path);
        timespec* times = stackalloc timespec[2];
        times[0] = ToTimespec(accessTime);
        times[1] = ToTimespec(modificationTime);
        fixed (byte* pp = p)
        {
            if (LibC.utimensat(LibC.AT_FDCWD, pp, times, followSymlinks ? 0 : LibC.AT_SYMLINK_NOFOLLOW) != 0)
                throw NativeException.Last("utimensat", path);
        }
    }

    public static void Fsync(SafeFileHandle handle)
    {
        if (LibC.fsync(Fd(handle)) != 0) throw NativeException.Last("fsync", null);
        GC.KeepAlive(handle);
    }

    /// <summary>fsync of a file by path.</summary>
    public static void Fsync(string path)
    {
        using var handle = Open(path, LibC.O_RDONLY | LibC.O_NOFOLLOW, "open");
        if (LibC.fsync(Fd(handle)) != 0) throw NativeException.Last("fsync", path);
    }

    /// <summary>fsync of a directory, which makes entries created/renamed in it durable.</summary>
    public static void FsyncDirectory(string path)
    {
        using var handle = OpenDirectory(path);
        if (LibC.fsync(Fd(handle)) != 0) throw NativeException.Last("fsync", path);
    }

    /// <summary>syncfs(2): flush the whole filesystem holding <paramref name="path"/>.</summary>
    public static void SyncFilesystem(string path)
    {
        using var handle = OpenDirectory(path);
        if (Interop.syncfs(Fd(handle)) != 0) throw NativeException.Last("syncfs", path);
    }

    /// <summary>rename(2): atomically replaces <paramref name="to"/> if it exists.</summary>
    public static void Rename(string from, string to)
    {
        var a = Interop.CString(from);
        var b = Interop.CString(to);
        fixed (byte* pa = a, pb = b)
        {
            if (Interop.rename(pa, pb) != 0) throw NativeException.Last("rename", to, $"rename {from} to");
        }
    }

    /// <summary>renameat2(RENAME_NOREPLACE): fails with EEXIST instead of replacing.</summary>
    public static void RenameNoReplace(string from, string to)
    {
        var a = Interop.CString(from);
        var b = Interop.CString(to);
        fixed (byte* pa = a, pb = b)
        {
            if (Interop.renameat2(LibC.AT_FDCWD, pa, LibC.AT_FDCWD, pb, Interop.RENAME_NOREPLACE) != 0)
                throw NativeException.Last("renameat2", to, $"rename {from} to");
        }
    }

    public static FilesystemStats StatFs(string path)
    {
        if (!Environment.Is64BitProcess) throw new PlatformNotSupportedException("statfs layout is only declared for 64-bit Linux");
        var p = Interop.CString(path);
        Interop.StatFs st;
        fixed (byte* pp = p)
        {
            if (Interop.statfs(pp, &st) != 0) throw NativeException.Last("statfs", path);
        }
        return new FilesystemStats(st.f_type, st.f_bsize, st.f_frsize != 0 ? st.f_frsize : st.f_bsize,
            st.f_blocks, st.f_bfree, st.f_bavail, st.f_files, st.f_ffree);
    }

    /// <summary>realpath(3): absolute, with every symlink resolved.</summary>
    public static string RealPath(string path)
    {
        var p = Interop.CString(path);
        fixed (byte* pp = p)
        {
            byte* resolved = Interop.realpath(pp, null);
            if (resolved == null) throw NativeException.Last("realpath", path);
            try { return Marshal.PtrToStringUTF8((nint)resolved)!; }
            finally { Interop.free(resolved); }
        }
    }

    /// <summary>Opens a directory (O_RDONLY|O_DIRECTORY|O_NOFOLLOW) for *at calls and fsync.</summary>
    public static SafeFileHandle OpenDirectory(string path) =>
        Open(path, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_NOFOLLOW, "open");

    /// <summary>
    /// Deletes a file or a whole tree without following any symlink inside it (device nodes,
    /// whiteouts and read-only directories included), iteratively and fd-relative, so depth and path
    /// length do not matter; a mount point inside is left in place and reported with
    /// <see cref="MountPointsInTreeException"/> (see <see cref="TreeRemoval"/>). False when nothing was there.
    /// </summary>
    public static bool RemoveTree(string path, Action<FileStatus>? removed = null)
    {
        path = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        string? parent = Path.GetDirectoryName(path);
        if (parent is null) throw new ArgumentException("refusing to remove the root directory", nameof(path));
        SafeFileHandle dir;
        try { dir = OpenDirectory(parent); }
        catch (NativeException e) when (e.Errno is Errno.ENOENT) { return false; }
        using (dir) return FilesAt.RemoveTree(dir, Path.GetFileName(path), path, removed);
    }

    internal static SafeFileHandle Open(string path, int flags, string call)
    {
        var p = Interop.CString(path);
        fixed (byte* pp = p)
        {
            int fd = LibC.open(pp, flags | LibC.O_CLOEXEC, 0);
            if (fd < 0) throw NativeException.Last(call, path);
            return new SafeFileHandle(fd, ownsHandle: true);
        }
    }

    internal static int Fd(SafeFileHandle handle) =>
        handle.IsInvalid || handle.IsClosed ? throw new ObjectDisposedException(nameof(SafeFileHandle)) : (int)handle.DangerousGetHandle();

    internal static mode_t NodeMode(FileType type, int permissions) => (ushort)((int)type | (permissions & 0xFFF));

    internal static timespec ToTimespec(UnixTimestamp t)
    {
        timespec ts = default;
        ts.tv_sec = t.Seconds;
        ts.tv_nsec = (long_t)t.Nanoseconds;
        return ts;
    }

    internal static FileStatus Convert(in stat st) => new(
        st.st_dev, st.st_ino, (ushort)st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_rdev,
        st.st_size, st.st_blocks,
        new UnixTimestamp(st.st_atim.tv_sec, st.st_atim.tv_nsec),
        new UnixTimestamp(st.st_mtim.tv_sec, st.st_mtim.tv_nsec),
        new UnixTimestamp(st.st_ctim.tv_sec, st.st_ctim.tv_nsec));
}
