using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CriRuntime.Native;

/// <summary>What <see cref="Spawn.Start"/> runs and which descriptors the child gets.</summary>
public sealed record SpawnRequest
{
    /// <summary>Absolute path of the program (no PATH search).</summary>
    public required string Path { get; init; }

    /// <summary>argv, including argv[0].</summary>
    public required IReadOnlyList<string> Args { get; init; }

    /// <summary>The child's whole environment, "KEY=value" each.</summary>
    public required IReadOnlyList<string> Environment { get; init; }

    /// <summary>fd 0/1/2 of the child; null means /dev/null.</summary>
    public SafeHandle? Stdin { get; init; }
    public SafeHandle? Stdout { get; init; }
    public SafeHandle? Stderr { get; init; }

    /// <summary>Handles that become fd 3, 4, ... in the child, in this order.</summary>
    public IReadOnlyList<SafeHandle> ExtraFds { get; init; } = [];

    /// <summary>setsid() in the child: its own session and process group, so signals meant for ours
    /// (a terminal's ^C, a kill of our process group) do not reach it.</summary>
    public bool NewSession { get; init; }
}

/// <summary>
/// posix_spawn with a chosen set of inherited descriptors. .NET's Process passes only stdio, but
/// programs such as conmon take extra pipes as fd 3, 4 (named in environment variables). Every
/// other descriptor of this process is close-on-exec (.NET opens everything O_CLOEXEC), so the child
/// gets exactly what is listed. Signal dispositions and the mask are reset: .NET ignores SIGPIPE, and
/// an ignored signal would otherwise stay ignored in the child across exec.
/// </summary>
public static unsafe partial class Spawn
{
    private const string Libc = "libc.so.6";
    private const short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSID = 0x80;
    private const int F_DUPFD_CLOEXEC = 1030, O_RDWR = 2, O_CLOEXEC = 0x80000, WNOHANG = 1;
    // glibc's posix_spawnattr_t is 336 bytes, posix_spawn_file_actions_t 80 and sigset_t 128 on
    // 64-bit Linux; the buffers are larger so a libc with bigger opaque types still fits.
    private const int OpaqueSize = 1024;

    /// <summary>Starts the program and returns its pid. The caller must reap it (<see cref="WaitForExitAsync"/>).</summary>
    public static int Start(SpawnRequest request)
    {
        var argv = new CStringArray(request.Args);
        var envp = new CStringArray(request.Environment);
        byte[] path = Interop.CString(request.Path);
        var sources = new List<SafeHandle?> { request.Stdin, request.Stdout, request.Stderr };
        sources.AddRange(request.ExtraFds);
        int maxTarget = sources.Count - 1;

        // Each source is first duplicated above every target number, so the dup2 sequence in the
        // child can never overwrite a source that a later dup2 still needs.
        var staged = new List<int>();
        void* attr = NativeMemory.AllocZeroed(OpaqueSize);
        void* actions = NativeMemory.AllocZeroed(OpaqueSize);
        void* sigmask = NativeMemory.AllocZeroed(OpaqueSize);
        void* sigdefault = NativeMemory.AllocZeroed(OpaqueSize);
        bool attrReady = false, actionsReady = false;
        int devNull = -1;
        try
        {
            foreach (var source in sources)
            {
                int fd;
                if (source is null)
                {
                    if (devNull < 0)
                    {
                        fixed (byte* p = "/dev/null\0"u8)
                            devNull = open(p, O_RDWR | O_CLOEXEC);
                        if (devNull < 0) throw NativeException.Last("open", "/dev/null");
                    }
                    fd = devNull;
                }
                else
                {
                    fd = (int)source.DangerousGetHandle();
                }
                int copy = fcntl(fd, F_DUPFD_CLOEXEC, maxTarget + 1);
                if (copy < 0) throw NativeException.Last("fcntl", null, "duplicate a descriptor for the child");
                staged.Add(copy);
            }

            Check(posix_spawnattr_init(attr), "posix_spawnattr_init");
            attrReady = true;
            Check(posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init");
            actionsReady = true;
            for (int target = 0; target < staged.Count; target++)
                Check(posix_spawn_file_actions_adddup2(actions, staged[target], target), "posix_spawn_file_actions_adddup2");

            sigemptyset(sigmask);
            sigfillset(sigdefault);
            Check(posix_spawnattr_setsigmask(attr, sigmask), "posix_spawnattr_setsigmask");
            Check(posix_spawnattr_setsigdefault(attr, sigdefault), "posix_spawnattr_setsigdefault");
            short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
            if (request.NewSession) flags |= POSIX_SPAWN_SETSID;
            Check(posix_spawnattr_setflags(attr, flags), "posix_spawnattr_setflags");

            int pid;
            fixed (byte* pp = path)
            {
                // conmon, and runc under it, get the conventional umask rather than the daemon's (see FileModes).
                int rc;
                using (FileModes.UseChildUmask())
                    rc = posix_spawn(&pid, pp, actions, attr, argv.Pointer, envp.Pointer);
                if (rc != 0) throw new NativeException("posix_spawn", request.Path, rc, "spawn");
            }
            return pid;
        }
        finally
        {
            foreach (var fd in staged) close(fd);
            if (devNull >= 0) close(devNull);
            if (actionsReady) posix_spawn_file_actions_destroy(actions);
            if (attrReady) posix_spawnattr_destroy(attr);
            NativeMemory.Free(attr);
            NativeMemory.Free(actions);
            NativeMemory.Free(sigmask);
            NativeMemory.Free(sigdefault);
            argv.Dispose();
            envp.Dispose();
            foreach (var source in sources) GC.KeepAlive(source);
        }
    }

    /// <summary>waitpid(WNOHANG): the raw wait status when the child has exited (and is now reaped), else null.</summary>
    public static int? TryReap(int pid)
    {
        int status;
        while (true)
        {
            int rc = waitpid(pid, &status, WNOHANG);
            if (rc == pid) return status;
            if (rc == 0) return null;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Errno.EINTR) continue;
            throw new NativeException("waitpid", null, errno, $"waitpid {pid}");
        }
    }

    /// <summary>The exit code for a wait status: the code for a normal exit, 128+signal for a kill (as shells report it).</summary>
    public static int ExitCode(int waitStatus) =>
        (waitStatus & 0x7F) == 0 ? (waitStatus >> 8) & 0xFF : 128 + (waitStatus & 0x7F);

    private static void Check(int rc, string call)
    {
        if (rc != 0) throw new NativeException(call, null, rc);
    }

    /// <summary>A NULL-terminated char*[] in native memory.</summary>
    private sealed class CStringArray : IDisposable
    {
        private readonly nint[] strings;

        public CStringArray(IReadOnlyList<string> values)
        {
            strings = new nint[values.Count];
            Pointer = (byte**)NativeMemory.AllocZeroed((nuint)(values.Count + 1), (nuint)sizeof(nint));
            for (int i = 0; i < values.Count; i++)
            {
                byte[] bytes = Interop.CString(values[i]);
                strings[i] = (nint)NativeMemory.Alloc((nuint)bytes.Length);
                bytes.CopyTo(new Span<byte>((void*)strings[i], bytes.Length));
                Pointer[i] = (byte*)strings[i];
            }
        }

        public byte** Pointer { get; }

        public void Dispose()
        {
            foreach (var s in strings) NativeMemory.Free((void*)s);
            NativeMemory.Free(Pointer);
        }
    }

    [LibraryImport(Libc, SetLastError = true)] private static partial int open(byte* path, int flags);
    [LibraryImport(Libc, SetLastError = true)] private static partial int close(int fd);
    [LibraryImport(Libc, SetLastError = true)] private static partial int fcntl(int fd, int cmd, int arg);
    [LibraryImport(Libc, SetLastError = true)] private static partial int waitpid(int pid, int* status, int options);
    [LibraryImport(Libc)] private static partial int posix_spawn(int* pid, byte* path, void* fileActions, void* attr, byte** argv, byte** envp);
    [LibraryImport(Libc)] private static partial int posix_spawnattr_init(void* attr);
    [LibraryImport(Libc)] private static partial int posix_spawnattr_destroy(void* attr);
    [LibraryImport(Libc)] private static partial int posix_spawnattr_setflags(void* attr, short flags);
    [LibraryImport(Libc)] private static partial int posix_spawnattr_setsigmask(void* attr, void* mask);
    [LibraryImport(Libc)] private static partial int posix_spawnattr_setsigdefault(void* attr, void* set);
    [LibraryImport(Libc)] private static partial int posix_spawn_file_actions_init(void* actions);
    [LibraryImport(Libc)] private static partial int posix_spawn_file_actions_destroy(void* actions);
    [LibraryImport(Libc)] private static partial int posix_spawn_file_actions_adddup2(void* actions, int fd, int newfd);
    [LibraryImport(Libc)] private static partial int sigemptyset(void* set);
    [LibraryImport(Libc)] private static partial int sigfillset(void* set);
}

public static partial class Spawn
{
    /// <summary>Waits for (and reaps) a child started with <see cref="Start"/>; returns its raw wait status.
    /// Polls: the children spawned this way (conmon's first stage) exit within milliseconds.</summary>
    public static async Task<int> WaitForExitAsync(int pid, CancellationToken ct)
    {
        int delayMs = 1;
        while (true)
        {
            if (TryReap(pid) is int status) return status;
            await Task.Delay(delayMs, ct).ConfigureAwait(false);
            delayMs = Math.Min(delayMs * 2, 50);
        }
    }
}
