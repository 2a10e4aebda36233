using System.Diagnostics;
using System.Text;
using CriRuntime.Native;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Oci.Spec;

/// <summary>
/// What the node's Linux security modules can do, and the few side effects applying them has (loading an AppArmor
/// profile, relabelling a volume for SELinux). The spec options ask this rather than the host, so unit tests can stand
/// in a host with AppArmor or SELinux on (neither is enabled on the machines the project is built on).
/// </summary>
public abstract class LsmHost
{
    /// <summary>The kernel enforces AppArmor profiles (runc applies process.apparmorProfile only then).</summary>
    public abstract bool AppArmorEnabled { get; }

    /// <summary>SELinux is enabled (enforcing or permissive): labels in the spec take effect.</summary>
    public abstract bool SelinuxEnabled { get; }

    /// <summary>A profile of this exact name is loaded into the kernel.</summary>
    public abstract bool IsAppArmorProfileLoaded(string name);

    /// <summary>Loads (or replaces) a profile from its text; throws with the parser's message when it fails.</summary>
    public abstract void LoadAppArmorProfile(string name, string profileText);

    /// <summary>Which optional AppArmor includes the host has (/etc/apparmor.d): the generated profile uses them if so.</summary>
    public abstract AppArmorIncludes AppArmorIncludes { get; }

    /// <summary>The profile the daemon itself runs under; it may signal the container's processes.</summary>
    public abstract string DaemonAppArmorProfile { get; }

    /// <summary>Gives <paramref name="path"/> and everything below it the SELinux file label <paramref name="label"/>.</summary>
    public abstract void Relabel(string path, string label);

    /// <summary>SELinux options came on a host without SELinux: they are ignored, as containerd and CRI-O do; said once.</summary>
    public abstract void NoteSelinuxOptionsIgnored(string containerId);

    /// <summary>The real host: probes /sys, runs apparmor_parser, writes security.selinux.</summary>
    public static LsmHost ForThisHost(ILogger logger) => new SystemLsmHost(logger);

    private static readonly Lazy<LsmHost> system = new(() => new SystemLsmHost(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance));

    /// <summary>This host, logging nowhere: for spec inputs that name no host (tools, tests of other options).</summary>
    public static LsmHost System => system.Value;
}

/// <summary>Which of the usual includes exist under /etc/apparmor.d.</summary>
public readonly record struct AppArmorIncludes(bool Abi3, bool TunablesGlobal, bool AbstractionsBase);

internal sealed class SystemLsmHost(ILogger logger) : LsmHost
{
    private const string AppArmorDir = "/etc/apparmor.d";
    private const string LoadedProfilesFile = "/sys/kernel/security/apparmor/profiles";
    private static readonly string[] ParserPaths = ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"];
    private static readonly TimeSpan ParserTimeout = TimeSpan.FromSeconds(60);

    // The host's modules do not change while the daemon runs; probed on first use.
    private readonly Lazy<bool> appArmor = new(() =>
        Directory.Exists("/sys/kernel/security/apparmor") && ReadStart("/sys/module/apparmor/parameters/enabled") == 'Y');
    private readonly Lazy<bool> selinux = new(() => File.Exists("/sys/fs/selinux/enforce"));
    private int selinuxIgnoredNoted;

    public override bool AppArmorEnabled => appArmor.Value;
    public override bool SelinuxEnabled => selinux.Value;

    public override AppArmorIncludes AppArmorIncludes => new(
        Path.Exists(Path.Combine(AppArmorDir, "abi/3.0")),
        Path.Exists(Path.Combine(AppArmorDir, "tunables/global")),
        Path.Exists(Path.Combine(AppArmorDir, "abstractions/base")));

    public override string DaemonAppArmorProfile
    {
        get
        {
            try { return AppArmorProfile.ProfileNameOf(File.ReadAllText("/proc/self/attr/current")); }
            catch (IOException) { return "unconfined"; }
            catch (UnauthorizedAccessException) { return "unconfined"; }
        }
    }

    public override bool IsAppArmorProfileLoaded(string name)
    {
        // One line per profile, "NAME (MODE)"; the file is small (one line per loaded profile).
        foreach (string line in File.ReadLines(LoadedProfilesFile))
            if (AppArmorProfile.ProfileNameOf(line) == name) return true;
        return false;
    }

    public override void LoadAppArmorProfile(string name, string profileText)
    {
        string parser = ParserPaths.FirstOrDefault(File.Exists)
            ?? throw new FailedPreconditionException($"cannot load AppArmor profile {name}: apparmor_parser is not installed (Debian: apt-get install apparmor)");
        // -K: no cache (the text is generated); -r: replace a profile of the same name. The text goes in on stdin.
        var start = new ProcessStartInfo(parser, ["-Kr"])
        {
            RedirectStandardInput = true, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false,
        };
        using var process = Process.Start(start) ?? throw new FailedPreconditionException($"cannot start {parser}");
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        process.StandardInput.Write(profileText);
        process.StandardInput.Close();
        if (!process.WaitForExit(ParserTimeout))
        {
            process.Kill();
            throw new FailedPreconditionException($"{parser} did not load AppArmor profile {name} within {ParserTimeout.TotalSeconds} s");
        }
        if (process.ExitCode != 0)
            throw new FailedPreconditionException($"{parser} could not load AppArmor profile {name} (exit {process.ExitCode}): {Cut(stderr.Result + stdout.Result)}");
        logger.LogInformation("Loaded AppArmor profile {Profile}", name);
    }

    public override void Relabel(string path, string label) => SelinuxRelabel.Tree(path, label);

    public override void NoteSelinuxOptionsIgnored(string containerId)
    {
        if (Interlocked.Exchange(ref selinuxIgnoredNoted, 1) == 0)
            logger.LogDebug("SELinux is not enabled on this host: selinux_options and selinux_relabel are ignored (first seen on container {Id}), as containerd and CRI-O do", containerId);
    }

    private static char ReadStart(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            int b = stream.ReadByte();
            return b < 0 ? '\0' : (char)b;
        }
        catch (IOException) { return '\0'; }
        catch (UnauthorizedAccessException) { return '\0'; }
    }

    private static string Cut(string s)
    {
        s = s.Trim();
        return s.Length <= 2048 ? s : s[..2048] + "...";
    }
}

/// <summary>Relabelling a volume for SELinux, as containerd's label.Relabel: every entry gets security.selinux.</summary>
internal static class SelinuxRelabel
{
    /// <summary>Directories a relabel would make unusable to the node; containerd's go-selinux refuses the same kind.</summary>
    private static readonly HashSet<string> Refused =
        ["/", "/bin", "/boot", "/dev", "/etc", "/etc/passwd", "/etc/shadow", "/home", "/lib", "/lib64", "/media", "/opt",
         "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib", "/var/log"];

    /// <summary>
    /// Labels <paramref name="root"/> and what is below it: an explicit stack (no recursion, no depth limit), symlinks
    /// labelled themselves and never followed, and nothing on another file system (a mount below the volume is not the
    /// volume's to relabel).
    /// </summary>
    public static void Tree(string root, string label)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        if (full.Length == 0) full = "/";
        if (Refused.Contains(full))
            throw new InvalidArgumentException($"refusing to relabel {full} for SELinux: it is a system directory; mount a directory of its own with selinux_relabel");
        byte[] value = Encoding.UTF8.GetBytes(label);
        var top = Files.Lstat(full);
        var pending = new Stack<string>();
        pending.Push(full);
        while (pending.Count > 0)
        {
            string path = pending.Pop();
            var status = Files.Lstat(path);
            if (status.Device != top.Device) continue;
            int errno = Xattrs.TrySet(path, "security.selinux", value);
            // A file system without labels (ENOTSUP) is not an error, as for containerd.
            if (errno != 0 && errno != Errno.ENOTSUP) throw new NativeException("lsetxattr", path, errno, "relabel (security.selinux)");
            if (!status.IsDirectory) continue;
            foreach (string entry in Directory.EnumerateFileSystemEntries(path)) pending.Push(entry);
        }
    }
}
