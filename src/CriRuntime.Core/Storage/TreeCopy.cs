using CriRuntime.Native;
using Microsoft.Win32.SafeHandles;

namespace CriRuntime.Storage;

/// <summary>How much one <see cref="TreeCopy.CopyContents"/> may copy.</summary>
/// <param name="MaxEntries">Files, directories and links in all.</param>
/// <param name="MaxDepth">Directory levels below the source.</param>
/// <param name="MaxBytes">Bytes of regular file content in all.</param>
public sealed record TreeCopyLimits(int MaxEntries, int MaxDepth, long MaxBytes);

/// <summary>What <see cref="TreeCopy.CopyContents"/> copied and what it left out.</summary>
public sealed class TreeCopyResult
{
    public int Entries { get; internal set; }
    public long Bytes { get; internal set; }

    /// <summary>Device nodes and sockets, which are not copied (relative paths).</summary>
    public List<string> Skipped { get; } = [];
}

/// <summary>
/// Copies the contents of one directory into another, both given as open handles, one component at a time with
/// *at calls that never follow a symlink: a symlink is copied as a symlink, so a tree whose content is untrusted
/// (an image's) cannot make the copy read or write outside either directory. Modes, owners and times are kept;
/// regular files, directories, symlinks and fifos are copied; device nodes and sockets are not (a writable copy
/// of an image's device node is nothing a container should get from its image). Bounded by <see cref="TreeCopyLimits"/>.
/// </summary>
public static class TreeCopy
{
    /// <summary>Copies what is in <paramref name="source"/> into the existing, empty <paramref name="target"/>.</summary>
    /// <exception cref="CriException">ResourceExhausted: The tree is over a limit; what was copied so far stays.</exception>
    public static TreeCopyResult CopyContents(SafeFileHandle source, SafeFileHandle target, TreeCopyLimits limits, string display)
    {
        var result = new TreeCopyResult();
        CopyDirectory(source, target, limits, result, display, "", 0);
        return result;
    }

    /// <summary>Gives <paramref name="target"/> the mode, owner and times of <paramref name="status"/>.</summary>
    public static void CopyAttributes(SafeFileHandle target, FileStatus status, string display)
    {
        FilesAt.Chown(target, (int)status.Uid, (int)status.Gid, display);
        // After chown, which clears setuid/setgid bits.
        FilesAt.Chmod(target, status.Permissions, display);
        FilesAt.SetTimes(target, status.AccessTime, status.ModificationTime, display);
    }

    private static void CopyDirectory(SafeFileHandle source, SafeFileHandle target, TreeCopyLimits limits, TreeCopyResult result,
        string display, string relative, int depth)
    {
        var names = FilesAt.ListDirectory(source);
        names.Sort(StringComparer.Ordinal);
        foreach (var name in names)
        {
            string path = relative.Length == 0 ? name : relative + "/" + name;
            string shown = display + "/" + path;
            if (++result.Entries > limits.MaxEntries)
                throw new CriException(CriErrorKind.ResourceExhausted, $"{display} holds more than {limits.MaxEntries} files and directories, more than is copied");
            var status = FilesAt.TryStat(source, name, shown);
            if (status is not { } st) continue; // gone meanwhile
            switch (st.Type)
            {
                case FileType.Directory:
                    if (depth + 1 > limits.MaxDepth)
                        throw new CriException(CriErrorKind.ResourceExhausted, $"{display} is nested more than {limits.MaxDepth} directories deep, more than is copied");
                    FilesAt.Mkdir(target, name, 0b111_000_000, shown);
                    using (var sourceChild = FilesAt.OpenDirectory(source, name, shown))
                    using (var targetChild = FilesAt.OpenDirectory(target, name, shown))
                    {
                        CopyDirectory(sourceChild, targetChild, limits, result, display, path, depth + 1);
                        CopyAttributes(targetChild, st, shown);
                    }
                    break;
                case FileType.RegularFile:
                    result.Bytes += st.Size;
                    if (result.Bytes > limits.MaxBytes)
                        throw new CriException(CriErrorKind.ResourceExhausted, $"{display} holds more than {limits.MaxBytes} bytes, more than is copied");
                    using (var input = FilesAt.OpenRead(source, name, shown))
                    using (var output = FilesAt.CreateFile(target, name, 0b110_000_000, shown))
                    {
                        using (var from = new FileStream(input, FileAccess.Read, bufferSize: 0))
                        using (var to = new FileStream(output, FileAccess.Write, bufferSize: 0))
                        {
                            // At most the size seen: a file that grows meanwhile cannot blow the budget.
                            CopyAtMost(from, to, st.Size);
                        }
                    }
                    using (var written = FilesAt.OpenRead(target, name, shown))
                        CopyAttributes(written, st, shown);
                    break;
                case FileType.Symlink:
                    FilesAt.Symlink(FilesAt.ReadLink(source, name, shown), target, name, shown);
                    FilesAt.Chown(target, name, (int)st.Uid, (int)st.Gid, shown);
                    FilesAt.SetTimes(target, name, st.AccessTime, st.ModificationTime, shown);
                    break;
                case FileType.Fifo:
                    FilesAt.Mknod(target, name, FileType.Fifo, 0b110_000_000, 0, 0, shown);
                    FilesAt.Chown(target, name, (int)st.Uid, (int)st.Gid, shown);
                    FilesAt.Chmod(target, name, st.Permissions, shown);
                    FilesAt.SetTimes(target, name, st.AccessTime, st.ModificationTime, shown);
                    break;
                default:
                    result.Skipped.Add(path);
                    break;
            }
        }
    }

    private static void CopyAtMost(Stream from, Stream to, long limit)
    {
        var buffer = new byte[81920];
        long left = limit;
        while (left > 0)
        {
            int n = from.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n == 0) break;
            to.Write(buffer, 0, n);
            left -= n;
        }
    }
}
