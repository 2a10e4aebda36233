using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>
/// The seccomp filter of a container, from CRI's SecurityProfile: RuntimeDefault is criruntime's built-in
/// allow list (the syscalls an ordinary program needs; namespace, mount, module, clock and tracing calls only
/// with the capability that would make them legitimate), Localhost reads a profile file from the node, and
/// Unconfined or no profile at all means no filter, as under containerd.
/// </summary>
public static class SeccompProfiles
{
    public const string ActAllow = "SCMP_ACT_ALLOW", ActErrno = "SCMP_ACT_ERRNO";

    /// <summary>Largest Localhost profile read; Docker's default profile is about 20 KiB.</summary>
    public const int MaxLocalhostProfileBytes = 1024 * 1024;
    private const uint EPERM = 1, ENOSYS = 38;

    // Every namespace flag of clone(2): without CAP_SYS_ADMIN a clone may create none of them.
    private const ulong NamespaceFlags = 0x00020000 /* NEWNS */ | 0x02000000 /* NEWCGROUP */ | 0x04000000 /* NEWUTS */
        | 0x08000000 /* NEWIPC */ | 0x10000000 /* NEWUSER */ | 0x20000000 /* NEWPID */ | 0x40000000 /* NEWNET */;

    /// <summary>Allowed for everyone. Names the kernel or libseccomp do not know on this machine are skipped by the runtime.</summary>
    private static readonly string[] Allowed =
    [
        "accept", "accept4", "access", "alarm", "bind", "brk", "cachestat", "capget", "capset", "chdir", "chmod", "chown", "chown32",
        "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
        "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat",
        "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
        "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
        "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
        "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock",
        "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
        "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat",
        "get_robust_list", "get_thread_area", "getcpu", "getcwd", "getdents", "getdents64",
        "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
        "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32",
        "getresuid", "getresuid32", "getrlimit", "getrusage", "getsid", "getsockname", "getsockopt", "gettid",
        "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
        "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
        "io_setup", "io_submit", "ioctl", "ioprio_get", "ioprio_set", "ipc", "kill", "landlock_add_rule",
        "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
        "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise",
        "map_shadow_stack", "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
        "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
        "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
        "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
        "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal",
        "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64",
        "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
        "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
        "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
        "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
        "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
        "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
        "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
        "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
        "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
        "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32",
        "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
        "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "setsid",
        "setsockopt", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
        "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socket", "socketcall", "socketpair", "splice", "stat",
        "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo",
        "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
        "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
        "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink",
        "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
        "write", "writev",
        // Tracing one's own children is harmless since Linux 4.8, where seccomp is re-checked after a ptrace stop.
        "ptrace",
    ];

    /// <summary>Allowed only to a container whose bounding set has the capability, as the capability is what makes them work.</summary>
    private static readonly (string Capability, string[] Syscalls)[] AllowedWithCapability =
    [
        ("CAP_DAC_READ_SEARCH", ["open_by_handle_at"]),
        ("CAP_SYS_ADMIN", ["bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
            "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
            "sethostname", "setns", "syslog", "umount", "umount2", "unshare"]),
        ("CAP_SYS_BOOT", ["reboot"]),
        ("CAP_SYS_CHROOT", ["chroot"]),
        ("CAP_SYS_MODULE", ["delete_module", "init_module", "finit_module"]),
        ("CAP_SYS_PACCT", ["acct"]),
        ("CAP_SYS_PTRACE", ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev"]),
        ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
        ("CAP_SYS_TIME", ["settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex"]),
        ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
        ("CAP_SYS_NICE", ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
        ("CAP_SYSLOG", ["syslog"]),
        ("CAP_BPF", ["bpf"]),
        ("CAP_PERFMON", ["perf_event_open"]),
    ];

    /// <summary>
    /// The filter for a container, or null for none. <paramref name="legacyPath"/> is the deprecated
    /// seccomp_profile_path ("runtime/default", "docker/default", "unconfined", "localhost/&lt;path&gt;"), used only
    /// when <paramref name="profile"/> is absent. Privileged containers run unfiltered, as under containerd and CRI-O.
    /// </summary>
    public static SpecSeccomp? ForContainer(SecurityProfile? profile, string? legacyPath, bool privileged, IReadOnlyCollection<string> boundingCapabilities)
    {
        if (privileged) return null;
        if (profile is null)
        {
            profile = legacyPath switch
            {
                null or "" or "unconfined" => null,
                "runtime/default" or "docker/default" => new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.RuntimeDefault },
                _ when legacyPath.StartsWith("localhost/", StringComparison.Ordinal) =>
                    new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Localhost, LocalhostRef = legacyPath["localhost/".Length..] },
                _ => throw new InvalidArgumentException(
                    $"seccomp_profile_path '{legacyPath}' is not one of runtime/default, docker/default, unconfined or localhost/<absolute path>"),
            };
            if (profile is null) return null;
        }
        return profile.ProfileType switch
        {
            SecurityProfile.Types.ProfileType.Unconfined => null,
            SecurityProfile.Types.ProfileType.RuntimeDefault => RuntimeDefault(boundingCapabilities),
            SecurityProfile.Types.ProfileType.Localhost => Localhost(profile.LocalhostRef, boundingCapabilities),
            _ => throw new InvalidArgumentException($"seccomp profile type {(int)profile.ProfileType} is unknown; use RuntimeDefault, Unconfined or Localhost"),
        };
    }

    /// <summary>The built-in profile for a process with <paramref name="boundingCapabilities"/>.</summary>
    public static SpecSeccomp RuntimeDefault(IReadOnlyCollection<string> boundingCapabilities)
    {
        var caps = boundingCapabilities.ToHashSet(StringComparer.Ordinal);
        var allowed = new List<string>(Allowed);
        allowed.AddRange(Machine() switch
        {
            MachineArch.X64 => ["arch_prctl", "modify_ldt"],
            MachineArch.Arm64 => ["arm_fadvise64_64", "arm_sync_file_range", "breakpoint", "cacheflush", "set_tls"],
            _ => [],
        });
        foreach (var (capability, syscalls) in AllowedWithCapability)
            if (caps.Contains(capability)) allowed.AddRange(syscalls);

        var profile = new SpecSeccomp
        {
            DefaultAction = ActErrno,
            DefaultErrnoRet = EPERM,
            Architectures = Architectures(),
            Syscalls = [new SpecSyscall { Names = allowed.Distinct(StringComparer.Ordinal).ToList(), Action = ActAllow }],
        };
        // personality(2) only to query or to set the ordinary Linux personalities (with or without ADDR_NO_RANDOMIZE / UNAME26).
        foreach (ulong persona in new ulong[] { 0x0, 0x0008, 0x20000, 0x20008, 0xffffffff })
            profile.Syscalls.Add(new SpecSyscall { Names = ["personality"], Action = ActAllow, Args = [new SpecSeccompArg { Index = 0, Value = persona, Op = "SCMP_CMP_EQ" }] });
        if (!caps.Contains("CAP_SYS_ADMIN"))
        {
            // Plain clone(2) for threads and processes, without new namespaces.
            profile.Syscalls.Add(new SpecSyscall
            {
                Names = ["clone"],
                Action = ActAllow,
                Args = [new SpecSeccompArg { Index = 0, Value = NamespaceFlags, ValueTwo = 0, Op = "SCMP_CMP_MASKED_EQ" }],
            });
            // clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes libc fall back to clone.
            profile.Syscalls.Add(new SpecSyscall { Names = ["clone3"], Action = ActErrno, ErrnoRet = ENOSYS });
        }
        return profile;
    }

    /// <summary>
    /// A profile file in Docker's seccomp format (which is also the OCI one, plus optional archMap and
    /// includes/excludes by capability and architecture) at an absolute path on the node.
    /// </summary>
    public static SpecSeccomp Localhost(string path, IReadOnlyCollection<string> boundingCapabilities)
    {
        if (string.IsNullOrEmpty(path) || !Path.IsPathFullyQualified(path))
            throw new InvalidArgumentException($"seccomp localhost_ref '{path}' is not an absolute path to a profile file on the node");
        // A FIFO or device named here must not block the call, nor /dev/zero be read forever.
        string text = System.Text.Encoding.UTF8.GetString(
            Native.RequestedFiles.ReadRegularFile(path, MaxLocalhostProfileBytes, "seccomp profile (localhost_ref)"));
        try
        {
            return ParseProfile(text, boundingCapabilities);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidArgumentException($"seccomp profile {path} is not a valid seccomp profile: {e.Message}");
        }
    }

    internal static SpecSeccomp ParseProfile(string json, IReadOnlyCollection<string> boundingCapabilities)
    {
        var root = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("the profile is not a JSON object");
        string defaultAction = (string?)root["defaultAction"] ?? throw new FormatException("defaultAction is missing");
        var profile = new SpecSeccomp
        {
            DefaultAction = defaultAction,
            DefaultErrnoRet = (uint?)root["defaultErrnoRet"],
            Flags = root["flags"]?.AsArray().Select(f => (string)f!).ToList(),
        };
        if (root["architectures"] is JsonArray arches)
            profile.Architectures = arches.Select(a => (string)a!).ToList();
        else if (root["archMap"] is JsonArray archMap)
        {
            // Only the entry of this machine's architecture, with its sub-architectures.
            var mine = NativeArchitecture;
            var entry = archMap.OfType<JsonObject>().FirstOrDefault(m => (string?)m["architecture"] == mine);
            if (entry is not null)
                profile.Architectures = [mine, .. entry["subArchitectures"]?.AsArray().Select(a => (string)a!) ?? []];
        }

        var caps = boundingCapabilities.ToHashSet(StringComparer.Ordinal);
        foreach (var rule in root["syscalls"]?.AsArray().OfType<JsonObject>() ?? [])
        {
            if (!Applies(rule["includes"] as JsonObject, rule["excludes"] as JsonObject, caps)) continue;
            var names = rule["names"]?.AsArray().Select(n => (string)n!).ToList() ?? [];
            if ((string?)rule["name"] is { Length: > 0 } single) names.Add(single);
            if (names.Count == 0) throw new FormatException("a syscalls entry names no syscall");
            profile.Syscalls.Add(new SpecSyscall
            {
                Names = names,
                Action = (string?)rule["action"] ?? throw new FormatException($"the rule for {names[0]} has no action"),
                ErrnoRet = (uint?)rule["errnoRet"],
                Args = rule["args"]?.AsArray().OfType<JsonObject>().Select(a => new SpecSeccompArg
                {
                    Index = (uint?)a["index"] ?? 0,
                    Value = (ulong?)a["value"] ?? 0,
                    ValueTwo = (ulong?)a["valueTwo"] ?? 0,
                    Op = (string?)a["op"] ?? throw new FormatException($"an argument rule for {names[0]} has no op"),
                }).ToList() is { Count: > 0 } args ? args : null,
            });
        }
        return profile;
    }

    /// <summary>Docker's includes/excludes: every included capability and this architecture if listed; none of the excluded ones.</summary>
    private static bool Applies(JsonObject? includes, JsonObject? excludes, HashSet<string> caps)
    {
        string arch = NativeArchitecture;
        if (includes is not null)
        {
            if (includes["caps"] is JsonArray need && need.Any(c => !caps.Contains((string)c!))) return false;
            if (includes["arches"] is JsonArray onlyOn && onlyOn.All(a => !ArchMatches((string)a!, arch))) return false;
            if ((string?)includes["minKernel"] is { Length: > 0 } minKernel && !KernelAtLeast(minKernel)) return false;
        }
        if (excludes is not null)
        {
            if (excludes["caps"] is JsonArray without && without.Any(c => caps.Contains((string)c!))) return false;
            if (excludes["arches"] is JsonArray notOn && notOn.Any(a => ArchMatches((string)a!, arch))) return false;
        }
        return true;
    }

    // Docker profiles name architectures the Go way (amd64, arm64) in includes/excludes.
    private static bool ArchMatches(string name, string scmpArch) => (name, scmpArch) switch
    {
        ("amd64" or "x86_64", "SCMP_ARCH_X86_64") => true,
        ("arm64" or "aarch64", "SCMP_ARCH_AARCH64") => true,
        _ => name == scmpArch,
    };

    private static bool KernelAtLeast(string minimum)
    {
        static Version Parse(string v)
        {
            var parts = v.Split('.', '-').Take(2).Select(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : 0).ToArray();
            return new Version(parts.ElementAtOrDefault(0), parts.ElementAtOrDefault(1));
        }
        return Parse(Environment.OSVersion.Version.ToString()) >= Parse(minimum);
    }

    private enum MachineArch { X64, Arm64, Other }

    private static MachineArch Machine() => RuntimeInformation.OSArchitecture switch
    {
        Architecture.X64 => MachineArch.X64,
        Architecture.Arm64 => MachineArch.Arm64,
        _ => MachineArch.Other,
    };

    /// <summary>This machine's seccomp architecture first, then the ones its compat modes run.</summary>
    private static List<string> Architectures() => Machine() switch
    {
        MachineArch.X64 => ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        MachineArch.Arm64 => ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => [],
    };

    private static string NativeArchitecture => Architectures().FirstOrDefault() ?? "";
}
