using CriRuntime.Native;
using Microsoft.Win32.SafeHandles;

namespace CriRuntime.Storage;

/// <summary>What <see cref="InRootPath.Resolve"/> found.</summary>
/// <param name="RelativePath">The resolved path below the root, without symlinks, "" for the root itself; for a
/// missing path, the part that resolved followed by the rest as written (cleaned).</param>
/// <param name="Status">lstat of what it names; null when it does not exist.</param>
/// <param name="Problem">Set when the path cannot be resolved (a symlink loop, a file used as a directory).</param>
public readonly record struct InRootLookup(string RelativePath, FileStatus? Status, string? Problem)
{
    public bool Exists => Status is not null && Problem is null;
}

/// <summary>
/// Resolves a path inside a directory tree as if that directory were "/" (what a container would see there):
/// symlinks are read, never followed by the kernel, an absolute target restarts at the root and ".." stops at the
/// root, so nothing a tree holds (an image's content is untrusted) can lead the daemon outside it. Each step opens a
/// single component with O_NOFOLLOW relative to its parent's handle.
/// </summary>
public static class InRootPath
{
    /// <summary>Symlinks followed before giving up, as the kernel's MAXSYMLINKS.</summary>
    public const int MaxSymlinks = 40;

    /// <summary>Components looked at in all (the path's and its symlinks' together): bounds the work.</summary>
    public const int MaxComponents = 4096;

    public static InRootLookup Resolve(string root, string path)
    {
        using var rootHandle = Files.OpenDirectory(root);
        return Resolve(rootHandle, path);
    }

    public static InRootLookup Resolve(SafeFileHandle root, string path)
    {
        var pending = new LinkedList<string>(Split(path));
        var resolved = new List<string>();
        // Open handles of the resolved directories below the root, one per entry of resolved.
        var handles = new List<SafeFileHandle>();
        int links = 0, steps = 0;
        FileStatus? last = Files.Fstat(root);
        try
        {
            while (pending.First is { } node)
            {
                pending.RemoveFirst();
                string part = node.Value;
                if (++steps > MaxComponents) return new InRootLookup(Join(resolved), null, $"more than {MaxComponents} path components to resolve");
                if (part == "..")
                {
                    if (resolved.Count > 0)
                    {
                        resolved.RemoveAt(resolved.Count - 1);
                        handles[^1].Dispose();
                        handles.RemoveAt(handles.Count - 1);
                    }
                    last = Files.Fstat(handles.Count > 0 ? handles[^1] : root);
                    continue;
                }
                var dir = handles.Count > 0 ? handles[^1] : root;
                var status = FilesAt.TryStat(dir, part);
                if (status is null)
                {
                    // Missing: what would be made there is the rest, as written.
                    resolved.Add(part);
                    foreach (var rest in pending) if (rest == "..") { if (resolved.Count > 0) resolved.RemoveAt(resolved.Count - 1); } else resolved.Add(rest);
                    return new InRootLookup(Join(resolved), null, null);
                }
                if (status.Value.Type == FileType.Symlink)
                {
                    if (++links > MaxSymlinks) return new InRootLookup(Join(resolved), null, $"more than {MaxSymlinks} symlinks (a loop?)");
                    string target = FilesAt.ReadLink(dir, part);
                    if (target.StartsWith('/'))
                    {
                        foreach (var h in handles) h.Dispose();
                        handles.Clear();
                        resolved.Clear();
                    }
                    var targetParts = Split(target);
                    for (int i = targetParts.Count - 1; i >= 0; i--) pending.AddFirst(targetParts[i]);
                    continue;
                }
                if (status.Value.IsDirectory)
                {
                    handles.Add(FilesAt.OpenDirectory(dir, part));
                    resolved.Add(part);
                    last = status;
                    continue;
                }
                resolved.Add(part);
                if (pending.Any(p => p != "."))
                    return new InRootLookup(Join(resolved), null, $"/{Join(resolved)} is not a directory");
                return new InRootLookup(Join(resolved), status, null);
            }
            return new InRootLookup(Join(resolved), last, null);
        }
        finally
        {
            foreach (var h in handles) h.Dispose();
        }
    }

    /// <summary>Opens the directory at <paramref name="relativePath"/> (as returned by <see cref="Resolve(SafeFileHandle, string)"/>),
    /// one component at a time without following symlinks.</summary>
    public static SafeFileHandle OpenDirectory(SafeFileHandle root, string relativePath)
    {
        var current = FilesAt.OpenDirectory(root, ".");
        foreach (var part in Split(relativePath))
        {
            var next = FilesAt.OpenDirectory(current, part, relativePath);
            current.Dispose();
            current = next;
        }
        return current;
    }

    private static List<string> Split(string path) =>
        path.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToList();

    private static string Join(List<string> parts) => string.Join('/', parts);
}
