using System.Runtime.InteropServices;

namespace CriRuntime.Bench;

/// <summary>One process as /proc shows it.</summary>
public sealed record ProcInfo(int Pid, int ParentPid, string Comm, string CommandLine);

/// <summary>
/// Memory of one process, in KiB: resident set, proportional set (shared pages split between sharers) and the
/// anonymous part of the resident set (heaps and stacks, as opposed to mapped files such as the binary).
/// </summary>
public readonly record struct ProcMemory(long RssKiB, long PssKiB, long AnonKiB = 0)
{
    public static ProcMemory operator +(ProcMemory a, ProcMemory b) => new(a.RssKiB + b.RssKiB, a.PssKiB + b.PssKiB, a.AnonKiB + b.AnonKiB);
}

/// <summary>Reads processes, their memory and the kernel's fork counter from /proc; signals processes by pid.</summary>
public static partial class Procfs
{
    /// <summary>Every process alive now (processes that exit while being read are skipped).</summary>
    public static List<ProcInfo> Processes()
    {
        var list = new List<ProcInfo>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            var info = TryRead(pid);
            if (info is not null) list.Add(info);
        }
        return list;
    }

    public static ProcInfo? TryRead(int pid)
    {
        try
        {
            // comm is field 2 in parentheses and may itself contain ") "; the fields after the last ')' are fixed.
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int open = stat.IndexOf('('), close = stat.LastIndexOf(')');
            string comm = stat[(open + 1)..close];
            var rest = stat[(close + 2)..].Split(' ');
            int ppid = int.Parse(rest[1]);
            string cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').TrimEnd();
            return new ProcInfo(pid, ppid, comm, cmdline);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>Rss and Pss of <paramref name="pid"/> from smaps_rollup; throws if the process is gone.</summary>
    public static ProcMemory Memory(int pid)
    {
        long rss = -1, pss = -1, anon = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps_rollup"))
        {
            if (line.StartsWith("Rss:", StringComparison.Ordinal)) rss = KiB(line);
            else if (line.StartsWith("Pss:", StringComparison.Ordinal)) pss = KiB(line);
            else if (line.StartsWith("Anonymous:", StringComparison.Ordinal)) anon = KiB(line);
        }
        if (rss < 0 || pss < 0) throw new InvalidOperationException($"/proc/{pid}/smaps_rollup has no Rss/Pss lines");
        return new ProcMemory(rss, pss, anon);

        static long KiB(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
    }

    /// <summary>
    /// The kernel's count of forks since boot (/proc/stat "processes"; every clone, threads included, machine-wide).
    /// The difference across an operation bounds how many processes and threads it made.
    /// </summary>
    public static long ForkCount()
    {
        foreach (var line in File.ReadLines("/proc/stat"))
            if (line.StartsWith("processes ", StringComparison.Ordinal))
                return long.Parse(line["processes ".Length..]);
        throw new InvalidOperationException("/proc/stat has no 'processes' line");
    }

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false if it no longer exists.</summary>
    public static bool Signal(int pid, int signal)
    {
        if (kill(pid, signal) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == 3 /* ESRCH */) return false;
        throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {errno}");
    }

    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);
}
