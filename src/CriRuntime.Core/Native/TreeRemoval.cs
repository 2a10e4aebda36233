using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace CriRuntime.Native;

/// <summary>
/// A tree could not be removed completely because mount points were found inside it. They were not
/// crossed: each is left in place with the directories above it, everything else is gone. FailedPrecondition:
/// something still mounted inside must be unmounted first.
/// </summary>
public sealed class MountPointsInTreeException(string tree, IReadOnlyList<string> mountPoints, long count)
    : IOException($"removing {tree}: left {count} mount point(s) in place and the directories above them " +
                  $"({string.Join(", ", mountPoints)}{(count > mountPoints.Count ? ", ..." : "")}); unmount them and remove it again")
    , ICriError
{
    public CriErrorKind ErrorKind => CriErrorKind.FailedPrecondition;

    public string Tree { get; } = tree;

    /// <summary>The first mount points found (at most <see cref="TreeRemoval.ReportedMountPoints"/>).</summary>
    public IReadOnlyList<string> MountPoints { get; } = mountPoints;

    public long Count { get; } = count;
}

/// <summary>
/// Iterative, fd-relative removal of a directory tree: no recursion (a tree 100,000 levels deep takes no
/// stack), no path ever longer than one component (no ENAMETOOLONG), one directory fd open at a time
/// (no fd per level), symlinks never followed (openat O_NOFOLLOW, fstatat/unlinkat on the link itself),
/// and no mount point crossed.
/// <para>
/// The walk goes down with openat(name) and back up with openat(".."); before trusting "..", it checks
/// that its device and inode are those of the directory it came from, so a directory renamed elsewhere
/// while we are inside it (a running container can) stops the removal instead of leading it outside the
/// tree. Memory is one small frame per level (name, device, inode, names still to visit there).
/// </para>
/// </summary>
public static unsafe class TreeRemoval
{
    internal const int ReportedMountPoints = 8;
    private const int DisplayLimit = 600;

    private sealed class Frame(string name, FileStatus status, Queue<string> pending)
    {
        public readonly string Name = name;
        public readonly FileStatus Status = status;
        public readonly Queue<string> Pending = pending;
        /// <summary>Something below could not be removed (a mount point), so this directory stays.</summary>
        public bool Kept;
    }

    /// <summary>Removes <paramref name="name"/> in <paramref name="dir"/> and everything below it. False when it did
    /// not exist. Throws <see cref="MountPointsInTreeException"/> after removing all else when mount points were inside.</summary>
    /// <param name="removed">Called with the status of each file and directory removed.</param>
    public static bool Remove(SafeFileHandle dir, string name, string? display = null, Action<FileStatus>? removed = null)
    {
        display ??= name;
        var st = FilesAt.TryStat(dir, name, display);
        if (st is null) return false;
        if (!st.Value.IsDirectory)
        {
            UnlinkIfPresent(dir, name, directory: false, display);
            removed?.Invoke(st.Value);
            return true;
        }
        var parentStatus = Files.Fstat(dir);
        if (st.Value.Device != parentStatus.Device || IsMountRoot(dir, name))
            throw new MountPointsInTreeException(display, [display], 1);

        var mountPoints = new List<string>();
        long mountPointCount = 0;
        var frames = new List<Frame>();
        SafeFileHandle current = OpenChecked(dir, name, st.Value, display);
        try
        {
            frames.Add(new Frame(name, st.Value, new Queue<string>(FilesAt.ListDirectory(current))));
            while (true)
            {
                var frame = frames[^1];
                if (frame.Pending.TryDequeue(out var child))
                {
                    var cst = TryStat(current, child, DisplayPathLazy(display, frames, child));
                    if (cst is null) continue;
                    if (cst.Value.Device != frame.Status.Device || (cst.Value.IsDirectory && IsMountRoot(current, child)))
                    {
                        // A mount point (a pinned namespace file is one too): never unmounted or entered here.
                        if (mountPoints.Count < ReportedMountPoints) mountPoints.Add(DisplayPath(display, frames, child));
                        mountPointCount++;
                        frame.Kept = true;
                        continue;
                    }
                    if (!cst.Value.IsDirectory)
                    {
                        if (UnlinkIfPresent(current, child, directory: false, DisplayPathLazy(display, frames, child)))
                            removed?.Invoke(cst.Value);
                        continue;
                    }
                    var sub = FilesAt.TryOpenDirectory(current, child, out int errno);
                    if (sub is null)
                    {
                        if (errno == Errno.ENOENT) continue;
                        throw new NativeException("openat", DisplayPath(display, frames, child), errno);
                    }
                    var subStatus = Files.Fstat(sub);
                    if (subStatus.Device != cst.Value.Device || subStatus.Inode != cst.Value.Inode)
                    {
                        sub.Dispose();
                        throw new IOException($"removing {display}: {DisplayPath(display, frames, child)} was replaced while it was being removed");
                    }
                    current.Dispose();
                    current = sub;
                    frames.Add(new Frame(child, cst.Value, new Queue<string>(FilesAt.ListDirectory(current))));
                    continue;
                }

                if (frames.Count == 1) break;
                // This directory is empty (or holds only what must stay): climb to where we came from.
                var parentFrame = frames[^2];
                var up = FilesAt.OpenDirectory(current, "..", DisplayPath(display, frames, ".."));
                var upStatus = Files.Fstat(up);
                if (upStatus.Device != parentFrame.Status.Device || upStatus.Inode != parentFrame.Status.Inode)
                {
                    up.Dispose();
                    throw new IOException($"removing {display}: {DisplayPath(display, frames, null)} was moved out of the tree while it was being removed");
                }
                current.Dispose();
                current = up;
                frames.RemoveAt(frames.Count - 1);
                if (frame.Kept)
                {
                    parentFrame.Kept = true;
                    continue;
                }
                if (UnlinkIfPresent(current, frame.Name, directory: true, DisplayPathLazy(display, frames, frame.Name)))
                    removed?.Invoke(frame.Status);
            }
        }
        finally
        {
            current.Dispose();
        }
        if (frames[0].Kept) throw new MountPointsInTreeException(display, mountPoints, mountPointCount);
        UnlinkIfPresent(dir, name, directory: true, () => display);
        removed?.Invoke(st.Value);
        return true;
    }

    /// <summary>fstatat(AT_SYMLINK_NOFOLLOW), null when gone; the path for a message is only built on failure.</summary>
    private static FileStatus? TryStat(SafeFileHandle dir, string name, Func<string> display) => FilesAt.TryStat(dir, name, display);

    private static SafeFileHandle OpenChecked(SafeFileHandle dir, string name, FileStatus expected, string display)
    {
        var handle = FilesAt.OpenDirectory(dir, name, display);
        var status = Files.Fstat(handle);
        if (status.Device != expected.Device || status.Inode != expected.Inode)
        {
            handle.Dispose();
            throw new IOException($"removing {display}: it was replaced while it was being removed");
        }
        return handle;
    }

    /// <summary>unlinkat; false when the entry was already gone (a container may remove files while we do).</summary>
    private static bool UnlinkIfPresent(SafeFileHandle dir, string name, bool directory, string display) =>
        UnlinkIfPresent(dir, name, directory, () => display);

    private static bool UnlinkIfPresent(SafeFileHandle dir, string name, bool directory, Func<string> display)
    {
        var n = Interop.CString(name);
        fixed (byte* pn = n)
        {
            if (LibC.unlinkat(Files.Fd(dir), pn, directory ? LibC.AT_REMOVEDIR : 0) == 0) return true;
        }
        int errno = Marshal.GetLastPInvokeError();
        GC.KeepAlive(dir);
        if (errno == Errno.ENOENT) return false;
        throw new NativeException("unlinkat", display(), errno);
    }

    /// <summary>statx's STATX_ATTR_MOUNT_ROOT: catches a bind mount from the same filesystem, which has the
    /// same st_dev as its parent. False where the kernel does not report the attribute (before 5.8).</summary>
    internal static bool IsMountRoot(SafeFileHandle dir, string name)
    {
        var n = Interop.CString(name);
        Interop.Statx stx;
        fixed (byte* pn = n)
        {
            if (Interop.statx(Files.Fd(dir), pn, LibC.AT_SYMLINK_NOFOLLOW, Interop.STATX_BASIC_STATS, &stx) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                GC.KeepAlive(dir);
                if (errno is Errno.ENOENT or Errno.ENOSYS) return false;
                throw new NativeException("statx", name, errno);
            }
        }
        GC.KeepAlive(dir);
        return (stx.stx_attributes_mask & Interop.STATX_ATTR_MOUNT_ROOT) != 0
            && (stx.stx_attributes & Interop.STATX_ATTR_MOUNT_ROOT) != 0;
    }

    private static Func<string> DisplayPathLazy(string top, List<Frame> frames, string? child) =>
        () => DisplayPath(top, frames, child);

    /// <summary>The path of <paramref name="child"/> for a message, shortened in the middle when the tree is deep.</summary>
    private static string DisplayPath(string top, List<Frame> frames, string? child)
    {
        var sb = new StringBuilder(top);
        for (int i = 1; i < frames.Count && sb.Length < 4 * DisplayLimit; i++) sb.Append('/').Append(frames[i].Name);
        if (sb.Length >= 4 * DisplayLimit || frames.Count > 200)
        {
            // Keep the start and the last few levels, and say how deep it was.
            var tail = new StringBuilder();
            for (int i = Math.Max(1, frames.Count - 8); i < frames.Count; i++) tail.Append('/').Append(frames[i].Name);
            string head = sb.ToString(0, Math.Min(sb.Length, DisplayLimit / 2));
            sb.Clear().Append(head).Append($"/...({frames.Count} levels)...").Append(tail.Length > DisplayLimit ? tail.ToString(tail.Length - DisplayLimit, DisplayLimit) : tail);
        }
        if (child is not null) sb.Append('/').Append(child);
        return sb.ToString();
    }
}
