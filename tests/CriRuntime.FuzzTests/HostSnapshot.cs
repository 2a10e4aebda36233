using CriRuntime.TestSupport;

namespace CriRuntime.FuzzTests;

/// <summary>
/// What a hostile request could have made on the host outside the daemon's dirs: the entries of the top-level
/// directories a path-like value can reach (/, /etc, /var, /var/lib, /var/log, /run, /root, /usr, /opt, the
/// daemon's working directory), the first two levels of every cgroup hierarchy, and the mount table. Taken before
/// and after a run; the difference, less what other processes on a shared CI host make (see <see cref="IsOtherActivity"/>),
/// is what the run left.
/// </summary>
public sealed class HostSnapshot
{
    /// <summary>Directories whose new entries must all be explained (every one of them is written to only by package
    /// installs and services, never by tests, so on a CI host nothing else adds to them during a run).</summary>
    public static readonly string[] StrictDirs = ["/", "/etc", "/var", "/var/lib", "/var/log", "/root", "/usr", "/opt", "/run"];

    /// <summary>Directories other tests write to all the time (temp dirs): only entries naming this run's token or ids count.</summary>
    public static readonly string[] SharedDirs = ["/tmp", "/var/tmp", "/dev/shm"];

    private HostSnapshot(HashSet<string> entries, HashSet<string> cgroupDirs, HashSet<string> mountPoints)
    {
        Entries = entries;
        CgroupDirs = cgroupDirs;
        MountPoints = mountPoints;
    }

    public HashSet<string> Entries { get; }
    public HashSet<string> CgroupDirs { get; }
    public HashSet<string> MountPoints { get; }

    public static HostSnapshot Take(IEnumerable<string> extraDirs)
    {
        var entries = new HashSet<string>(StringComparer.Ordinal);
        foreach (var dir in StrictDirs.Concat(SharedDirs).Concat(extraDirs).Distinct())
        {
            try
            {
                foreach (var e in Directory.EnumerateFileSystemEntries(dir)) entries.Add(e);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
        var cgroups = new HashSet<string>(StringComparer.Ordinal);
        foreach (var hierarchy in HostState.CgroupHierarchies())
        {
            try
            {
                foreach (var level1 in Directory.EnumerateDirectories(hierarchy))
                {
                    cgroups.Add(level1);
                    foreach (var level2 in Directory.EnumerateDirectories(level1)) cgroups.Add(level2);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
        var mounts = HostState.Mounts().Select(m => m.MountPoint).ToHashSet(StringComparer.Ordinal);
        return new HostSnapshot(entries, cgroups, mounts);
    }

    /// <summary>
    /// Things other test runs on the same host make in the strict dirs while this one runs: each with why it is
    /// not the daemon under test. Anything naming this run's token or ids is never excused.
    /// </summary>
    public static bool IsOtherActivity(string path)
    {
        string name = Path.GetFileName(path);
        string? parent = Path.GetDirectoryName(path);
        // Other daemons under test and stock critest keep their sockets, netns pins and runtime state here.
        if (parent == "/run" && (name.StartsWith("criruntime", StringComparison.Ordinal) || name is "netns" or "runc" or "crun" or "conmon" or "containerd" or "xtables.lock" or "user" or "lock" or "utmp"))
            return true;
        // systemd/journald and the package manager touch these on their own schedule.
        if (parent == "/var/log" || parent == "/var/lib" && name is "apt" or "dpkg" or "dhcp" or "cni" or "systemd") return true;
        // The CNI plugins' default state and lock directories (host-local's /var/lib/cni, bridge's iptables lock).
        return false;
    }
}
