using System.Runtime.InteropServices;

namespace CriRuntime.Native;

/// <summary>Signals: numbers by name, kill(2), and killing a whole process tree.</summary>
public static partial class Signals
{
    public const int SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGKILL = 9, SIGUSR1 = 10, SIGUSR2 = 12, SIGPIPE = 13,
        SIGALRM = 14, SIGTERM = 15, SIGCHLD = 17, SIGCONT = 18, SIGSTOP = 19, SIGWINCH = 28;

    // The x86-64/arm64 numbering (both use the generic table for these).
    private static readonly Dictionary<string, int> ByName = new(StringComparer.OrdinalIgnoreCase)
    {
        ["HUP"] = 1, ["INT"] = 2, ["QUIT"] = 3, ["ILL"] = 4, ["TRAP"] = 5, ["ABRT"] = 6, ["IOT"] = 6, ["BUS"] = 7,
        ["FPE"] = 8, ["KILL"] = 9, ["USR1"] = 10, ["SEGV"] = 11, ["USR2"] = 12, ["PIPE"] = 13, ["ALRM"] = 14,
        ["TERM"] = 15, ["STKFLT"] = 16, ["CHLD"] = 17, ["CLD"] = 17, ["CONT"] = 18, ["STOP"] = 19, ["TSTP"] = 20, ["TTIN"] = 21,
        ["TTOU"] = 22, ["URG"] = 23, ["XCPU"] = 24, ["XFSZ"] = 25, ["VTALRM"] = 26, ["PROF"] = 27, ["WINCH"] = 28,
        ["IO"] = 29, ["POLL"] = 29, ["PWR"] = 30, ["SYS"] = 31,
    };

    /// <summary>Parses "SIGTERM", "TERM", "15" or "SIGRTMIN+3" (the forms an image's StopSignal uses).</summary>
    public static bool TryParse(string? text, out int signal)
    {
        signal = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        string s = text.Trim();
        if (int.TryParse(s, out signal)) return signal is > 0 and < 65;
        if (s.StartsWith("SIG", StringComparison.OrdinalIgnoreCase)) s = s[3..];
        if (ByName.TryGetValue(s, out signal)) return true;
        // Real-time signals: glibc's SIGRTMIN is 34 (32 and 33 are reserved by the threading library).
        const int rtMin = 34, rtMax = 64;
        if (s.StartsWith("RTMIN", StringComparison.OrdinalIgnoreCase))
        {
            string rest = s[5..];
            int offset = rest.Length == 0 ? 0 : rest[0] == '+' && int.TryParse(rest[1..], out int o) ? o : -1;
            signal = rtMin + offset;
            return offset >= 0 && signal <= rtMax;
        }
        if (s.StartsWith("RTMAX", StringComparison.OrdinalIgnoreCase))
        {
            string rest = s[5..];
            int offset = rest.Length == 0 ? 0 : rest[0] == '-' && int.TryParse(rest[1..], out int o) ? o : -1;
            signal = rtMax - offset;
            return offset >= 0 && signal >= rtMin;
        }
        signal = 0;
        return false;
    }

    /// <summary>kill(2). False when the process does not exist (ESRCH).</summary>
    public static bool Kill(int pid, int signal)
    {
        if (pid <= 0) throw new ArgumentOutOfRangeException(nameof(pid), pid, "refusing to signal a process group or every process");
        if (kill(pid, signal) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == Errno.ESRCH) return false;
        throw new NativeException("kill", null, errno, $"kill {pid} with signal {signal}");
    }

    /// <summary>True while a process with this pid exists (a zombie counts).</summary>
    public static bool Exists(int pid) => pid > 0 && (kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() == Errno.EPERM);

    /// <summary>
    /// SIGKILLs a process and all its descendants. Each one is stopped before its children are
    /// listed, so none of them can fork a new child that escapes the walk; then all get SIGKILL.
    /// Returns the pids that were signalled.
    /// </summary>
    public static IReadOnlyList<int> KillTree(int rootPid)
    {
        var seen = new List<int>();
        var pending = new Queue<int>();
        pending.Enqueue(rootPid);
        var set = new HashSet<int>();
        while (pending.Count > 0)
        {
            int pid = pending.Dequeue();
            if (!set.Add(pid)) continue;
            if (!Kill(pid, SIGSTOP)) continue;
            seen.Add(pid);
            foreach (int child in Children(pid)) pending.Enqueue(child);
        }
        foreach (int pid in seen) Kill(pid, SIGKILL);
        return seen;
    }

    /// <summary>The pids whose parent is <paramref name="pid"/>, from /proc/PID/task/*/children.</summary>
    public static IReadOnlyList<int> Children(int pid)
    {
        var result = new List<int>();
        string tasks = $"/proc/{pid}/task";
        IEnumerable<string> taskDirs;
        try { taskDirs = Directory.EnumerateDirectories(tasks).ToList(); }
        catch (DirectoryNotFoundException) { return result; }
        foreach (string task in taskDirs)
        {
            string text;
            try { text = File.ReadAllText(Path.Combine(task, "children")); }
            catch (IOException) { continue; }
            foreach (string part in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                if (int.TryParse(part, out int child)) result.Add(child);
        }
        return result;
    }

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
