using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using CriRuntime.TestSupport;
using Runtime.V1;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>What one exec gave its client: output (or its length), and the exit code read from the v4/v5 status.</summary>
internal sealed record ExecOutcome(byte[] Stdout, byte[] Stderr, long StdoutBytes, int ExitCode, string StatusJson);

/// <summary>Shared by the streaming tests: exec over our SPDY client, the exit code from a status, /metrics and RSS.</summary>
internal static partial class StreamingTestHelpers
{
    /// <summary>
    /// The exit code a v4/v5 status carries, as client-go reads it: Success is 0, NonZeroExitCode names it in
    /// details.causes[reason=ExitCode]; anything else is a failure to report.
    /// </summary>
    public static int ExitCodeOf(string statusJson)
    {
        using var status = JsonDocument.Parse(statusJson);
        var root = status.RootElement;
        if (root.GetProperty("status").GetString() == "Success") return 0;
        if (root.TryGetProperty("reason", out var reason) && reason.GetString() == "NonZeroExitCode")
            foreach (var cause in root.GetProperty("details").GetProperty("causes").EnumerateArray())
                if (cause.GetProperty("reason").GetString() == "ExitCode")
                    return int.Parse(cause.GetProperty("message").GetString()!, CultureInfo.InvariantCulture);
        throw new InvalidDataException($"the status carries no exit code: {statusJson}");
    }

    /// <summary>
    /// Runs <paramref name="request"/> over SPDY (v4.channel.k8s.io) and reads stdout and stderr to their end;
    /// with <paramref name="countStdoutOnly"/> stdout is counted, not kept (large outputs).
    /// </summary>
    public static async Task<ExecOutcome> SpdyExecAsync(RuntimeService.RuntimeServiceClient runtime, ExecRequest request, CancellationToken cancellationToken,
        bool countStdoutOnly = false)
    {
        var response = await runtime.ExecAsync(request, cancellationToken: cancellationToken);
        var upgrade = await SpdyStreamingClient.ConnectAsync(response.Url, ["v4.channel.k8s.io"], cancellationToken);
        if (upgrade.StatusCode != 101) throw new InvalidOperationException($"upgrade of {response.Url} answered {upgrade.StatusCode}: {upgrade.Body}");
        await using var session = upgrade.Session!;
        var error = await session.OpenAsync("error", cancellationToken);
        var stdout = request.Stdout ? await session.OpenAsync("stdout", cancellationToken) : null;
        var stderr = request.Stderr ? await session.OpenAsync("stderr", cancellationToken) : null;
        long counted = 0;
        Task<byte[]> readStdout;
        if (stdout == null) readStdout = Task.FromResult(Array.Empty<byte>());
        else if (!countStdoutOnly) readStdout = stdout.ReadToEndAsync(cancellationToken);
        else readStdout = Task.Run(async () =>
        {
            var buffer = new byte[64 * 1024];
            int n;
            while ((n = await stdout.ReadAsync(buffer, cancellationToken)) > 0) counted += n;
            return Array.Empty<byte>();
        }, cancellationToken);
        var readStderr = stderr?.ReadToEndAsync(cancellationToken) ?? Task.FromResult(Array.Empty<byte>());
        var out1 = await readStdout;
        var err1 = await readStderr;
        var statusJson = System.Text.Encoding.UTF8.GetString(await error.ReadToEndAsync(cancellationToken));
        return new ExecOutcome(out1, err1, countStdoutOnly ? counted : out1.Length, ExitCodeOf(statusJson), statusJson);
    }

    [GeneratedRegex(@"metrics (http://127\.0\.0\.1:\d+/metrics)")]
    private static partial Regex MetricsUrlPattern();

    /// <summary>The daemon's /metrics URL, from its start-up log line.</summary>
    public static string MetricsUrl(DaemonProcess daemon) =>
        MetricsUrlPattern().Match(daemon.LogTail(2000)) is { Success: true } m ? m.Groups[1].Value
            : throw new InvalidOperationException($"no 'metrics http://127.0.0.1:PORT/metrics' in the daemon log\n{daemon.LogTail()}");

    public static async Task<string> ScrapeAsync(string url)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
        return await http.GetStringAsync(url);
    }

    /// <summary>The sum of the samples of <paramref name="name"/> carrying every one of <paramref name="labels"/> (0 when there is none).</summary>
    public static double Sample(string metricsText, string name, params (string Label, string Value)[] labels) =>
        metricsText.Split('\n')
            .Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) && labels.All(p => l.Contains($"{p.Label}=\"{p.Value}\"", StringComparison.Ordinal)))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

    /// <summary>Resident set of <paramref name="pid"/> in bytes (VmRSS in /proc/PID/status).</summary>
    public static long RssBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidDataException($"/proc/{pid}/status has no VmRSS");
    }

    /// <summary>
    /// The cgroup.procs file of the cgroup <paramref name="pid"/> is in: the pids (else memory) controller on v1,
    /// the unified hierarchy on v2.
    /// </summary>
    public static string CgroupProcsFile(int pid)
    {
        var candidates = new List<string>();
        string? unified = null;
        foreach (var line in File.ReadAllLines($"/proc/{pid}/cgroup"))
        {
            var parts = line.Split(':', 3);
            if (parts.Length != 3) continue;
            var controllers = parts[1].Split(',');
            if (controllers.Contains("pids")) candidates.Insert(0, $"/sys/fs/cgroup/pids{parts[2]}/cgroup.procs");
            else if (controllers.Contains("memory")) candidates.Add($"/sys/fs/cgroup/memory{parts[2]}/cgroup.procs");
            else if (parts[1].Length == 0) unified = parts[2];
        }
        if (unified != null)
        {
            candidates.Add($"/sys/fs/cgroup{unified}/cgroup.procs");
            candidates.Add($"/sys/fs/cgroup/unified{unified}/cgroup.procs");
        }
        return candidates.FirstOrDefault(File.Exists) ?? throw new InvalidOperationException($"no cgroup.procs found for pid {pid} among {string.Join(", ", candidates)}");
    }

    /// <summary>The command lines of the processes in a cgroup, "PID: args".</summary>
    public static List<string> ProcessesIn(string cgroupProcsFile)
    {
        var result = new List<string>();
        foreach (var line in File.ReadAllLines(cgroupProcsFile))
        {
            if (!int.TryParse(line, out int pid)) continue;
            try
            {
                result.Add($"{pid}: {File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim()}");
            }
            catch (IOException)
            {
                // Gone between the two reads.
            }
        }
        return result;
    }
}
