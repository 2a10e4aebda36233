using System.Text;
using Tmds.Linux;

namespace CriRuntime.Native;

/// <summary>mount(2) flags (MS_*).</summary>
[Flags]
public enum MountFlags : ulong
{
    None = 0,
    ReadOnly = 1,
    NoSuid = 2,
    NoDev = 4,
    NoExec = 8,
    Synchronous = 16,
    Remount = 32,
    NoAtime = 1024,
    NoDirAtime = 2048,
    Bind = 4096,
    Move = 8192,
    Recursive = 16384,
    Silent = 32768,
    Unbindable = 1 << 17,
    Private = 1 << 18,
    Slave = 1 << 19,
    Shared = 1 << 20,
    RelAtime = 1 << 21,
    StrictAtime = 1 << 24,
}

/// <summary>umount2(2) flags.</summary>
[Flags]
public enum UnmountFlags
{
    None = 0,
    Force = 1,
    /// <summary>MNT_DETACH: lazy unmount, detached now and cleaned up when no longer busy.</summary>
    Detach = 2,
    Expire = 4,
    NoFollow = 8,
}

/// <summary>One line of /proc/self/mountinfo.</summary>
public sealed record MountInfo(
    int MountId,
    int ParentId,
    uint Major,
    uint Minor,
    string Root,
    string MountPoint,
    string MountOptions,
    IReadOnlyList<string> OptionalFields,
    string FsType,
    string Source,
    string SuperOptions);

public static unsafe class Mounts
{
    /// <summary>mount(2). The error names the file system type and target, e.g. <c>mount overlay on /x: EINVAL (Invalid argument)</c>.</summary>
    public static void Mount(string? source, string target, string? fsType, MountFlags flags, string? data = null)
    {
        var s = source is null ? null : Interop.CString(source);
        var t = Interop.CString(target);
        var f = fsType is null ? null : Interop.CString(fsType);
        var d = data is null ? null : Interop.CString(data);
        fixed (byte* ps = s, pt = t, pf = f, pd = d)
        {
            if (LibC.mount(ps, pt, pf, (ulong_t)(ulong)flags, pd) != 0)
            {
                string what = fsType ?? ((flags & MountFlags.Bind) != 0 ? "bind" : (flags & MountFlags.Remount) != 0 ? "remount" : "");
                throw NativeException.Last("mount", target, what.Length == 0 ? "mount on" : $"mount {what} on");
            }
        }
    }

    /// <summary>umount2(2).</summary>
    public static void Unmount(string target, UnmountFlags flags = UnmountFlags.None)
    {
        int errno = TryUnmount(target, flags);
        if (errno != 0) throw new NativeException("umount2", target, errno);
    }

    /// <summary>umount2 returning errno (0 on success): EINVAL means "not a mount point".</summary>
    public static int TryUnmount(string target, UnmountFlags flags = UnmountFlags.None)
    {
        var t = Interop.CString(target);
        fixed (byte* pt = t)
        {
            return LibC.umount2(pt, (int)flags) == 0 ? 0 : System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        }
    }

    /// <summary>Whether something is mounted exactly at <paramref name="path"/> (symlinks resolved), per /proc/self/mountinfo.</summary>
    public static bool IsMountPoint(string path)
    {
        string resolved;
        try { resolved = Files.RealPath(path); }
        catch (NativeException e) when (e.Errno is Errno.ENOENT or Errno.ENOTDIR) { return false; }
        return ReadMountInfo().Any(m => m.MountPoint == resolved);
    }

    /// <summary>Parses /proc/self/mountinfo (see proc(5)); octal escapes such as \040 are decoded.</summary>
    public static IReadOnlyList<MountInfo> ReadMountInfo(string file = "/proc/self/mountinfo")
    {
        var result = new List<MountInfo>();
        foreach (var line in File.ReadLines(file))
        {
            var parsed = ParseMountInfoLine(line);
            if (parsed is not null) result.Add(parsed);
        }
        return result;
    }

    internal static MountInfo? ParseMountInfoLine(string line)
    {
        var fields = line.Split(' ');
        int separator = Array.IndexOf(fields, "-", 6);
        if (separator < 0 || separator + 1 >= fields.Length) return null;
        var devParts = fields[2].Split(':');
        return new MountInfo(
            int.Parse(fields[0]), int.Parse(fields[1]),
            uint.Parse(devParts[0]), uint.Parse(devParts[1]),
            Unescape(fields[3]), Unescape(fields[4]), fields[5],
            fields[6..separator],
            Unescape(fields[separator + 1]),
            separator + 2 < fields.Length ? Unescape(fields[separator + 2]) : "",
            separator + 3 < fields.Length ? fields[separator + 3] : "");
    }

    private static string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var bytes = new List<byte>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 3 < s.Length && IsOctal(s[i + 1]) && IsOctal(s[i + 2]) && IsOctal(s[i + 3]))
            {
                bytes.Add((byte)(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0')));
                i += 3;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(s[i].ToString()));
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());

        static bool IsOctal(char c) => c is >= '0' and <= '7';
    }
}
