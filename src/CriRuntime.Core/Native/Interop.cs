using System.Runtime.InteropServices;
using System.Text;

namespace CriRuntime.Native;

/// <summary>libc entry points that Tmds.LibC 0.5.0 does not expose.</summary>
internal static unsafe partial class Interop
{
    private const string Libc = "libc.so.6";

    [LibraryImport(Libc, EntryPoint = "lsetxattr", SetLastError = true)]
    internal static partial int lsetxattr(byte* path, byte* name, byte* value, nuint size, int flags);

    [LibraryImport(Libc, EntryPoint = "lgetxattr", SetLastError = true)]
    internal static partial nint lgetxattr(byte* path, byte* name, byte* value, nuint size);

    [LibraryImport(Libc, EntryPoint = "llistxattr", SetLastError = true)]
    internal static partial nint llistxattr(byte* path, byte* list, nuint size);

    [LibraryImport(Libc, EntryPoint = "lremovexattr", SetLastError = true)]
    internal static partial int lremovexattr(byte* path, byte* name);

    [LibraryImport(Libc, EntryPoint = "fsetxattr", SetLastError = true)]
    internal static partial int fsetxattr(int fd, byte* name, byte* value, nuint size, int flags);

    [LibraryImport(Libc, EntryPoint = "fgetxattr", SetLastError = true)]
    internal static partial nint fgetxattr(int fd, byte* name, byte* value, nuint size);

    [LibraryImport(Libc, EntryPoint = "rename", SetLastError = true)]
    internal static partial int rename(byte* oldpath, byte* newpath);

    [LibraryImport(Libc, EntryPoint = "renameat2", SetLastError = true)]
    internal static partial int renameat2(int olddirfd, byte* oldpath, int newdirfd, byte* newpath, uint flags);

    [LibraryImport(Libc, EntryPoint = "statfs", SetLastError = true)]
    internal static partial int statfs(byte* path, StatFs* buf);

    [LibraryImport(Libc, EntryPoint = "syncfs", SetLastError = true)]
    internal static partial int syncfs(int fd);

    [LibraryImport(Libc, EntryPoint = "realpath", SetLastError = true)]
    internal static partial byte* realpath(byte* path, byte* resolved);

    [LibraryImport(Libc, EntryPoint = "free")]
    internal static partial void free(void* ptr);

    internal const uint RENAME_NOREPLACE = 1;

    [LibraryImport(Libc, EntryPoint = "statx", SetLastError = true)]
    internal static partial int statx(int dirfd, byte* path, int flags, uint mask, Statx* buf);

    internal const uint STATX_BASIC_STATS = 0x7ff;
    internal const ulong STATX_ATTR_MOUNT_ROOT = 0x2000;

    /// <summary>struct statx (linux/stat.h), 256 bytes on every architecture.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 256)]
    internal struct Statx
    {
        public uint stx_mask;
        public uint stx_blksize;
        public ulong stx_attributes;
        public uint stx_nlink;
        public uint stx_uid;
        public uint stx_gid;
        public ushort stx_mode;
        public ushort spare0;
        public ulong stx_ino;
        public ulong stx_size;
        public ulong stx_blocks;
        public ulong stx_attributes_mask;
    }

    /// <summary>struct statfs on 64-bit Linux (x86-64, arm64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct StatFs
    {
        public long f_type;
        public long f_bsize;
        public ulong f_blocks;
        public ulong f_bfree;
        public ulong f_bavail;
        public ulong f_files;
        public ulong f_ffree;
        public ulong f_fsid;
        public long f_namelen;
        public long f_frsize;
        public long f_flags;
        public long f_spare0, f_spare1, f_spare2, f_spare3;
    }

    /// <summary>
    /// A NUL-terminated UTF-8 copy of <paramref name="s"/>. An embedded NUL would silently cut the
    /// string short at the kernel boundary (a different path than the one checked), so it is refused.
    /// </summary>
    internal static byte[] CString(string s)
    {
        if (s.Contains('\0'))
            throw new InvalidArgumentException($"'{s.Replace("\0", "\\0")}' contains a NUL character");
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, bytes);
        return bytes;
    }
}
