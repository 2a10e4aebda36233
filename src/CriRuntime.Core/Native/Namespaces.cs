using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Text;

namespace CriRuntime.Native;

/// <summary>The namespaces a pod owns on its own; pid and mount namespaces are the OCI runtime's business.</summary>
[Flags]
public enum NamespaceKinds
{
    None = 0,
    Network = 1,
    Ipc = 2,
    Uts = 4,
}

/// <summary>Where each pinned namespace of a pod lives; null for a kind that was not created.</summary>
public sealed record PinnedNamespaces(string? NetworkPath, string? IpcPath, string? UtsPath)
{
    /// <summary>Every pinned path, for cleanup loops.</summary>
    public IEnumerable<string> Paths => new[] { NetworkPath, IpcPath, UtsPath }.OfType<string>();
}

/// <summary>
/// Pod namespaces without a pause process, as CRI-O's pinns does: a thread unshares, and a bind mount
/// of its /proc/thread-self/ns/&lt;kind&gt; keeps each namespace alive after the thread is gone.
/// </summary>
public static unsafe partial class Namespaces
{
    private const int CLONE_NEWUTS = 0x04000000, CLONE_NEWIPC = 0x08000000, CLONE_NEWNET = 0x40000000;
    private const long NsfsMagic = 0x6e736673;
    private const int O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0x40, O_EXCL = 0x80, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000;

    /// <summary>Linux limit on a UTS node name (__NEW_UTS_LEN).</summary>
    public const int MaxHostnameLength = 64;

    /// <summary>The pin file's name inside the pin directory, which is also the name under /proc/*/ns.</summary>
    public static string FileName(NamespaceKinds kind) => kind switch
    {
        NamespaceKinds.Network => "net",
        NamespaceKinds.Ipc => "ipc",
        NamespaceKinds.Uts => "uts",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "exactly one namespace kind is expected"),
    };

    /// <summary>
    /// Makes fresh namespaces of <paramref name="kinds"/> on a dedicated OS thread (unshare(2) of net/ipc/uts
    /// affects only the calling thread, so the daemon's other threads are untouched; the thread then exits),
    /// sets <paramref name="hostname"/> inside the new UTS namespace, and pins each by bind-mounting
    /// /proc/thread-self/ns/&lt;kind&gt; onto &lt;pinDir&gt;/net, ipc, uts. The pin files must not exist yet
    /// (a stale one is refused rather than mounted over); <paramref name="pinDir"/> must exist.
    /// On any failure whatever was pinned is unpinned before the exception propagates.
    /// </summary>
    public static Task<PinnedNamespaces> CreatePinnedAsync(string pinDir, NamespaceKinds kinds, string? hostname, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(pinDir);
        if (!Path.IsPathFullyQualified(pinDir))
            throw new ArgumentException($"pin directory '{pinDir}' must be an absolute path", nameof(pinDir));
        if (kinds == NamespaceKinds.None || (kinds & ~(NamespaceKinds.Network | NamespaceKinds.Ipc | NamespaceKinds.Uts)) != 0)
            throw new ArgumentException($"namespace kinds '{kinds}' must be a non-empty combination of Network, Ipc and Uts", nameof(kinds));
        if (hostname is not null)
        {
            if ((kinds & NamespaceKinds.Uts) == 0)
                throw new ArgumentException("a hostname can only be set in a new UTS namespace; add NamespaceKinds.Uts", nameof(hostname));
            ValidateHostname(hostname, nameof(hostname));
        }
        ct.ThrowIfCancellationRequested();
        // Once started the work is not abandoned on cancellation: it takes microseconds, and leaving
        // it mid-way is exactly what would leak a mount.
        return RunOnDedicatedThread("ns-create", () => CreateOnThisThread(pinDir, kinds, hostname));
    }

    /// <summary>umount2(MNT_DETACH) then unlink; a missing or already-unmounted path is fine (idempotent).</summary>
    public static void Unpin(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // The same path may have been pinned more than once (a crash between mount and record); peel every layer.
        for (int layer = 0; ; layer++)
        {
            int errno = Mounts.TryUnmount(path, UnmountFlags.Detach | UnmountFlags.NoFollow);
            if (errno is Errno.EINVAL or Errno.ENOENT) break;  // EINVAL: not a mount point (any more)
            if (errno != 0) throw new NativeException("umount2", path, errno, "unpin namespace: umount2");
            if (layer > 64) throw new IOException($"unpin namespace {path}: still mounted after {layer} unmounts");
        }
        var p = Interop.CString(path);
        fixed (byte* pp = p)
        {
            if (unlink(pp) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno != Errno.ENOENT) throw new NativeException("unlink", path, errno, "unpin namespace: unlink");
            }
        }
    }

    /// <summary>True when an nsfs is mounted at path.</summary>
    public static bool IsPinned(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // A symlink such as /proc/self/ns/net would statfs as nsfs too, but it is not a pin.
        var status = Files.TryLstat(path);
        if (status is null || status.Value.Type == FileType.Symlink) return false;
        try { return Files.StatFs(path).Type == NsfsMagic; }
        catch (NativeException e) when (e.Errno is Errno.ENOENT or Errno.ENOTDIR) { return false; }
    }

    /// <summary>Runs <paramref name="action"/> on a dedicated thread that setns(2)'d into the network namespace at <paramref name="netnsPath"/>.</summary>
    public static Task<T> RunInNetworkNamespaceAsync<T>(string netnsPath, Func<T> action, CancellationToken ct) =>
        RunInNamespaceAsync(netnsPath, NamespaceKinds.Network, action, ct);

    /// <summary>
    /// Runs <paramref name="action"/> on a dedicated thread that joined the namespace of <paramref name="kind"/>
    /// at <paramref name="nsPath"/> (a pin or /proc/PID/ns/KIND). The thread exits afterwards, so it never
    /// has to find its way back to the host's namespace. <paramref name="ct"/> is checked before entering;
    /// the action itself should observe it if it can take long.
    /// The action must stay synchronous on its thread: no await, no new threads, timers or thread-pool work,
    /// since any thread created from inside inherits the namespace.
    /// </summary>
    public static Task<T> RunInNamespaceAsync<T>(string nsPath, NamespaceKinds kind, Func<T> action, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(nsPath);
        ArgumentNullException.ThrowIfNull(action);
        int nsType = CloneFlag(kind);
        ct.ThrowIfCancellationRequested();
        return RunOnDedicatedThread($"ns-{FileName(kind)}", () =>
        {
            Join(nsPath, nsType);
            return action();
        });
    }

    /// <summary>The inode number of the namespace at <paramref name="nsPath"/>: two paths name the same namespace iff these match (same nsfs).</summary>
    public static ulong Inode(string nsPath)
    {
        var p = Interop.CString(nsPath);
        Tmds.Linux.stat st;
        fixed (byte* pp = p)
        {
            if (Tmds.Linux.LibC.stat(pp, &st) != 0) throw NativeException.Last("stat", nsPath);
        }
        return st.st_ino;
    }

    /// <summary>The node name of the UTS namespace the calling thread is in (gethostname(2)).</summary>
    public static string CurrentHostname()
    {
        byte* buffer = stackalloc byte[MaxHostnameLength + 1];
        if (gethostname(buffer, MaxHostnameLength + 1) != 0) throw NativeException.Last("gethostname", null);
        return Marshal.PtrToStringUTF8((nint)buffer)!;
    }

    /// <summary>Checks a hostname for sethostname and /etc/hosts: 1-64 characters of letters, digits, '-', '.', '_'.</summary>
    public static void ValidateHostname(string hostname, string field)
    {
        if (string.IsNullOrEmpty(hostname))
            throw new InvalidArgumentException($"{field} must not be empty", field);
        if (hostname.Length > MaxHostnameLength)
            throw new InvalidArgumentException($"{field} '{Echo.Of(hostname)}' is longer than {MaxHostnameLength} characters", field);
        foreach (char c in hostname)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_'))
                throw new InvalidArgumentException(
                    $"{field} '{Printable(hostname)}' contains '{Printable(c.ToString())}'; only letters, digits, '-', '.' and '_' are allowed", field);
        }
        if (hostname[0] is '-' or '.')
            throw new InvalidArgumentException($"{field} '{Echo.Of(hostname)}' must start with a letter or digit", field);
    }

    /// <summary>A request value as messages quote it: escaped and bounded (<see cref="Echo.Of"/>).</summary>
    internal static string Printable(string s) => Echo.Of(s);

    private static PinnedNamespaces CreateOnThisThread(string pinDir, NamespaceKinds kinds, string? hostname)
    {
        int flags = 0;
        foreach (var kind in Each(kinds)) flags |= CloneFlag(kind);
        if (unshare(flags) != 0)
            throw NativeException.Last("unshare", null, $"unshare {kinds} namespaces");

        if (hostname is not null)
        {
            var name = Encoding.ASCII.GetBytes(hostname);
            fixed (byte* pn = name)
            {
                if (sethostname(pn, (nuint)name.Length) != 0) throw NativeException.Last("sethostname", null, $"sethostname {hostname}");
            }
        }

        var pinned = new List<string>();
        try
        {
            foreach (var kind in Each(kinds))
            {
                string target = Path.Combine(pinDir, FileName(kind));
                CreateEmptyFile(target);
                pinned.Add(target);  // from here on a rollback must unlink it even if the mount fails
                Mounts.Mount($"/proc/thread-self/ns/{FileName(kind)}", target, null, MountFlags.Bind);
            }
        }
        catch
        {
            foreach (var path in pinned)
            {
                try { Unpin(path); }
                catch (IOException) { /* the original error is the one worth reporting */ }
            }
            throw;
        }
        string? PathOf(NamespaceKinds kind) => (kinds & kind) != 0 ? Path.Combine(pinDir, FileName(kind)) : null;
        return new PinnedNamespaces(PathOf(NamespaceKinds.Network), PathOf(NamespaceKinds.Ipc), PathOf(NamespaceKinds.Uts));
    }

    private static void CreateEmptyFile(string path)
    {
        var p = Interop.CString(path);
        fixed (byte* pp = p)
        {
            int fd = open(pp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0);
            if (fd < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                string hint = errno == Errno.EEXIST ? " (a stale pin: Unpin it first)" : "";
                throw new NativeException("open", path, errno, $"create namespace pin file{hint}");
            }
            close(fd);
        }
    }

    private static void Join(string nsPath, int nsType)
    {
        var p = Interop.CString(nsPath);
        int fd;
        fixed (byte* pp = p)
        {
            fd = open(pp, O_RDONLY | O_CLOEXEC, 0);
            if (fd < 0) throw NativeException.Last("open", nsPath, "open namespace");
        }
        try
        {
            // nsType makes the kernel check that the file is a namespace of the expected kind.
            if (setns(fd, nsType) != 0) throw NativeException.Last("setns", nsPath);
        }
        finally
        {
            close(fd);
        }
    }

    private static IEnumerable<NamespaceKinds> Each(NamespaceKinds kinds)
    {
        foreach (var kind in new[] { NamespaceKinds.Network, NamespaceKinds.Ipc, NamespaceKinds.Uts })
            if ((kinds & kind) != 0) yield return kind;
    }

    private static int CloneFlag(NamespaceKinds kind) => kind switch
    {
        NamespaceKinds.Network => CLONE_NEWNET,
        NamespaceKinds.Ipc => CLONE_NEWIPC,
        NamespaceKinds.Uts => CLONE_NEWUTS,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "exactly one namespace kind is expected"),
    };

    /// <summary>
    /// Runs <paramref name="body"/> on a fresh OS thread that ends with it. Namespace changes are per
    /// thread, so a thread that changed them must never run anything else: not a pool thread. Nor may it
    /// complete the returned task: a thread created while completing it (the pool injecting a worker to
    /// run the continuation) would be cloned with the pod's namespaces and later run daemon work in them.
    /// So a second thread, started from the caller's (host) namespaces, joins it and completes the task.
    /// </summary>
    private static Task<T> RunOnDedicatedThread<T>(string name, Func<T> body)
    {
        T result = default!;
        ExceptionDispatchInfo? error = null;
        var worker = new Thread(() =>
        {
            try { result = body(); }
            catch (Exception e) { error = ExceptionDispatchInfo.Capture(e); }
        })
        {
            IsBackground = true,
            Name = name,
        };
        worker.Start();
        return Task.Factory.StartNew(() =>
        {
            worker.Join();  // also orders the writes of result/error before these reads
            error?.Throw();
            return result;
        }, CancellationToken.None, TaskCreationOptions.LongRunning | TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);
    }

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int unshare(int flags);

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int setns(int fd, int nstype);

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int sethostname(byte* name, nuint len);

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int gethostname(byte* name, nuint len);

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int open(byte* path, int flags, int mode);

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int unlink(byte* path);
}
