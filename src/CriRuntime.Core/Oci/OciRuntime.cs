using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CriRuntime.Native;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Oci;

/// <summary>What <c>runtime state</c> reports. Status: creating, created, running, stopped or paused.</summary>
public sealed record OciState(string Id, string Status, int Pid, string Bundle);

/// <summary>The outcome of an exec: captured output (each capped) and the exit code (128+signal when killed).</summary>
public sealed record ExecResult(byte[] Stdout, byte[] Stderr, int ExitCode);

/// <summary>A runc/crun/conmon command failed; the message carries the tool's own error text.</summary>
public sealed class OciRuntimeException(string message) : CriException(CriErrorKind.Unknown, message);

/// <summary>
/// One OCI runtime (runc or crun) driven through its command line. Every call passes
/// <c>--root StateRoot</c>, so our containers never mix with those of other engines on the node.
/// </summary>
public sealed partial class OciRuntime
{
    /// <summary>Per-stream cap on what an exec keeps while reading; more output is read and dropped so the process never
    /// blocks. Both streams together are then cut to one gRPC message (<see cref="ExecOutputBudget"/>).</summary>
    public const int ExecOutputLimit = ExecOutputBudget.MaxOutputBytes;

    private const int CommandOutputLimit = 1024 * 1024;
    private readonly ILogger logger;

    public OciRuntime(string handlerName, string binaryPath, string stateRoot, ILogger logger)
    {
        HandlerName = handlerName;
        BinaryPath = binaryPath;
        StateRoot = stateRoot;
        this.logger = logger;
    }

    public string HandlerName { get; }
    public string BinaryPath { get; }
    public string StateRoot { get; }

    /// <summary>The runtime's view of a container; null when it does not know the id.</summary>
    public async Task<OciState?> StateAsync(string id, CancellationToken ct)
    {
        ValidateId(id);
        var result = await RunAsync(["state", id], null, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            if (!Directory.Exists(Path.Combine(StateRoot, id))) return null;
            throw Failure("state", id, result);
        }
        OciStateJson? json;
        try { json = JsonSerializer.Deserialize(result.Stdout, RuntimeSpecJsonContext.Default.OciStateJson); }
        catch (JsonException e)
        {
            throw new OciRuntimeException($"{HandlerName} state {id} printed invalid JSON ({e.Message}): {Text(result.Stdout)}");
        }
        if (json is null) throw new OciRuntimeException($"{HandlerName} state {id} printed null");
        return new OciState(json.Id ?? id, json.Status ?? "unknown", json.Pid, json.Bundle ?? "");
    }

    /// <summary><c>runtime start</c>: runs the created container's process.</summary>
    public async Task StartAsync(string id, CancellationToken ct)
    {
        ValidateId(id);
        var result = await RunAsync(["start", id], null, ct).ConfigureAwait(false);
        if (result.ExitCode != 0) throw Failure("start", id, result);
    }

    /// <summary>Signals the container's init (or, with <paramref name="all"/>, every process in it).
    /// A container that is not running, or is unknown, is not an error.</summary>
    public async Task KillAsync(string id, int signal, bool all, CancellationToken ct)
    {
        ValidateId(id);
        List<string> args = ["kill"];
        if (all) args.Add("--all");
        args.Add(id);
        args.Add(signal.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var result = await RunAsync(args, null, ct).ConfigureAwait(false);
        if (result.ExitCode == 0) return;
        // The runtimes word "already stopped" differently (and it races with the exit), so ask.
        var state = await StateAsync(id, ct).ConfigureAwait(false);
        if (state is null || state.Status == "stopped") return;
        throw Failure("kill", id, result);
    }

    /// <summary>Deletes the runtime's state (and with <paramref name="force"/>, kills a running container first).
    /// Idempotent: an unknown id is fine.</summary>
    public async Task DeleteAsync(string id, bool force, CancellationToken ct)
    {
        ValidateId(id);
        List<string> args = ["delete"];
        if (force) args.Add("--force");
        args.Add(id);
        var result = await RunAsync(args, null, ct).ConfigureAwait(false);
        if (result.ExitCode == 0) return;
        if (await StateAsync(id, ct).ConfigureAwait(false) is null) return;
        throw Failure("delete", id, result);
    }

    /// <summary>
    /// Runs <paramref name="cmd"/> in the container (<c>runtime exec</c>, with the container's env, user
    /// and cwd) and returns its output and exit code. With a positive <paramref name="timeout"/>, the
    /// process and all its descendants are killed when it passes and <see cref="TimeoutException"/> is thrown.
    /// </summary>
    public async Task<ExecResult> ExecSyncAsync(string id, IReadOnlyList<string> cmd, TimeSpan timeout, CancellationToken ct)
    {
        ValidateId(id);
        if (cmd.Count == 0 || string.IsNullOrEmpty(cmd[0])) throw new InvalidArgumentException("exec needs a command");
        string pidFile = Path.Combine(Path.GetTempPath(), $"criruntime-exec-{id[..Math.Min(12, id.Length)]}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}.pid");
        // The runtime's own errors go to this file (global options come before the command), where the command cannot
        // imitate them: see ExecStartFailure.
        string logFile = Path.ChangeExtension(pidFile, ".log");
        List<string> args = ["--log", logFile, "--log-format", "json", "exec", "--pid-file", pidFile, id, .. cmd];
        using var process = StartRuntime(args, redirectStdin: false);
        var stdout = ReadCappedAsync(process.StandardOutput.BaseStream, ExecOutputLimit);
        var stderr = ReadCappedAsync(process.StandardError.BaseStream, ExecOutputLimit);
        using var timeoutCts = new CancellationTokenSource();
        if (timeout > TimeSpan.Zero) timeoutCts.CancelAfter(timeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeoutCts.Token);
        try
        {
            try
            {
                await process.WaitForExitAsync(linked.Token).ConfigureAwait(false);
                // The output is part of the deadline too: a background child of the command can hold the pipes
                // open after the command itself has exited (`sh -c 'daemon &'`).
                await Task.WhenAll(stdout, stderr).WaitAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                await KillExecAsync(new DotNetRuntimeProcess(process), pidFile, id).ConfigureAwait(false);
                ct.ThrowIfCancellationRequested();
                throw new TimeoutException($"timeout {timeout.TotalSeconds:0.###}s exceeded: command {Quote(cmd)} in container {id} did not finish in time and was killed");
            }
            if (process.ExitCode == 255 && ExecStartFailure.FromRuntimeLog(HandlerName, id, cmd[0], ReadHead(logFile, ExecStartFailure.MaxLogBytes)) is { } failure)
                throw failure;
            var (keptOut, keptErr, truncated) = ExecOutputBudget.Fit(await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
            if (truncated)
                logger.LogWarning("exec in container {Id}: output over {Limit} bytes was truncated, as the CRI API allows", id, ExecOutputBudget.MaxOutputBytes);
            return new ExecResult(keptOut, keptErr, process.ExitCode);
        }
        finally
        {
            DeleteIgnoringErrors(pidFile);
            DeleteIgnoringErrors(logFile);
        }
    }

    /// <summary>
    /// Runs <paramref name="cmd"/> in the container (<c>runtime exec</c>, a child of the daemon) with stdio pumped
    /// through <paramref name="stdio"/> in 32 KiB chunks, and returns its exit code. Cancellation (the client went
    /// away) kills the process and its descendants, as containerd does, and then throws.
    /// </summary>
    public async Task<int> ExecStreamingAsync(string id, IReadOnlyList<string> cmd, ExecStdio stdio, CancellationToken ct)
    {
        ValidateId(id);
        if (cmd.Count == 0 || string.IsNullOrEmpty(cmd[0])) throw new InvalidArgumentException("exec needs a command");
        string pidFile = Path.Combine(Path.GetTempPath(), $"criruntime-exec-{id[..Math.Min(12, id.Length)]}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}.pid");
        List<string> args = ["exec", "--pid-file", pidFile, id, .. cmd];
        using var process = StartRuntime(args, redirectStdin: true);
        using var pumps = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var stdout = PumpOutputAsync(process.StandardOutput.BaseStream, stdio.WriteStdout, pumps.Token);
        var stderr = PumpOutputAsync(process.StandardError.BaseStream, stdio.WriteStderr, pumps.Token);
        var stdin = PumpStdinAsync(process.StandardInput.BaseStream, stdio.ReadStdin, pumps.Token);
        try
        {
            try
            {
                await process.WaitForExitAsync(ct).ConfigureAwait(false);
                // Output a background child still holds open is streamed until it closes or the client leaves.
                await Task.WhenAll(stdout, stderr).WaitAsync(ct).ConfigureAwait(false);
            }
            catch (Exception) when (ct.IsCancellationRequested || process.HasExited is false)
            {
                await KillExecAsync(new DotNetRuntimeProcess(process), pidFile, id).ConfigureAwait(false);
                throw;
            }
            return process.ExitCode;
        }
        finally
        {
            pumps.Cancel();
            try { await stdin.ConfigureAwait(false); } catch (Exception) { }
            DeleteIgnoringErrors(pidFile);
        }
    }

    private static async Task PumpOutputAsync(Stream from, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? to, CancellationToken ct)
    {
        var buffer = new byte[32 * 1024];
        int n;
        while ((n = await from.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            if (to != null) await to(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
    }

    private static async Task PumpStdinAsync(Stream to, Func<Memory<byte>, CancellationToken, ValueTask<int>>? from, CancellationToken ct)
    {
        try
        {
            if (from == null) return;
            var buffer = new byte[32 * 1024];
            int n;
            while ((n = await from(buffer, ct).ConfigureAwait(false)) > 0)
            {
                await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                await to.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        catch (IOException)
        {
            // The process closed its stdin (or exited): nothing more to give it.
        }
        finally
        {
            // EOF on the process's stdin once the client finished its stdin (or there is none).
            try { to.Close(); } catch (IOException) { }
        }
    }

    /// <summary>Applies new resource limits to a running container (<c>runtime update --resources</c>).</summary>
    public async Task UpdateResourcesAsync(string id, global::Runtime.V1.LinuxContainerResources resources, CancellationToken ct)
    {
        ValidateId(id);
        var spec = RuntimeSpecBuilder.Resources(resources, RuntimeSpecBuilder.SwapLimitSupportedOnHost(), RuntimeSpecBuilder.HugetlbAvailableOnHost());
        // crun does not read "-" as stdin, so both runtimes get a file.
        string file = Path.Combine(Path.GetTempPath(), $"criruntime-update-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}.json");
        try
        {
            await File.WriteAllBytesAsync(file, JsonSerializer.SerializeToUtf8Bytes(spec, RuntimeSpecJsonContext.Default.SpecLinuxResources), ct).ConfigureAwait(false);
            var result = await RunAsync(["update", "--resources", file, id], null, ct).ConfigureAwait(false);
            if (result.ExitCode != 0) throw Failure("update", id, result);
        }
        finally
        {
            DeleteIgnoringErrors(file);
        }
    }

    // ---- plumbing ----

    internal sealed record CommandResult(int ExitCode, byte[] Stdout, byte[] Stderr);

    /// <summary>Runs the runtime with <c>--root</c> and the given arguments; cancellation kills it.</summary>
    internal async Task<CommandResult> RunAsync(IReadOnlyList<string> args, byte[]? stdin, CancellationToken ct)
    {
        using var process = StartRuntime(args, redirectStdin: stdin is not null);
        var stdout = ReadCappedAsync(process.StandardOutput.BaseStream, CommandOutputLimit);
        var stderr = ReadCappedAsync(process.StandardError.BaseStream, CommandOutputLimit);
        if (stdin is not null)
        {
            await process.StandardInput.BaseStream.WriteAsync(stdin, ct).ConfigureAwait(false);
            process.StandardInput.Close();
        }
        try
        {
            await process.WaitForExitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(); } catch (InvalidOperationException) { }
            throw;
        }
        var result = new CommandResult(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
        if (result.ExitCode != 0)
            logger.LogDebug("{Runtime} {Command} exited {Code}: {Stderr}", HandlerName, string.Join(' ', args), result.ExitCode, Text(result.Stderr));
        return result;
    }

    private Process StartRuntime(IReadOnlyList<string> args, bool redirectStdin)
    {
        var psi = new ProcessStartInfo(BinaryPath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectStdin,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("--root");
        psi.ArgumentList.Add(StateRoot);
        foreach (string a in args) psi.ArgumentList.Add(a);
        try
        {
            // runc exec's process keeps the umask it inherits: the conventional 022, not the daemon's 077.
            using (FileModes.UseChildUmask())
                return Process.Start(psi) ?? throw new OciRuntimeException($"could not start {BinaryPath}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new OciRuntimeException($"could not run {HandlerName} ({BinaryPath}): {e.Message}; check the runtime path in the config");
        }
    }

    /// <summary>
    /// Kills an exec'd process tree (pid from --pid-file), then lets the runtime process that waits for it reap it
    /// and exit, and returns once the killed processes are gone: the caller's next exec must not find them.
    /// </summary>
    private async Task KillExecAsync(IRuntimeProcess runtimeProcess, string pidFile, string id)
    {
        // The runtime writes the pid file once the process exists. On a busy node `runc exec` can take longer than a
        // 1 s timeout to get there; killing it then could leave a command starting after we gave up, so wait for it.
        int? pid = ReadPidFile(pidFile);
        var pidFileDeadline = DateTime.UtcNow + ExecPidFileWait;
        while (pid is null && !runtimeProcess.HasExited && DateTime.UtcNow < pidFileDeadline)
        {
            await Task.Delay(20).ConfigureAwait(false);
            pid = ReadPidFile(pidFile);
        }
        pid ??= ReadPidFile(pidFile);
        IReadOnlyList<int> killed = [];
        if (pid is int p)
        {
            killed = Signals.KillTree(p);
            logger.LogInformation("Exec in container {Id} timed out; killed pids {Pids}", id, string.Join(',', killed));
        }
        // The exec'd process is a child of `runc exec` / `crun exec`, which reaps it and exits once it died. Killing the
        // runtime first would orphan it: its zombie would go to the node's init or, for a process whose parent is in
        // the container, to the container's init, which (top, sleep, most apps) never reaps, so `pgrep` would still
        // find it. Only a runtime that does not exit on its own is killed.
        if (pid is null || !await runtimeProcess.ExitsWithinAsync(ExecReapWait).ConfigureAwait(false))
        {
            runtimeProcess.Kill();
            if (!await runtimeProcess.ExitsWithinAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false))
                logger.LogWarning("{Runtime} exec for container {Id} did not exit after being killed", HandlerName, id);
        }
        // A descendant whose parent died with it is reparented to the container's init, which reaps it, unless it is
        // an app that never waits (then it stays a zombie there, as any orphan in that container would): wait a little.
        var deadline = DateTime.UtcNow + OrphanReapWait;
        while (killed.Any(Signals.Exists) && DateTime.UtcNow < deadline) await Task.Delay(10).ConfigureAwait(false);
        var left = killed.Where(Signals.Exists).ToList();
        if (left.Count > 0)
            logger.LogWarning("Exec in container {Id}: killed pids {Pids} are not reaped yet (zombies of a parent that does not wait for its children)",
                id, string.Join(',', left));
    }

    /// <summary>How long a timed-out exec's runtime gets to write the pid file of the command it starts.</summary>
    private static readonly TimeSpan ExecPidFileWait = TimeSpan.FromSeconds(10);

    /// <summary>How long the runtime gets to reap the killed command and exit before it is killed too.</summary>
    private static readonly TimeSpan ExecReapWait = TimeSpan.FromSeconds(5);

    /// <summary>How long the container's init gets to reap the killed command's orphaned descendants.</summary>
    private static readonly TimeSpan OrphanReapWait = TimeSpan.FromSeconds(1);

    /// <summary>The runtime process an exec runs under, as <see cref="KillExecAsync"/> needs it.</summary>
    private interface IRuntimeProcess
    {
        bool HasExited { get; }

        Task<bool> ExitsWithinAsync(TimeSpan wait);

        /// <summary>SIGKILL; a process that already exited is fine.</summary>
        void Kill();
    }

    private sealed class DotNetRuntimeProcess(Process process) : IRuntimeProcess
    {
        public bool HasExited => process.HasExited;

        public async Task<bool> ExitsWithinAsync(TimeSpan wait)
        {
            try
            {
                await process.WaitForExitAsync(CancellationToken.None).WaitAsync(wait).ConfigureAwait(false);
                return true;
            }
            catch (TimeoutException) { return false; }
        }

        public void Kill()
        {
            try { process.Kill(); } catch (InvalidOperationException) { }
        }
    }

    internal static int? ReadPidFile(string path)
    {
        try
        {
            string text = File.ReadAllText(path).Trim();
            return int.TryParse(text, out int pid) && pid > 0 ? pid : null;
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
    }

    /// <summary>The first <paramref name="limit"/> bytes of a file as text; empty when it is not there.</summary>
    private static string ReadHead(string path, int limit)
    {
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
            var buffer = new byte[limit];
            int total = 0, n;
            while (total < limit && (n = file.Read(buffer, total, limit - total)) > 0) total += n;
            return Encoding.UTF8.GetString(buffer, 0, total);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return "";
        }
    }

    /// <summary>Reads a stream to its end, keeping the first <paramref name="limit"/> bytes.</summary>
    internal static async Task<byte[]> ReadCappedAsync(Stream stream, int limit)
    {
        var kept = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await stream.ReadAsync(buffer).ConfigureAwait(false)) > 0)
        {
            int room = limit - (int)kept.Length;
            if (room > 0) kept.Write(buffer, 0, Math.Min(room, n));
        }
        return kept.ToArray();
    }

    private OciRuntimeException Failure(string command, string id, CommandResult result)
    {
        string message = Text(result.Stderr);
        if (message.Length == 0) message = Text(result.Stdout);
        return new OciRuntimeException($"{HandlerName} {command} {id} failed (exit {result.ExitCode}): {Bounded(message)}");
    }

    /// <summary>Most of a runtime's message kept in an error (which becomes a gRPC status message, i.e. a header).</summary>
    internal const int MaxErrorTextChars = 4096;

    /// <summary>The start of <paramref name="text"/>, cut at <see cref="MaxErrorTextChars"/> with a note of how much was cut.</summary>
    internal static string Bounded(string text) =>
        text.Length <= MaxErrorTextChars ? text : $"{text[..MaxErrorTextChars]}... ({text.Length - MaxErrorTextChars} more characters cut)";

    internal static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes).Trim();

    private static string Quote(IReadOnlyList<string> cmd) => string.Join(' ', cmd.Select(c => c.Contains(' ') ? $"'{c}'" : c));

    /// <summary>Ids become file names and command arguments: no separators, no option look-alikes.</summary>
    internal static void ValidateId(string id)
    {
        if (string.IsNullOrEmpty(id) || id.StartsWith('-') || id.StartsWith('.') || id.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            throw new ArgumentException($"invalid container id '{id}': letters, digits, '-', '_' and '.' only, not starting with '-' or '.'");
    }

    private static void DeleteIgnoringErrors(string path)
    {
        try { File.Delete(path); } catch (IOException) { }
    }
}
