using System.Text;
using CriRuntime.Native;
using CriRuntime.Content;

namespace CriRuntime.Storage;

/// <summary>Mounts a container's root file system: image layers as overlay lowerdirs plus a writable upper.</summary>
public static class OverlayMount
{
    /// <summary>
    /// Mounts overlay at <paramref name="target"/>. Lower directories are given top layer first (the
    /// kernel's order). With no <paramref name="upperDir"/> the mount is read-only; overlay needs two
    /// lowers for that, so a single lower is bind-mounted read-only instead. Fails before calling the
    /// kernel when the option string would not fit in one page (the kernel's limit for mount data).
    /// </summary>
    public static void Mount(IReadOnlyList<string> lowerDirsTopFirst, string? upperDir, string? workDir, string target)
    {
        if (lowerDirsTopFirst.Count == 0) throw new ArgumentException("overlay needs at least one lower directory", nameof(lowerDirsTopFirst));
        if ((upperDir is null) != (workDir is null)) throw new ArgumentException("upperdir and workdir go together");
        foreach (var lower in lowerDirsTopFirst) CheckPath(lower, "lowerdir");

        FileModes.CreateDirectory(target, FileModes.PrivateDirectory);
        if (upperDir is null)
        {
            if (lowerDirsTopFirst.Count == 1)
            {
                Mounts.Mount(lowerDirsTopFirst[0], target, null, MountFlags.Bind);
                try
                {
                    Mounts.Mount(null, target, null, MountFlags.Remount | MountFlags.Bind | MountFlags.ReadOnly);
                }
                catch
                {
                    Mounts.TryUnmount(target, UnmountFlags.Detach);
                    throw;
                }
                return;
            }
            Mounts.Mount("overlay", target, "overlay", MountFlags.ReadOnly, Options(lowerDirsTopFirst, null, null));
            return;
        }

        CheckPath(upperDir, "upperdir");
        CheckPath(workDir!, "workdir");
        // The upper dir's mode is the container's "/" (overlay takes a merged root's attributes from the upper): 0755
        // as containerd's snapshotter makes it, never the daemon's umask. Its parent keeps other users out (issue #11).
        FileModes.CreateDirectory(upperDir, FileModes.PublicDirectory);
        FileModes.CreateDirectory(workDir!, FileModes.PrivateDirectory);
        Mounts.Mount("overlay", target, "overlay", MountFlags.None, Options(lowerDirsTopFirst, upperDir, workDir));
    }

    /// <summary>
    /// Remounts the host's copy of a container's rootfs nosuid,nodev (issue #11), once the runtime has made the
    /// container's own copy (during create: runc binds the rootfs in the container's mount namespace and pivots into
    /// it). A remount changes only that one mount's flags; they do not propagate, so set-uid files still work inside
    /// the container (allowPrivilegeEscalation) while the host-side path, should anyone reach it, honours neither
    /// set-uid bits nor device nodes. Mounting nosuid from the start would give the container nosuid too: a bind
    /// mount copies its source's flags.
    /// </summary>
    public static void SealHostSide(string target) =>
        Mounts.Mount(null, target, null, MountFlags.Remount | MountFlags.Bind | MountFlags.NoSuid | MountFlags.NoDev);

    /// <summary>Mounts the given layers (bottom layer first, as in an image manifest) through the
    /// store's short links.</summary>
    public static void MountLayers(LayerStore store, IReadOnlyList<Digest> chainIdsBottomFirst, string upper, string work, string target)
    {
        var lowers = new List<string>(chainIdsBottomFirst.Count);
        for (int i = chainIdsBottomFirst.Count - 1; i >= 0; i--) lowers.Add(store.ShortDiffDir(chainIdsBottomFirst[i]));
        Mount(lowers, upper, work, target);
    }

    /// <summary>Unmounts <paramref name="target"/> (every mount stacked on it). Not mounted, or not
    /// existing, is fine.</summary>
    public static void Unmount(string target)
    {
        for (int i = 0; i < 64; i++)
        {
            int errno = Mounts.TryUnmount(target);
            if (errno is Errno.EINVAL or Errno.ENOENT) return; // not (or no longer) a mount point
            if (errno != 0) throw new NativeException("umount2", target, errno);
        }
        throw new IOException($"{target} is still mounted after 64 unmounts");
    }

    /// <summary>The overlay mount data string, checked against the one-page limit.</summary>
    internal static string Options(IReadOnlyList<string> lowerDirsTopFirst, string? upperDir, string? workDir)
    {
        var sb = new StringBuilder();
        // index=off: the inode index is not needed and makes reusing an upper with other lowers fail.
        if (File.Exists("/sys/module/overlay/parameters/index")) sb.Append("index=off,");
        sb.Append("lowerdir=").AppendJoin(':', lowerDirsTopFirst);
        if (upperDir is not null) sb.Append(",upperdir=").Append(upperDir).Append(",workdir=").Append(workDir);
        string options = sb.ToString();
        int limit = Environment.SystemPageSize - 1; // the kernel copies one page, NUL included
        int length = Encoding.UTF8.GetByteCount(options);
        if (length > limit)
            throw new InvalidOperationException(
                $"overlay mount options for {lowerDirsTopFirst.Count} layers are {length} bytes, over the kernel's limit of {limit}: too many layers or too long layer paths");
        return options;
    }

    private static void CheckPath(string path, string what)
    {
        // Overlay's option parser splits on ',' and lowerdir on ':'; escaping is not portable across kernels.
        if (path.Length == 0 || path.IndexOfAny([',', ':', '\\', '\0']) >= 0)
            throw new ArgumentException($"{what} '{path}' is empty or contains ',', ':' or '\\', which overlay options cannot carry");
    }
}
