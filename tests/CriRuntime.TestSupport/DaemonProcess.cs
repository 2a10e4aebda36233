using System.Diagnostics;
using System.Text;
using CriRuntime.Api;
using Grpc.Net.Client;
using Runtime.V1;

namespace CriRuntime.TestSupport;

/// <summary>
/// The published daemon (_output/bin/criruntime) started on its own temp socket, root and state,
/// with the project's gRPC client attached. Output goes to a log file whose tail is shown on failure.
/// </summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly GrpcChannel channel;

    private DaemonProcess(Process process, string baseDir, string socket, string logFile, GrpcChannel channel)
    {
        this.process = process;
        this.channel = channel;
        BaseDir = baseDir;
        Socket = socket;
        LogFile = logFile;
        Runtime = new RuntimeService.RuntimeServiceClient(channel);
        Images = new ImageService.ImageServiceClient(channel);
    }

    public string BaseDir { get; }
    public string Socket { get; }
    public string LogFile { get; }
    public string Root => Path.Combine(BaseDir, "root");
    public string State => Path.Combine(BaseDir, "state");
    public string ConfigFile => Path.Combine(BaseDir, "config.toml");
    public int ProcessId => process.Id;
    public bool HasExited => process.HasExited;
    public GrpcChannel Channel => channel;
    public RuntimeService.RuntimeServiceClient Runtime { get; }
    public ImageService.ImageServiceClient Images { get; }

    /// <summary>The daemon binary: $CRIRUNTIME_BIN, else _output/bin/criruntime in the repository.</summary>
    public static string BinaryPath
    {
        get
        {
            if (Environment.GetEnvironmentVariable("CRIRUNTIME_BIN") is { Length: > 0 } fromEnv) return fromEnv;
            string path = Path.Combine(RepoRoot, "_output", "bin", "criruntime");
            if (!File.Exists(path))
                throw new InvalidOperationException($"{path} is missing: run hack/build.sh first (hack/test.sh does)");
            return path;
        }
    }

    public static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "CriRuntime.sln"))) return dir.FullName;
            throw new InvalidOperationException("cannot find the repository root (CriRuntime.sln) above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>
    /// Starts a daemon. <paramref name="extraConfig"/> is TOML appended after the generated
    /// socket/root/state lines (sections such as [registry] config_path = ...).
    /// </summary>
    public static async Task<DaemonProcess> StartAsync(string? extraConfig = null, string? baseDir = null, TimeSpan? timeout = null, string? umask = null)
    {
        baseDir ??= Directory.CreateTempSubdirectory("criruntime-test-").FullName;
        Directory.CreateDirectory(baseDir);
        string socket = Path.Combine(baseDir, "run", "criruntime.sock");
        string configFile = Path.Combine(baseDir, "config.toml");
        if (!File.Exists(configFile) || extraConfig is not null)
        {
            var toml = new StringBuilder()
                .AppendLine($"socket = \"{socket}\"")
                .AppendLine($"root = \"{Path.Combine(baseDir, "root")}\"")
                .AppendLine($"state = \"{Path.Combine(baseDir, "state")}\"")
                .AppendLine("log_level = \"debug\"")
                .AppendLine(extraConfig ?? "");
            if (extraConfig is null || !extraConfig.Contains("[metrics]", StringComparison.Ordinal))
                toml.AppendLine("[metrics]").AppendLine("address = \"127.0.0.1:0\"");
            await File.WriteAllTextAsync(configFile, toml.ToString());
        }
        return await StartExistingAsync(baseDir, timeout ?? TimeSpan.FromSeconds(30), umask);
    }

    /// <summary>Starts (again) a daemon on a base dir made by <see cref="StartAsync"/>: the restart case.</summary>
    /// <param name="umask">The daemon's umask (octal, e.g. "077" as the systemd unit sets it); null: this process's.</param>
    public static async Task<DaemonProcess> StartExistingAsync(string baseDir, TimeSpan timeout, string? umask = null)
    {
        string socket = Path.Combine(baseDir, "run", "criruntime.sock");
        string logFile = Path.Combine(baseDir, "daemon.log");
        var start = new ProcessStartInfo(BinaryPath)
        {
            ArgumentList = { "--config", Path.Combine(baseDir, "config.toml") },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (umask is not null)
        {
            if (umask.Length is < 3 or > 4 || umask.Any(c => c is < '0' or > '7')) throw new ArgumentException($"umask '{umask}' is not octal", nameof(umask));
            // sh sets the umask and execs the daemon: same pid, so everything below sees the daemon.
            start.FileName = "/bin/sh";
            start.ArgumentList.Clear();
            foreach (string a in new[] { "-c", $"umask {umask} && exec \"$0\" \"$@\"", BinaryPath, "--config", Path.Combine(baseDir, "config.toml") })
                start.ArgumentList.Add(a);
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException("cannot start " + BinaryPath);
        var log = new StreamWriter(new FileStream(logFile, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var channel = CriChannel.ForUnixSocket(socket);
        var daemon = new DaemonProcess(process, baseDir, socket, logFile, channel);
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (process.HasExited)
            {
                await process.WaitForExitAsync();
                throw new InvalidOperationException($"criruntime exited with {process.ExitCode} during start-up:\n{daemon.LogTail()}");
            }
            try
            {
                await daemon.Runtime.VersionAsync(new VersionRequest(), deadline: DateTime.UtcNow.AddSeconds(2));
                return daemon;
            }
            catch (Grpc.Core.RpcException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
            catch (Grpc.Core.RpcException e)
            {
                await daemon.DisposeAsync();
                throw new TimeoutException($"criruntime did not answer Version within {timeout}: {e.Status}\n{daemon.LogTail()}");
            }
        }
    }

    public string LogTail(int lines = 60)
    {
        try
        {
            using var stream = new FileStream(LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var all = new StreamReader(stream).ReadToEnd().Split('\n');
            return string.Join('\n', all.TakeLast(lines));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    /// <summary>SIGTERM and wait: the clean shutdown path. Returns the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan? timeout = null)
    {
        if (!process.HasExited)
        {
            Kill(process.Id, 15);
            using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(15));
            await process.WaitForExitAsync(cts.Token);
        }
        return process.ExitCode;
    }

    /// <summary>SIGKILL: the crash path.</summary>
    public async Task KillAsync()
    {
        if (!process.HasExited)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        channel.Dispose();
        try
        {
            await StopAsync(TimeSpan.FromSeconds(10));
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
        }
        process.Dispose();
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    private static void Kill(int pid, int signal) => kill(pid, signal);
}
