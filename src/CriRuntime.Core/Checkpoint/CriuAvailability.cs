using System.Diagnostics;

namespace CriRuntime.Checkpoint;

/// <summary>
/// Whether CRIU can checkpoint on this node, by running <c>criu check</c> once (runc and crun both hand checkpoints to
/// it). The answer is kept for the daemon's life: a kernel or CRIU that cannot do it now will not start to while it runs,
/// and the check takes a while. A check that was cancelled or timed out is not kept.
/// </summary>
public static class CriuAvailability
{
    // The daemon may run with a PATH without the sbin directories, where Debian installs criu.
    private static readonly string[] SearchDirs = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"];
    private const int OutputLimit = 64 * 1024;
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static string? knownProblem;
    private static bool known;

    /// <summary>Null when <c>criu check</c> passes; otherwise what fails, in words a node's operator can act on.</summary>
    public static async Task<string?> ProblemAsync(TimeSpan timeout, CancellationToken ct)
    {
        if (Volatile.Read(ref known)) return knownProblem;
        await Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (known) return knownProblem;
            string? problem = await CheckAsync(timeout, ct).ConfigureAwait(false);
            knownProblem = problem;
            Volatile.Write(ref known, true);
            return problem;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>The criu binary on PATH or in the usual system directories, or null.</summary>
    public static string? FindBinary()
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(SearchDirs);
        return dirs.Select(d => Path.Combine(d, "criu")).FirstOrDefault(File.Exists);
    }

    private static async Task<string?> CheckAsync(TimeSpan timeout, CancellationToken ct)
    {
        if (FindBinary() is not { } criu)
            return "criu is not installed on this node; install it (Debian's criu package, see hack/install-deps.sh)";
        var psi = new ProcessStartInfo(criu) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("check");
        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {criu}");
        var stdout = ReadCappedAsync(process.StandardOutput.BaseStream);
        var stderr = ReadCappedAsync(process.StandardError.BaseStream);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(); } catch (InvalidOperationException) { }
            if (ct.IsCancellationRequested) throw;
            throw new TimeoutException($"`{criu} check` did not finish within {timeout.TotalSeconds:0} s");
        }
        if (process.ExitCode == 0) return null;
        string output = (await stderr.ConfigureAwait(false) + "\n" + await stdout.ConfigureAwait(false)).Trim();
        // CRIU logs several lines; the first errors say what it could not do.
        var errors = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Take(3);
        return $"CRIU cannot checkpoint on this node: `{criu} check` exited {process.ExitCode}: {Echo.Capped(string.Join("; ", errors), 1024)}";
    }

    private static async Task<string> ReadCappedAsync(Stream stream)
    {
        var buffer = new byte[OutputLimit];
        int filled = 0, read;
        while ((read = await stream.ReadAsync(buffer.AsMemory(filled, buffer.Length - filled)).ConfigureAwait(false)) > 0)
        {
            filled += read;
            if (filled == buffer.Length)
            {
                // Drain the rest so that criu never blocks on a full pipe.
                var sink = new byte[4096];
                while (await stream.ReadAsync(sink).ConfigureAwait(false) > 0) { }
                break;
            }
        }
        return System.Text.Encoding.UTF8.GetString(buffer, 0, filled);
    }
}
