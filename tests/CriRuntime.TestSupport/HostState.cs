using System.Globalization;
using System.Text;

namespace CriRuntime.TestSupport;

/// <summary>
/// What the host shows through /proc and /sys/fs/cgroup: mounts, processes and their cgroups, cgroup
/// directories. Tests use it to prove a runtime left nothing behind, and to clean up when it did.
/// </summary>
public static class HostState
{
    public sealed record MountEntry(string MountPoint, string FsType, string Source)
    {
        public override string ToString() => $"{MountPoint} ({FsType} from {Source})";
    }

    public sealed record HostProcess(int Pid, int ParentPid, char State, string Comm, string CommandLine, IReadOnlyList<string> CgroupPaths)
    {
        public override string ToString() => $"pid {Pid} (ppid {ParentPid}, state {State}) {Comm}: {CommandLine} [cgroups {string.Join(", ", CgroupPaths.Distinct())}]";
    }

    /// <summary>The cgroup v1 hierarchies (and the unified v2 one in hybrid mode) mounted under /sys/fs/cgroup.</summary>
    public static IReadOnlyList<string> CgroupHierarchies() =>
        Directory.Exists("/sys/fs/cgroup")
            ? Directory.EnumerateDirectories("/sys/fs/cgroup").Where(d => File.Exists(Path.Combine(d, "cgroup.procs"))).Order(StringComparer.Ordinal).ToList()
            : [];

    /// <summary>Mounts of this mount namespace (/proc/self/mountinfo).</summary>
    public static IReadOnlyList<MountEntry> Mounts()
    {
        var mounts = new List<MountEntry>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
            var fields = line.Split(' ');
            int dash = Array.IndexOf(fields, "-");
            if (fields.Length < 5 || dash < 0 || dash + 2 >= fields.Length) continue;
            mounts.Add(new MountEntry(Unescape(fields[4]), fields[dash + 1], Unescape(fields[dash + 2])));
        }
        return mounts;
    }

    /// <summary>Mounts at or below <paramref name="dir"/>.</summary>
    public static IReadOnlyList<MountEntry> MountsUnder(string dir)
    {
        string prefix = dir.TrimEnd('/') + "/";
        return Mounts().Where(m => m.MountPoint == dir.TrimEnd('/') || m.MountPoint.StartsWith(prefix, StringComparison.Ordinal)).ToList();
    }

    /// <summary>Every process visible in /proc; ones that exit while being read are skipped.</summary>
    public static IReadOnlyList<HostProcess> Processes()
    {
        var list = new List<HostProcess>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid)) continue;
            if (TryRead(pid) is { } p) list.Add(p);
        }
        return list;
    }

    /// <summary>The process, or null if there is none with that pid.</summary>
    public static HostProcess? TryRead(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
            int close = stat.LastIndexOf(')');
            int open = stat.IndexOf('(');
            string comm = stat[(open + 1)..close];
            var rest = stat[(close + 2)..].Split(' ');
            char state = rest[0][0];
            int ppid = int.Parse(rest[1], CultureInfo.InvariantCulture);
            string cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').TrimEnd();
            var cgroups = File.ReadAllLines($"/proc/{pid}/cgroup")
                .Select(l => l.Split(':', 3))
                .Where(f => f.Length == 3)
                .Select(f => f[2])
                .ToList();
            return new HostProcess(pid, ppid, state, comm, cmdline, cgroups);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>True while the process exists, zombies included (a zombie means nobody reaped it yet).</summary>
    public static bool ProcessExists(int pid) => Directory.Exists($"/proc/{pid}");

    /// <summary>Processes whose cgroup path (in any hierarchy) contains <paramref name="fragment"/>.</summary>
    public static IReadOnlyList<HostProcess> ProcessesInCgroupsContaining(string fragment) =>
        Processes().Where(p => p.CgroupPaths.Any(c => c.Contains(fragment, StringComparison.Ordinal))).ToList();

    /// <summary>Processes whose command line contains <paramref name="fragment"/>, except this test process.</summary>
    public static IReadOnlyList<HostProcess> ProcessesMentioning(string fragment) =>
        Processes().Where(p => p.Pid != Environment.ProcessId && p.CommandLine.Contains(fragment, StringComparison.Ordinal)).ToList();

    /// <summary>
    /// Cgroup directories at or below <c>HIERARCHY/relativePath</c> in every hierarchy (relativePath like
    /// "kubepods/besteffort/pod&lt;uid&gt;"), deepest first.
    /// </summary>
    public static IReadOnlyList<string> CgroupDirsAt(string relativePath)
    {
        var found = new List<string>();
        foreach (var hierarchy in CgroupHierarchies())
        {
            string dir = Path.Combine(hierarchy, relativePath.TrimStart('/'));
            if (!Directory.Exists(dir)) continue;
            found.AddRange(Directory.EnumerateDirectories(dir, "*", SearchOption.AllDirectories));
            found.Add(dir);
        }
        return found.OrderByDescending(d => d.Count(c => c == '/')).ThenBy(d => d, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Files and directories below <paramref name="dir"/> whose name contains any of <paramref name="ids"/>;
    /// does not descend into other mounts' contents beyond what a plain walk sees.
    /// </summary>
    public static IReadOnlyList<string> PathsNaming(string dir, IReadOnlyCollection<string> ids)
    {
        if (ids.Count == 0 || !Directory.Exists(dir)) return [];
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0, ReturnSpecialDirectories = false };
        return Directory.EnumerateFileSystemEntries(dir, "*", options)
            .Where(p => ids.Any(id => Path.GetFileName(p).Contains(id, StringComparison.Ordinal)))
            .ToList();
    }

    // mountinfo escapes space, tab, newline and backslash as \ooo.
    private static string Unescape(string field)
    {
        if (!field.Contains('\\')) return field;
        var sb = new StringBuilder(field.Length);
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length &&
                field.Substring(i + 1, 3) is var octal && octal.All(c => c is >= '0' and <= '7'))
            {
                sb.Append((char)Convert.ToInt32(octal, 8));
                i += 3;
            }
            else
            {
                sb.Append(field[i]);
            }
        }
        return sb.ToString();
    }
}
