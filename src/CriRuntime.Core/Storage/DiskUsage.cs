using CriRuntime.Native;

namespace CriRuntime.Storage;

/// <summary>Space and inodes a directory tree takes, as du counts them.</summary>
public readonly record struct DirectoryUsage(ulong Bytes, ulong Inodes);

public static class DiskUsage
{
    /// <summary>
    /// Walks <paramref name="root"/> without following symlinks or crossing into other filesystems, counting
    /// allocated bytes (st_blocks, so sparse files count what they use) and inodes, each hardlinked inode once.
    /// Entries removed during the walk are skipped: a running container changes its upper dir while we count.
    /// A missing <paramref name="root"/> uses nothing.
    /// </summary>
    public static DirectoryUsage Measure(string root)
    {
        if (Files.TryLstat(root) is not { } top) return default;
        ulong bytes = 0, inodes = 0;
        var seen = new HashSet<(ulong, ulong)>();
        var pending = new Stack<string>();
        Count(top, root);

        while (pending.TryPop(out var dir))
        {
            IEnumerable<string> entries;
            try { entries = Directory.EnumerateFileSystemEntries(dir); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            try
            {
                foreach (string entry in entries)
                    if (Files.TryLstat(entry) is { } st && st.Device == top.Device) Count(st, entry);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The directory went away while it was listed.
            }
        }
        return new DirectoryUsage(bytes, inodes);

        void Count(FileStatus st, string path)
        {
            if (st.LinkCount > 1 && !st.IsDirectory && !seen.Add((st.Device, st.Inode))) return;
            bytes += (ulong)Math.Max(0, st.AllocatedBytes);
            inodes++;
            if (st.IsDirectory) pending.Push(path);
        }
    }
}
