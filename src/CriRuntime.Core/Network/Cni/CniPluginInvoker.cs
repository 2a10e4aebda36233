using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CriRuntime.Network.Cni;

/// <summary>The environment of one plugin call (CNI spec "Parameters").</summary>
internal sealed record CniCall(string Command, string ContainerId, string Netns, string IfName, string Args, string NetworkName);

/// <summary>Finds plugin binaries in the bin dirs and runs them: config on stdin, CNI_* in the environment,
/// result or error JSON on stdout. Every call is bounded by the plugin timeout; a plugin that overruns is
/// killed with its children.</summary>
internal sealed class CniPluginInvoker(IReadOnlyList<string> binDirs, TimeSpan timeout)
{
    private const int MaxStderrInMessage = 2048;

    public string CniPath { get; } = string.Join(':', binDirs);

    public TimeSpan Timeout => timeout;

    /// <summary>The first executable file named <paramref name="type"/> in the bin dirs, or null.</summary>
    public string? Find(string type)
    {
        foreach (var dir in binDirs)
        {
            string path = Path.Combine(dir, type);
            try
            {
                if (File.Exists(path) && (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0)
                    return path;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Unreadable entry: look further, as a PATH lookup would.
            }
        }
        return null;
    }

    /// <summary>Runs the plugin and returns its stdout when it exits 0.</summary>
    /// <exception cref="CniException">Not found, failed (with its error JSON or stderr), or timed out.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> fired; the plugin was killed.</exception>
    public async Task<byte[]> ExecAsync(string type, CniCall call, JsonObject config, CancellationToken ct)
    {
        string what = $"CNI plugin \"{type}\" {call.Command} (network \"{call.NetworkName}\", interface {call.IfName}, container {call.ContainerId})";
        string path = Find(type) ?? throw new CniException($"{what}: plugin not found in bin dirs {CniPath}") { Plugin = type };

        var start = new ProcessStartInfo(path)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = "/",
        };
        // The daemon's own environment is kept (plugins need PATH for iptables, tc, ...); CNI_* are all set
        // explicitly so nothing stale leaks through.
        start.Environment["CNI_COMMAND"] = call.Command;
        start.Environment["CNI_CONTAINERID"] = call.ContainerId;
        start.Environment["CNI_NETNS"] = call.Netns;
        start.Environment["CNI_IFNAME"] = call.IfName;
        start.Environment["CNI_ARGS"] = call.Args;
        start.Environment["CNI_PATH"] = CniPath;

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException)
        {
            throw new CniException($"{what}: cannot start {path}: {e.Message}", e) { Plugin = type };
        }

        var stdout = new MemoryStream();
        var stderr = new MemoryStream();
        var readStdout = process.StandardOutput.BaseStream.CopyToAsync(stdout, deadline.Token);
        var readStderr = process.StandardError.BaseStream.CopyToAsync(stderr, deadline.Token);
        try
        {
            try
            {
                await process.StandardInput.BaseStream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(config.ToJsonString()), deadline.Token).ConfigureAwait(false);
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // The plugin exited without reading its config; its exit status and output tell why.
            }
            await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
            // A plugin that left a child holding stdout open still has to finish within the timeout.
            await Task.WhenAll(readStdout, readStderr).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            await KillAsync(process).ConfigureAwait(false);
            await Task.WhenAll(readStdout, readStderr).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
            throw new CniException($"{what}: timed out after {timeout.TotalSeconds:0.#}s; the plugin was killed") { Plugin = type };
        }

        if (process.ExitCode == 0) return stdout.ToArray();
        throw Failure(what, type, process.ExitCode, stdout.ToArray(), stderr.ToArray());
    }

    /// <summary>Builds the error from the plugin's error JSON (code, msg, details) when it wrote one, else its stderr.</summary>
    internal static CniException Failure(string what, string type, int exitCode, byte[] stdout, byte[] stderr)
    {
        string errText = Encoding.UTF8.GetString(stderr).Trim();
        if (errText.Length > MaxStderrInMessage) errText = "..." + errText[^MaxStderrInMessage..];
        try
        {
            if (stdout.Length > 0 && JsonNode.Parse(stdout) is JsonObject error && error["msg"] is JsonValue msgValue && msgValue.TryGetValue(out string? msg))
            {
                int? code = error["code"] is JsonValue c && c.TryGetValue(out int n) ? n : null;
                string? details = error["details"] is JsonValue d && d.TryGetValue(out string? s) && s.Length > 0 ? s : null;
                var text = new StringBuilder($"{what} failed: {msg}");
                if (details is not null) text.Append(": ").Append(details);
                if (code is not null) text.Append($" (CNI error code {code})");
                return new CniException(text.ToString()) { Plugin = type, Code = code };
            }
        }
        catch (JsonException)
        {
            // Not the spec's error format: fall back to stderr.
        }
        string output = errText.Length > 0 ? errText : Encoding.UTF8.GetString(stdout).Trim();
        return new CniException(output.Length > 0
            ? $"{what} failed with exit status {exitCode}: {output}"
            : $"{what} failed with exit status {exitCode} and wrote no error") { Plugin = type };
    }

    private static async Task KillAsync(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
        using var reap = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await process.WaitForExitAsync(reap.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // SIGKILL is not refused; a process stuck in the kernel is reaped by the runtime later.
        }
    }
}
