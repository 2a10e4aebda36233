using System.Runtime.InteropServices;

namespace CriRuntime.Native;

/// <summary>
/// The modes of what the daemon keeps under its root and state dirs (issue #11): directories 0700, or 0711 where
/// another user must pass through to something below (the CRI socket's directory); files holding records or a
/// container's config 0600. Creation here does not depend on the umask: what must be exact is set with chmod.
/// </summary>
public static partial class FileModes
{
    public const UnixFileMode PrivateDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    public const UnixFileMode TraversableDirectory = PrivateDirectory | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    public const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>0644: a file meant to be read by others (a CNI config, a pod's /etc/hosts).</summary>
    public const UnixFileMode PublicFile = PrivateFile | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <summary>0755: a directory whose mode a container sees as its own (an overlay upper is the container's "/").</summary>
    public const UnixFileMode PublicDirectory = TraversableDirectory | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    /// <summary>
    /// mkdir -p where every level made here gets exactly <paramref name="mode"/> (mkdir's mode is narrowed by the
    /// umask, so each is chmod'ed after). An existing directory keeps its mode: start-up narrows the daemon's tree once
    /// (<c>Security/StateTreeModes</c>), and some directories (a kubelet's) are not ours.
    /// </summary>
    public static void CreateDirectory(string path, UnixFileMode mode)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        if (Directory.Exists(full)) return;
        var missing = new Stack<string>();
        for (string? level = full; level is not null && !Directory.Exists(level); level = Path.GetDirectoryName(level))
            missing.Push(level);
        while (missing.TryPop(out string? level))
        {
            Directory.CreateDirectory(level, mode);
            File.SetUnixFileMode(level, mode);
        }
    }

    /// <summary>
    /// Narrows an existing directory's or regular file's mode to <paramref name="limit"/> (mode &amp; limit; set-id and
    /// sticky bits go). Symlinks and other types are left alone. Returns the old mode when it changed something.
    /// </summary>
    public static int? Narrow(string path, UnixFileMode limit)
    {
        if (Files.TryLstat(path) is not { } status) return null;
        if (status.Type is not (FileType.Directory or FileType.RegularFile)) return null;
        int old = status.Permissions;
        int narrowed = old & (int)limit;
        if (narrowed == old) return null;
        Files.Chmod(path, narrowed);
        return old;
    }

    /// <summary>
    /// Until disposed, children started get the umask a child of a daemon conventionally gets (022) instead of the
    /// daemon's own (systemd's UMask=0077). runc makes mount points inside a container's rootfs before it sets the
    /// container's umask, and a process from runc exec keeps the one it inherited: with 077 a volume's missing parent
    /// directories would be 0700 and closed to a non-root container user. The umask is per process, so scopes are
    /// serialized and kept to the spawn call; files the daemon makes meanwhile have explicit modes.
    /// </summary>
    public static ChildUmaskScope UseChildUmask()
    {
        ChildUmaskGate.Enter();
        return new ChildUmaskScope(umask(ChildUmask));
    }

    /// <summary>Restores the daemon's umask.</summary>
    public readonly struct ChildUmaskScope(int previous) : IDisposable
    {
        public void Dispose()
        {
            umask(previous);
            ChildUmaskGate.Exit();
        }
    }

    private const int ChildUmask = 0x12; // 022
    private static readonly Lock ChildUmaskGate = new();

    [LibraryImport("libc.so.6")]
    private static partial int umask(int mask);
}
