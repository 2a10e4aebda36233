using System.Security.Cryptography;
using System.Threading.Channels;
using CriRuntime.Native;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Oci;

/// <summary>A terminal window size in character cells, as the kubelet's remotecommand TerminalSize.</summary>
public readonly record struct TerminalSize(ushort Width, ushort Height);

/// <summary>
/// Where an exec or attach with a tty gets its input and puts its output: a terminal has one output stream
/// (what the program writes to stdout and stderr, echoed input included). <see cref="Resizes"/> carries the
/// client's window sizes, the first one as soon as it knows it; null when the client sends none.
/// </summary>
public sealed record TerminalStdio(
    Func<Memory<byte>, CancellationToken, ValueTask<int>>? ReadStdin,
    Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? WriteOutput,
    ChannelReader<TerminalSize>? Resizes);

public sealed partial class OciRuntime
{
    /// <summary>
    /// Runs <paramref name="cmd"/> in the container on a terminal (<c>runtime exec --tty</c>, a child of the daemon)
    /// and returns its exit code. As CRI-O does, the runtime runs in the foreground on a pseudo-terminal the daemon
    /// owns, and relays between it and the container's own terminal, which it makes: a runtime only hands the
    /// container's terminal over a <c>--console-socket</c> when it detaches, and a detached exec's process is no
    /// longer our child, so its exit code could not be had without making the daemon a subreaper. Window sizes are
    /// set on our terminal and the runtime is sent SIGWINCH, on which runc copies the size to the container's
    /// terminal (both runtimes read it once when the process has started), and set on the command's own terminal
    /// through /proc/PID/fd (crun ignores SIGWINCH in exec). Cancellation (the client went away) kills the
    /// process and its descendants and then throws.
    /// </summary>
    public async Task<int> ExecTerminalAsync(string id, IReadOnlyList<string> cmd, TerminalStdio stdio, CancellationToken ct)
    {
        ValidateId(id);
        if (cmd.Count == 0 || string.IsNullOrEmpty(cmd[0])) throw new InvalidArgumentException("exec needs a command");
        string pidFile = Path.Combine(Path.GetTempPath(), $"criruntime-exec-{id[..Math.Min(12, id.Length)]}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}.pid");
        using var terminal = PseudoTerminal.Open();
        // A size the client sent before the command starts is the one it starts with.
        TerminalSize? latest = null;
        while (stdio.Resizes?.TryRead(out var early) == true) latest = early;
        if (latest is { } first) terminal.SetWindowSize(first.Height, first.Width);

        int pid;
        try
        {
            pid = Spawn.Start(new SpawnRequest
            {
                Path = BinaryPath,
                Args = [BinaryPath, "--root", StateRoot, "exec", "--tty", "--pid-file", pidFile, id, .. cmd],
                Environment = RuntimeEnvironment(),
                Stdin = terminal.Slave,
                Stdout = terminal.Slave,
                Stderr = terminal.Slave,
                NewSession = true,
            });
        }
        catch (NativeException e)
        {
            throw new OciRuntimeException($"could not run {HandlerName} ({BinaryPath}): {e.Message}; check the runtime path in the config");
        }
        terminal.CloseSlave();
        var runtimeProcess = new SpawnedRuntimeProcess(pid);

        using var pumps = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var output = Task.Factory.StartNew(() => PumpTerminalOutput(terminal, stdio.WriteOutput, pumps.Token),
            pumps.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var input = PumpTerminalInputAsync(terminal, stdio.ReadStdin, pumps.Token);
        var resizes = PumpResizesAsync(terminal, stdio.Resizes, runtimeProcess, pidFile, pumps.Token);
        try
        {
            int status;
            try
            {
                status = await runtimeProcess.Exited.WaitAsync(ct).ConfigureAwait(false);
                // The runtime drains the container's terminal into ours before it exits; read ours to its end.
                await output.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (Exception) when (ct.IsCancellationRequested || !runtimeProcess.HasExited)
            {
                await KillExecAsync(runtimeProcess, pidFile, id).ConfigureAwait(false);
                throw;
            }
            return Spawn.ExitCode(status);
        }
        finally
        {
            pumps.Cancel();
            foreach (var pump in new[] { output, input, resizes })
            {
                try { await pump.ConfigureAwait(false); } catch (Exception) { }
            }
            DeleteIgnoringErrors(pidFile);
        }
    }

    /// <summary>On its own thread: terminal reads wait in poll(2).</summary>
    private static void PumpTerminalOutput(PseudoTerminal terminal, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? to, CancellationToken ct)
    {
        var buffer = new byte[32 * 1024];
        int n;
        while ((n = terminal.Read(buffer, ct)) > 0)
            if (to != null) to(buffer.AsMemory(0, n), ct).AsTask().GetAwaiter().GetResult();
    }

    private static async Task PumpTerminalInputAsync(PseudoTerminal terminal, Func<Memory<byte>, CancellationToken, ValueTask<int>>? from, CancellationToken ct)
    {
        if (from == null) return;
        var buffer = new byte[32 * 1024];
        int n;
        // A terminal has no end of input to pass on (^D is a byte the client sends); the client closing stdin just
        // means nothing more comes.
        while ((n = await from(buffer, ct).ConfigureAwait(false)) > 0)
            terminal.Write(buffer.AsSpan(0, n), ct);
    }

    private async Task PumpResizesAsync(PseudoTerminal terminal, ChannelReader<TerminalSize>? resizes, SpawnedRuntimeProcess runtimeProcess, string pidFile, CancellationToken ct)
    {
        if (resizes == null) return;
        // A size can come while the runtime starts, before runc has its SIGWINCH handler: then the signal is lost and
        // the command would keep the old size until the next resize. So once the command runs (the runtime writes
        // the pid file), the latest size is also set on its own terminal. Sizes are applied under the gate, so the
        // last one set is the last one sent.
        var gate = new Lock();
        TerminalSize? latest = null;
        int? commandPid = null;
        var started = Task.Run(async () =>
        {
            var deadline = DateTime.UtcNow + ExecPidFileWait;
            while (!runtimeProcess.HasExited && DateTime.UtcNow < deadline)
            {
                if (ReadPidFile(pidFile) is int pid)
                {
                    lock (gate)
                    {
                        commandPid = pid;
                        if (latest is { } size) PseudoTerminal.TrySetWindowSizeOf(pid, size.Height, size.Width);
                    }
                    return;
                }
                await Task.Delay(20, ct).ConfigureAwait(false);
            }
        }, ct);
        try
        {
            await foreach (var size in resizes.ReadAllAsync(ct).ConfigureAwait(false))
            {
                terminal.SetWindowSize(size.Height, size.Width);
                // Our terminal is nobody's controlling terminal, so the kernel signals no one: tell the runtime (runc
                // copies the size on SIGWINCH). crun does not, so the size is also set on the command's own terminal,
                // reached through its pid.
                if (!runtimeProcess.HasExited)
                {
                    Signals.Kill(runtimeProcess.Pid, Signals.SIGWINCH);
                    lock (gate)
                    {
                        latest = size;
                        if (commandPid is int pid) PseudoTerminal.TrySetWindowSizeOf(pid, size.Height, size.Width);
                    }
                }
                logger.LogDebug("Exec terminal of {Pid} resized to {Width}x{Height}", runtimeProcess.Pid, size.Width, size.Height);
            }
        }
        finally
        {
            try { await started.ConfigureAwait(false); } catch (OperationCanceledException) { }
        }
    }

    /// <summary>What a runtime started by <see cref="Spawn"/> gets: a PATH (runc looks up helpers), nothing else.</summary>
    private static List<string> RuntimeEnvironment()
    {
        string path = Environment.GetEnvironmentVariable("PATH") is { Length: > 0 } p ? p : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        return [$"PATH={path}"];
    }

    /// <summary>A runtime process started with <see cref="Spawn.Start"/>, reaped by a poll loop from the start.</summary>
    private sealed class SpawnedRuntimeProcess : IRuntimeProcess
    {
        public SpawnedRuntimeProcess(int pid)
        {
            Pid = pid;
            Exited = Spawn.WaitForExitAsync(pid, CancellationToken.None);
        }

        public int Pid { get; }

        /// <summary>The raw wait status once it exited (and was reaped).</summary>
        public Task<int> Exited { get; }

        public bool HasExited => Exited.IsCompleted;

        public async Task<bool> ExitsWithinAsync(TimeSpan wait)
        {
            try
            {
                await Exited.WaitAsync(wait).ConfigureAwait(false);
                return true;
            }
            catch (TimeoutException) { return false; }
        }

        // Not reaped yet, so the pid is still ours.
        public void Kill()
        {
            if (!HasExited) Signals.Kill(Pid, Signals.SIGKILL);
        }
    }
}
