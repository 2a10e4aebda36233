using CriRuntime.Native;

namespace CriRuntime.Security;

/// <summary>One path whose mode start-up narrowed.</summary>
public sealed record NarrowedMode(string Path, int OldMode, int NewMode);

/// <summary>
/// Start-up's pass over an existing root and state (issue #11): a tree written by an older daemon, or under a looser
/// umask, is narrowed to the modes new objects get (<see cref="FileModes"/>): directories 0700 (state 0711, for the
/// socket), record and config files 0600. Bounded: the top-level directories and the record directories right below
/// them, never a walk through layers or writable layers; what lies deeper is closed off by its 0700 parents.
/// Mount points and image content are not touched: a layer's diff/, a writable layer's upper/ (the container's "/"),
/// a bundle's rootfs/ and a pod's files (bind-mounted into its containers) keep their modes.
/// </summary>
public static class StateTreeModes
{
    /// <summary>A directory and how far below it to narrow: directories to 0700 and files to 0600 for
    /// <paramref name="Depth"/> levels, except directories on the last level when <paramref name="FilesOnlyAtLastLevel"/>.</summary>
    internal sealed record Rule(string RelativePath, UnixFileMode Mode, int Depth, bool FilesOnlyAtLastLevel = false);

    internal static readonly Rule[] RootRules =
    [
        new("", FileModes.PrivateDirectory, 0),
        new("images", FileModes.PrivateDirectory, 2),        // images.json, quarantine/
        new("overlay", FileModes.PrivateDirectory, 1),       // CHAINHEX/, l/, tmp/, quarantine/ (not their content)
        new("blobs", FileModes.PrivateDirectory, 2),         // sha256/HEX, ingest/
        new("containers", FileModes.PrivateDirectory, 1),    // records/, ID/ (upper/ below keeps its mode)
        new("containers/records", FileModes.PrivateDirectory, 2),
        new("pods", FileModes.PrivateDirectory, 2),          // records, quarantine/
        new("cni", FileModes.PrivateDirectory, 3),           // results/ID.json
    ];

    internal static readonly Rule[] StateRules =
    [
        new("", FileModes.TraversableDirectory, 0),
        new("containers", FileModes.PrivateDirectory, 2, FilesOnlyAtLastLevel: true), // ID/config.json; ID/rootfs is a mount
        new("exits", FileModes.PrivateDirectory, 1),
        new("pods", FileModes.PrivateDirectory, 1),          // ID/ (its files are bind-mounted, its shm is a tmpfs)
        new("runtime", FileModes.PrivateDirectory, 1),       // the runtimes' --root dirs
    ];

    // Narrowing one of these would break the node: a root or state configured there is left as it is (and logged).
    private static readonly HashSet<string> SystemDirectories =
        ["/", "/var", "/var/lib", "/var/run", "/run", "/tmp", "/usr", "/etc", "/home", "/root", "/opt", "/srv", "/mnt"];

    /// <summary>Narrows both trees; returns what changed, and in <paramref name="skipped"/> a root or state left alone.</summary>
    public static List<NarrowedMode> Tighten(string root, string state, out List<string> skipped)
    {
        var changed = new List<NarrowedMode>();
        skipped = [];
        Apply(root, RootRules, changed, skipped);
        Apply(state, StateRules, changed, skipped);
        return changed;
    }

    private static void Apply(string top, Rule[] rules, List<NarrowedMode> changed, List<string> skipped)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(top));
        if (full.Length == 0) full = "/";
        bool system = SystemDirectories.Contains(full);
        if (system) skipped.Add(full);
        foreach (var rule in rules)
        {
            string dir = rule.RelativePath.Length == 0 ? full : Path.Combine(full, rule.RelativePath);
            if (system && rule.RelativePath.Length == 0) continue;
            if (Files.TryLstat(dir) is not { IsDirectory: true }) continue;
            Narrow(dir, rule.Mode, changed);
            Below(dir, 1, rule, changed);
        }
    }

    private static void Below(string dir, int level, Rule rule, List<NarrowedMode> changed)
    {
        if (level > rule.Depth) return;
        bool last = level == rule.Depth;
        foreach (string entry in Directory.EnumerateFileSystemEntries(dir))
        {
            // lstat: a symlink is neither narrowed nor followed.
            if (Files.TryLstat(entry) is not { } status) continue;
            if (status.Type == FileType.RegularFile)
                Narrow(entry, FileModes.PrivateFile, changed);
            else if (status.IsDirectory && !(last && rule.FilesOnlyAtLastLevel))
            {
                // A mount point below (a rootfs, a pod's shm) is not ours to narrow.
                if (Mounts.IsMountPoint(entry)) continue;
                Narrow(entry, FileModes.PrivateDirectory, changed);
                Below(entry, level + 1, rule, changed);
            }
        }
    }

    private static void Narrow(string path, UnixFileMode limit, List<NarrowedMode> changed)
    {
        if (FileModes.Narrow(path, limit) is { } old) changed.Add(new NarrowedMode(path, old, old & (int)limit));
    }
}
