using System.IO.Pipes;
using System.Text;
using System.Text.Json;
using CriRuntime.Native;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Oci;

/// <summary>What <see cref="Conmon.CreateContainerAsync"/> creates.</summary>
public sealed record ConmonCreateRequest
{
    public required string Id { get; init; }
    public required OciRuntime Runtime { get; init; }

    /// <summary>Holds config.json; conmon's pid files, ctl and winsz FIFOs and attach socket go here too.</summary>
    public required string BundleDir { get; init; }

    /// <summary>The CRI log file (k8s-file format); the caller creates its directory.</summary>
    public required string LogPath { get; init; }

    /// <summary>conmon writes &lt;ExitDir&gt;/&lt;Id&gt; with the exit status when the container exits.</summary>
    public required string ExitDir { get; init; }

    public bool Terminal { get; init; }
    public bool Stdin { get; init; }
    public bool StdinOnce { get; init; }

    /// <summary>Bytes after which conmon truncates the log; -1: no limit.</summary>
    public long LogSizeMax { get; init; } = -1;

    /// <summary>
    /// Where conmon puts its &lt;id&gt; symlink to the bundle, through which the attach socket is reached
    /// (keeps socket paths under the 108-byte sun_path limit). Null: the socket is bound at
    /// &lt;BundleDir&gt;/attach directly (--full-attach), which needs a bundle path under ~100 bytes.
    /// </summary>
    public string? AttachSocketDir { get; init; }
}

/// <summary>The created container's init pid and the pid of the conmon that monitors it.</summary>
public sealed record ConmonCreateResult(int ContainerPid, int ConmonPid);

/// <summary>
/// Drives conmon (CRI-O's container monitor) as CRI-O does: conmon runs <c>runtime create</c>, holds the
/// container's stdio, writes the CRI log and the exit file, and outlives us (it daemonizes, so its parent
/// is init, not this process). We talk to it over two pipes it finds through _OCI_SYNCPIPE and
/// _OCI_STARTPIPE: it waits for a byte on the start pipe, then reports the container pid (or the
/// runtime's error) as JSON on the sync pipe.
/// </summary>
public sealed class Conmon
{
    private const string PidFileName = "pidfile";
    private const string ConmonPidFileName = "conmon.pid";
    private const int ReopenLogsMessageType = 2;
    private readonly ILogger logger;

    public Conmon(string conmonPath, ILogger logger)
    {
        ConmonPath = conmonPath;
        this.logger = logger;
    }

    public string ConmonPath { get; }

    /// <summary>How long <c>runtime create</c> may take before it is abandoned and undone (CRI-O uses 240 s).</summary>
    public TimeSpan CreateTimeout { get; init; } = TimeSpan.FromSeconds(240);

    public async Task<ConmonCreateResult> CreateContainerAsync(ConmonCreateRequest request, CancellationToken ct)
    {
        OciRuntime.ValidateId(request.Id);
        if (!File.Exists(Path.Combine(request.BundleDir, "config.json")))
            throw new ArgumentException($"bundle {request.BundleDir} has no config.json");
        FileModes.CreateDirectory(request.ExitDir, FileModes.PrivateDirectory);

        using var timeout = new CancellationTokenSource(CreateTimeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        int spawnedPid = -1;
        try
        {
            using var syncPipe = new AnonymousPipeServerStream(PipeDirection.In, HandleInheritability.None);
            using var startPipe = new AnonymousPipeServerStream(PipeDirection.Out, HandleInheritability.None);
            using var stderrPipe = new AnonymousPipeServerStream(PipeDirection.In, HandleInheritability.None);

            spawnedPid = Spawn.Start(new SpawnRequest
            {
                Path = ConmonPath,
                Args = [ConmonPath, .. Arguments(request)],
                Environment = ConmonEnvironment(),
                Stderr = stderrPipe.ClientSafePipeHandle,
                ExtraFds = [syncPipe.ClientSafePipeHandle, startPipe.ClientSafePipeHandle],
                NewSession = true,
            });
            // Our copies of the child's ends must go, or we would never see EOF on the pipes.
            syncPipe.DisposeLocalCopyOfClientHandle();
            startPipe.DisposeLocalCopyOfClientHandle();
            stderrPipe.DisposeLocalCopyOfClientHandle();
            var stderrText = OciRuntime.ReadCappedAsync(stderrPipe, 64 * 1024);

            // conmon blocks on the start pipe so its parent can move it into a cgroup first; we keep it in ours.
            try
            {
                await startPipe.WriteAsync(new byte[] { 0 }, linked.Token).ConfigureAwait(false);
                startPipe.Close();
            }
            catch (IOException)
            {
                // conmon exited before reading (bad arguments): its stderr says why.
            }

            // conmon reads the runtime's stdout/stderr pipe only after `runtime create` has exited, so a
            // runtime with more than a pipe's 64 KiB to say blocks in write() and neither ever finishes.
            using var watchdogStop = CancellationTokenSource.CreateLinkedTokenSource(linked.Token);
            var watchdog = StopRuntimeBlockedOnOutputAsync(request, watchdogStop.Token);

            // The sync pipe speaks as soon as the runtime has created the container (or EOF when conmon
            // dies), so it is read first: waiting for the first conmon process to exit would poll.
            string? line;
            try
            {
                line = await ReadLineAsync(syncPipe, linked.Token).ConfigureAwait(false);
            }
            finally
            {
                watchdogStop.Cancel();
            }
            bool outputOverflowed = await watchdog.ConfigureAwait(false);

            // The first conmon process forks the monitor and exits; reap it so it does not stay a zombie.
            int status = await Spawn.WaitForExitAsync(spawnedPid, linked.Token).ConfigureAwait(false);
            spawnedPid = -1;
            if (line is null)
            {
                string err = await TextWithin(stderrText, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
                throw new OciRuntimeException(
                    $"conmon for container {request.Id} exited (status {Spawn.ExitCode(status)}) without reporting a pid" +
                    (err.Length > 0 ? $": {OciRuntime.Bounded(err)}" : "; see the system log for conmon's messages"));
            }
            var (pid, message) = ParseSync(line);
            if (pid <= 0)
                throw (message is null ? null : ExecStartFailure.FromCreateError(request.Runtime.HandlerName, request.Id, message)) ?? new OciRuntimeException($"{request.Runtime.HandlerName} create {request.Id} failed: {(string.IsNullOrWhiteSpace(message) ? "no error text" : OciRuntime.Bounded(message.Trim()))}{Hint(message)}" +
                    (outputOverflowed ? $" (its error output passed the {PipeCapacity / 1024} KiB conmon holds while the runtime runs, so it was stopped; a value in the container config is probably far too long)" : ""));

            int conmonPid = OciRuntime.ReadPidFile(Path.Combine(request.BundleDir, ConmonPidFileName))
                ?? throw new OciRuntimeException($"conmon for container {request.Id} reported pid {pid} but wrote no {ConmonPidFileName}");
            logger.LogDebug("Container {Id} created by {Runtime} under conmon {ConmonPid}, init pid {Pid}", request.Id, request.Runtime.HandlerName, conmonPid, pid);
            return new ConmonCreateResult(pid, conmonPid);
        }
        catch (Exception e)
        {
            await UndoCreateAsync(request, spawnedPid).ConfigureAwait(false);
            if (e is OperationCanceledException && timeout.IsCancellationRequested && !ct.IsCancellationRequested)
                throw new OciRuntimeException($"{request.Runtime.HandlerName} create {request.Id} did not finish within {CreateTimeout.TotalSeconds:0}s; it was stopped and removed");
            throw;
        }
    }

    /// <summary>Linux's default pipe capacity: what a runtime can write to conmon's pipe before it blocks.</summary>
    private const int PipeCapacity = 64 * 1024;

    /// <summary>How long the runtime must stay blocked writing its output before it is stopped.</summary>
    internal static readonly TimeSpan BlockedOutputGrace = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Until cancelled, watches the runtime conmon runs (conmon's child) and SIGKILLs it once it has been blocked
    /// writing to its stdout or stderr for <see cref="BlockedOutputGrace"/>: conmon then reads the first part of
    /// what it wrote and reports the failure. Returns whether it did so. Never throws.
    /// </summary>
    private async Task<bool> StopRuntimeBlockedOnOutputAsync(ConmonCreateRequest request, CancellationToken ct)
    {
        var interval = TimeSpan.FromMilliseconds(250);
        int blockedSamples = 0, needed = (int)(BlockedOutputGrace / interval);
        try
        {
            while (true)
            {
                await Task.Delay(interval, ct).ConfigureAwait(false);
                if (OciRuntime.ReadPidFile(Path.Combine(request.BundleDir, ConmonPidFileName)) is not int conmonPid || !IsConmon(conmonPid))
                    continue;
                // The runtime is conmon's child; the writer may be a process it started (a wrapper's pipeline).
                var blocked = Signals.Children(conmonPid).Where(runtimePid =>
                {
                    // conmon's pipes are what the runtime got as fd 1 and 2; a write to another pipe is not stuck on conmon.
                    var conmonPipes = new[] { FdTarget(runtimePid, 1), FdTarget(runtimePid, 2) }.Where(t => t?.StartsWith("pipe:", StringComparison.Ordinal) == true).ToHashSet();
                    return conmonPipes.Count > 0 && Tree(runtimePid).Any(pid => IsBlockedWritingTo(pid, conmonPipes));
                }).ToList();
                blockedSamples = blocked.Count > 0 ? blockedSamples + 1 : 0;
                if (blockedSamples < needed) continue;
                foreach (int runtimePid in blocked)
                {
                    logger.LogWarning("{Runtime} create {Id} (pid {Pid}) is blocked writing more output than conmon's pipe holds; stopping it",
                        request.Runtime.HandlerName, request.Id, runtimePid);
                    Signals.KillTree(runtimePid);
                }
                return true;
            }
        }
        catch (OperationCanceledException) { return false; }
        catch (Exception e)
        {
            logger.LogDebug(e, "Watching {Runtime} create {Id} for blocked output failed", request.Runtime.HandlerName, request.Id);
            return false;
        }
    }

    /// <summary><paramref name="pid"/> and its descendants (bounded: a runtime has a handful).</summary>
    private static List<int> Tree(int pid)
    {
        var all = new List<int> { pid };
        for (int i = 0; i < all.Count && all.Count < 256; i++) all.AddRange(Signals.Children(all[i]));
        return all;
    }

    /// <summary>A thread of <paramref name="pid"/> sleeps in a pipe write (wchan pipe_write, anon_pipe_write on newer
    /// kernels) on a descriptor (the first argument in /proc/PID/task/TID/syscall) that is one of <paramref name="pipes"/>.</summary>
    private static bool IsBlockedWritingTo(int pid, HashSet<string?> pipes)
    {
        try
        {
            foreach (string task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                if (!File.ReadAllText(Path.Combine(task, "wchan")).Trim().EndsWith("pipe_write", StringComparison.Ordinal)) continue;
                string[] syscall = File.ReadAllText(Path.Combine(task, "syscall")).Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (syscall.Length > 1 && syscall[1].StartsWith("0x", StringComparison.Ordinal)
                    && int.TryParse(syscall[1].AsSpan(2), System.Globalization.NumberStyles.HexNumber, null, out int fd)
                    && pipes.Contains(FdTarget(pid, fd)))
                    return true;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return false;
    }

    /// <summary>What /proc/PID/fd/FD points at ("pipe:[123]"), or null.</summary>
    private static string? FdTarget(int pid, int fd)
    {
        try { return new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>Asks conmon to reopen the container's log file (after kubelet renamed it for rotation).</summary>
    public Task ReopenLogAsync(string bundleDir, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        string ctl = Path.Combine(bundleDir, "ctl");
        // conmon's control FIFO takes "<type> <height> <width>\n" lines; type 2 reopens the logs.
        var message = Encoding.ASCII.GetBytes($"{ReopenLogsMessageType} 0 0\n");
        if (!Fifos.TryWrite(ctl, message))
            throw new OciRuntimeException($"cannot reopen the log: conmon is not running for bundle {bundleDir} (nobody reads {ctl})");
        return Task.CompletedTask;
    }

    /// <summary>
    /// As <see cref="ReopenLogAsync(string, CancellationToken)"/>, then waits until conmon has created the
    /// new file at <paramref name="logPath"/>, as kubelet expects when the call returns.
    /// </summary>
    public async Task ReopenLogAsync(string bundleDir, string logPath, CancellationToken ct)
    {
        await ReopenLogAsync(bundleDir, ct).ConfigureAwait(false);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        try
        {
            while (!File.Exists(logPath)) await Task.Delay(10, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new OciRuntimeException($"conmon did not reopen the log at {logPath} within 10s");
        }
    }

    /// <summary>What to do about runtime errors that come from the node's setup rather than the container.</summary>
    private static string Hint(string? message)
    {
        if (message?.Contains("hybrid mode not supported", StringComparison.Ordinal) == true)
        {
            string controllers = "";
            try { controllers = File.ReadAllText("/sys/fs/cgroup/unified/cgroup.controllers").Trim(); } catch (IOException) { }
            return $" (crun only runs on a cgroup v1/v2 hybrid when cgroup v2 has no controllers; here it has '{controllers}': " +
                "mount those controllers as v1 hierarchies, boot with a pure cgroup v1 or v2 layout, or use runc)";
        }
        return "";
    }

    private static List<string> Arguments(ConmonCreateRequest r)
    {
        var args = new List<string>
        {
            "--bundle", r.BundleDir,
            "--cid", r.Id,
            "--cuuid", r.Id,
            "--name", r.Id,
            "--runtime", r.Runtime.BinaryPath,
            "--runtime-arg", $"--root={r.Runtime.StateRoot}",
            "--container-pidfile", Path.Combine(r.BundleDir, PidFileName),
            "--conmon-pidfile", Path.Combine(r.BundleDir, ConmonPidFileName),
            "--exit-dir", r.ExitDir,
            "--persist-dir", r.BundleDir,
            "--log-path", "k8s-file:" + r.LogPath,
            "--log-level", "info",
            "--syslog",
        };
        if (r.AttachSocketDir is null) args.AddRange(["--full-attach", "--socket-dir-path", r.BundleDir]);
        else args.AddRange(["--socket-dir-path", r.AttachSocketDir]);
        if (r.Terminal) args.Add("--terminal");
        else if (r.Stdin)
        {
            args.Add("--stdin");
            if (!r.StdinOnce) args.Add("--leave-stdin-open");
        }
        if (r.LogSizeMax >= 0) args.AddRange(["--log-size-max", r.LogSizeMax.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        return args;
    }

    private static List<string> ConmonEnvironment()
    {
        // Only what conmon and the runtime need: a PATH (runc looks up helpers) and the two pipes.
        string path = System.Environment.GetEnvironmentVariable("PATH") is { Length: > 0 } p ? p : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        return [$"PATH={path}", "_OCI_SYNCPIPE=3", "_OCI_STARTPIPE=4"];
    }

    /// <summary>conmon's sync message: {"pid": N} or {"pid": -1, "message": "..."} ("data" with --api-version 1).</summary>
    internal static (int Pid, string? Message) ParseSync(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            int pid = root.TryGetProperty("pid", out var p) ? p.GetInt32()
                : root.TryGetProperty("data", out var d) ? d.GetInt32()
                : throw new OciRuntimeException($"conmon sent an unexpected sync message: {line}");
            string? message = root.TryGetProperty("message", out var m) ? m.GetString() : null;
            return (pid, message);
        }
        catch (JsonException e)
        {
            throw new OciRuntimeException($"conmon sent an invalid sync message ({e.Message}): {line}");
        }
    }

    private static async Task<string?> ReadLineAsync(Stream stream, CancellationToken ct)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            int n = await stream.ReadAsync(one, ct).ConfigureAwait(false);
            if (n == 0) return bytes.Count == 0 ? null : Encoding.UTF8.GetString(bytes.ToArray());
            if (one[0] == (byte)'\n') return Encoding.UTF8.GetString(bytes.ToArray());
            bytes.Add(one[0]);
            if (bytes.Count > 1024 * 1024) throw new OciRuntimeException("conmon's sync message is larger than 1 MiB");
        }
    }

    private static async Task<string> TextWithin(Task<byte[]> text, TimeSpan wait)
    {
        try { return OciRuntime.Text(await text.WaitAsync(wait).ConfigureAwait(false)); }
        catch (TimeoutException) { return ""; }
    }

    /// <summary>Leaves nothing of a failed create: no conmon, no runtime state, no conmon files in the bundle.</summary>
    private async Task UndoCreateAsync(ConmonCreateRequest request, int spawnedPid)
    {
        try
        {
            if (spawnedPid > 0)
            {
                Signals.Kill(spawnedPid, Signals.SIGKILL);
                await Spawn.WaitForExitAsync(spawnedPid, CancellationToken.None).ConfigureAwait(false);
            }
            if (OciRuntime.ReadPidFile(Path.Combine(request.BundleDir, ConmonPidFileName)) is int conmonPid && IsConmon(conmonPid))
                Signals.Kill(conmonPid, Signals.SIGKILL);
            await request.Runtime.DeleteAsync(request.Id, force: true, CancellationToken.None).ConfigureAwait(false);
            foreach (string name in new[] { PidFileName, ConmonPidFileName, "ctl", "winsz", "attach", "exit", "oom" })
                File.Delete(Path.Combine(request.BundleDir, name));
            File.Delete(Path.Combine(request.ExitDir, request.Id));
            if (request.AttachSocketDir is not null) File.Delete(Path.Combine(request.AttachSocketDir, request.Id));
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Cleaning up after the failed create of container {Id} failed; it may need a manual `{Runtime} --root {Root} delete --force {Id}`",
                request.Id, request.Runtime.BinaryPath, request.Runtime.StateRoot, request.Id);
        }
    }

    /// <summary>Guards against pid reuse: only a process whose comm is conmon is killed.</summary>
    private static bool IsConmon(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim() == "conmon"; }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }
}
