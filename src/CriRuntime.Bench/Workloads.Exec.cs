using System.Diagnostics;
using Runtime.V1;

namespace CriRuntime.Bench;

/// <summary>Streaming exec as kubectl exec reaches a node: stock crictl, Exec RPC, the runtime's streaming server, runc exec.</summary>
public sealed partial class Workloads
{
    /// <summary>
    /// In one pod per runtime: `crictl exec CID true` from process start to exit, and `crictl exec CID echo x` from
    /// process start to the first byte of its output, --exec-runs times each after two untimed warm-ups.
    /// </summary>
    public async Task ExecAsync(CancellationToken ct)
    {
        if (options.Crictl is not { } crictl)
        {
            Log("exec: no --crictl given; skipped");
            return;
        }
        foreach (var t in targets)
        {
            Log($"{t.Name}: {options.ExecRuns} × crictl exec CID true, and as many to the first byte of echo");
            var pod = await t.StartPodAsync("exec", options.Image, ct);
            try
            {
                var totals = new List<double>();
                var firstBytes = new List<double>();
                for (int i = 0; i < options.ExecRuns + 2; i++)
                {
                    var (total, _) = await CrictlExecAsync(crictl, t.Options.Endpoint, pod.ContainerId, ["true"], ct);
                    var (_, first) = await CrictlExecAsync(crictl, t.Options.Endpoint, pod.ContainerId, ["echo", "x"], ct);
                    if (i < 2) continue;
                    totals.Add(total);
                    firstBytes.Add(first ?? throw new InvalidOperationException($"{t.Name}: crictl exec {pod.ContainerId} echo x printed nothing"));
                }
                results.Set("exec-true-p50", "crictl exec CID true, start to exit, p50", "ms", t.Name, SampleStatistics.Median(totals), totals);
                results.Set("exec-true-p90", "crictl exec CID true, p90", "ms", t.Name, SampleStatistics.P90(totals));
                results.Set("exec-first-byte-p50", "crictl exec CID echo, start to first byte, p50", "ms", t.Name, SampleStatistics.Median(firstBytes), firstBytes);
                results.Set("exec-first-byte-p90", "crictl exec CID echo, first byte p90", "ms", t.Name, SampleStatistics.P90(firstBytes));
            }
            finally
            {
                await t.RemovePodAsync(pod.PodId, CancellationToken.None);
            }
        }
    }

    /// <summary>Runs crictl exec (no tty, no stdin); returns ms to its exit and ms to the first byte it printed (null if none).</summary>
    private static async Task<(double TotalMs, double? FirstByteMs)> CrictlExecAsync(string crictl, string endpoint, string containerId,
        IReadOnlyList<string> command, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(crictl) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--runtime-endpoint", endpoint, "--image-endpoint", endpoint, "--timeout", "30s", "exec", containerId }) psi.ArgumentList.Add(a);
        foreach (var a in command) psi.ArgumentList.Add(a);
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync(ct);
        double? first = null;
        var buffer = new byte[4096];
        var stdout = p.StandardOutput.BaseStream;
        while (await stdout.ReadAsync(buffer, ct) is int n && n > 0)
            first ??= sw.Elapsed.TotalMilliseconds;
        await p.WaitForExitAsync(ct);
        double total = sw.Elapsed.TotalMilliseconds;
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"crictl exec {containerId} {string.Join(' ', command)} on {endpoint} exited {p.ExitCode}: {(await stderr).Trim()}");
        return (total, first);
    }
}
