using System.Diagnostics;
using CriRuntime.Api;
using Grpc.Core;
using Grpc.Net.Client;
using Runtime.V1;

namespace CriRuntime.Bench;

/// <summary>Timings of one pod start, in milliseconds.</summary>
public sealed record PodStart(string PodId, double RunPodSandboxMs, double CreateContainerMs, double StartContainerMs, string ContainerId = "")
{
    public double TotalMs => RunPodSandboxMs + CreateContainerMs + StartContainerMs;
}

/// <summary>
/// One CRI runtime under test: its gRPC clients, its daemon process (started here or given by pid), the pods this
/// run made on it (so they are removed even when a workload fails), and its memory as /proc shows it.
/// </summary>
public sealed class Target(EndpointOptions options, string workDir, string cgroupParent) : IAsyncDisposable
{
    /// <summary>Label on every pod this tool makes, so "cleanup" and later runs find leftovers.</summary>
    public const string BenchLabel = "io.criruntime.bench";
    public const string PodNamespace = "criruntime-bench";
    public static readonly TimeSpan CallTimeout = TimeSpan.FromMinutes(2);

    private readonly object gate = new();
    private readonly HashSet<string> livePods = new(StringComparer.Ordinal);
    private GrpcChannel channel = CriChannel.ForUnixSocket(options.Endpoint);
    private Process? daemon;
    private int podSerial;

    public string Name => options.Name;
    public EndpointOptions Options => options;
    public RuntimeService.RuntimeServiceClient Runtime { get; private set; } = null!;
    public ImageService.ImageServiceClient Images { get; private set; } = null!;
    public VersionResponse? Version { get; private set; }

    public int? DaemonPid => daemon?.Id ?? options.DaemonPid;

    /// <summary>Connects to a daemon that is already running (no --start-command).</summary>
    public async Task ConnectAsync(CancellationToken ct)
    {
        ResetClients();
        Version = await Runtime.VersionAsync(new VersionRequest(), deadline: Deadline(), cancellationToken: ct);
    }

    /// <summary>
    /// Starts the daemon with --start-command <paramref name="runs"/> times and returns, for each, the time from the
    /// spawn to the first answered Version call (polled every 2 ms on fresh connections). Every start but the last
    /// is stopped again; the last keeps running for the other workloads.
    /// </summary>
    public async Task<List<double>> MeasureStartupAsync(int runs, CancellationToken ct)
    {
        string command = options.StartCommand ?? throw new InvalidOperationException($"{Name}: no --start-command");
        var samples = new List<double>();
        for (int run = 0; run < runs; run++)
        {
            var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(command);
            var sw = Stopwatch.StartNew();
            var process = Process.Start(psi) ?? throw new InvalidOperationException($"{Name}: could not start: {command}");
            daemon = process;
            using var probe = CriChannel.ForUnixSocket(options.Endpoint);
            var client = new RuntimeService.RuntimeServiceClient(probe);
            while (true)
            {
                ct.ThrowIfCancellationRequested();
                if (process.HasExited)
                    throw new InvalidOperationException($"{Name}: the daemon exited with {process.ExitCode} before answering Version; see its log (command: {command})");
                if (sw.Elapsed > TimeSpan.FromSeconds(60))
                    throw new TimeoutException($"{Name}: no answer to Version on {options.Endpoint} within 60 s of starting: {command}");
                try
                {
                    Version = await client.VersionAsync(new VersionRequest(), deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: ct);
                    break;
                }
                catch (RpcException)
                {
                    await Task.Delay(2, ct);
                }
            }
            samples.Add(sw.Elapsed.TotalMilliseconds);
            if (run < runs - 1) await StopDaemonAsync();
        }
        ResetClients();
        return samples;
    }

    /// <summary>SIGTERM to the daemon this tool started, SIGKILL after 30 s; no-op for a daemon given by pid.</summary>
    public async Task StopDaemonAsync()
    {
        var process = daemon;
        if (process is null) return;
        daemon = null;
        if (!process.HasExited && Procfs.Signal(process.Id, Procfs.SIGTERM))
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine($"{Name}: daemon pid {process.Id} ignored SIGTERM for 30 s; killing it");
                Procfs.Signal(process.Id, Procfs.SIGKILL);
                await process.WaitForExitAsync(CancellationToken.None);
            }
        }
        process.Dispose();
    }

    private void ResetClients()
    {
        channel.Dispose();
        channel = CriChannel.ForUnixSocket(options.Endpoint);
        Runtime = new RuntimeService.RuntimeServiceClient(channel);
        Images = new ImageService.ImageServiceClient(channel);
    }

    public static DateTime Deadline() => DateTime.UtcNow.Add(CallTimeout);

    // ---- pods, configured as the kubelet configures a BestEffort pod (cgroupfs driver)

    public PodSandboxConfig NewPodConfig(string workload)
    {
        int serial = Interlocked.Increment(ref podSerial);
        string uid = Guid.NewGuid().ToString();
        string name = $"bench-{workload}-{serial}";
        string logDir = Path.Combine(workDir, "logs", Name, $"{PodNamespace}_{name}_{uid}");
        Directory.CreateDirectory(logDir);
        return new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = name, Uid = uid, Namespace = PodNamespace, Attempt = 0 },
            Hostname = name,
            LogDirectory = logDir,
            DnsConfig = new DNSConfig(),
            Labels =
            {
                ["io.kubernetes.pod.name"] = name,
                ["io.kubernetes.pod.namespace"] = PodNamespace,
                ["io.kubernetes.pod.uid"] = uid,
                [BenchLabel] = "true",
            },
            Annotations = { ["kubernetes.io/config.source"] = "api" },
            Linux = new LinuxPodSandboxConfig
            {
                CgroupParent = $"{cgroupParent}/pod{uid}",
                SecurityContext = new LinuxSandboxSecurityContext
                {
                    NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Pod, Pid = NamespaceMode.Container, Ipc = NamespaceMode.Pod },
                },
            },
        };
    }

    public static ContainerConfig NewContainerConfig(PodSandboxConfig pod, string name, string image)
    {
        // The kubelet makes the container's log directory; the runtime opens NAME/0.log in it.
        Directory.CreateDirectory(Path.Combine(pod.LogDirectory, name));
        return new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = name, Attempt = 0 },
            Image = new ImageSpec { Image = image },
            Command = { "sleep", "3600" },
            LogPath = $"{name}/0.log",
            Labels =
            {
                ["io.kubernetes.container.name"] = name,
                ["io.kubernetes.pod.name"] = pod.Metadata.Name,
                ["io.kubernetes.pod.namespace"] = pod.Metadata.Namespace,
                ["io.kubernetes.pod.uid"] = pod.Metadata.Uid,
            },
            Linux = new LinuxContainerConfig
            {
                Resources = new LinuxContainerResources { CpuShares = 2, OomScoreAdj = 1000, CpuPeriod = 100000 },
                SecurityContext = new LinuxContainerSecurityContext
                {
                    NamespaceOptions = pod.Linux.SecurityContext.NamespaceOptions.Clone(),
                },
            },
        };
    }

    /// <summary>RunPodSandbox + CreateContainer + StartContainer of `sleep 3600`, each timed.</summary>
    public async Task<PodStart> StartPodAsync(string workload, string image, CancellationToken ct)
    {
        var config = NewPodConfig(workload);
        var sw = Stopwatch.StartNew();
        var run = await Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config }, deadline: Deadline(), cancellationToken: ct);
        double runMs = sw.Elapsed.TotalMilliseconds;
        lock (gate) livePods.Add(run.PodSandboxId);

        sw.Restart();
        var created = await Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = run.PodSandboxId,
            Config = NewContainerConfig(config, "sleep", image),
            SandboxConfig = config,
        }, deadline: Deadline(), cancellationToken: ct);
        double createMs = sw.Elapsed.TotalMilliseconds;

        sw.Restart();
        await Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = created.ContainerId }, deadline: Deadline(), cancellationToken: ct);
        double startMs = sw.Elapsed.TotalMilliseconds;
        lock (gate) podConfigs[run.PodSandboxId] = config;
        return new PodStart(run.PodSandboxId, runMs, createMs, startMs, created.ContainerId);
    }

    private readonly Dictionary<string, PodSandboxConfig> podConfigs = new(StringComparer.Ordinal);

    /// <summary>Adds and starts one more `sleep 3600` container named <paramref name="name"/> in a pod from <see cref="StartPodAsync"/>.</summary>
    public async Task AddContainerAsync(string podId, string name, string image, CancellationToken ct)
    {
        PodSandboxConfig config;
        lock (gate) config = podConfigs[podId];
        var created = await Runtime.CreateContainerAsync(new CreateContainerRequest
        {
            PodSandboxId = podId,
            Config = NewContainerConfig(config, name, image),
            SandboxConfig = config,
        }, deadline: Deadline(), cancellationToken: ct);
        await Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = created.ContainerId }, deadline: Deadline(), cancellationToken: ct);
    }

    /// <summary>StopPodSandbox then RemovePodSandbox (as the kubelet does), timed: (stop ms, remove ms).</summary>
    public async Task<(double StopMs, double RemoveMs)> RemovePodAsync(string podId, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        await Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }, deadline: Deadline(), cancellationToken: ct);
        double stopMs = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        await Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }, deadline: Deadline(), cancellationToken: ct);
        double removeMs = sw.Elapsed.TotalMilliseconds;
        lock (gate)
        {
            livePods.Remove(podId);
            podConfigs.Remove(podId);
        }
        return (stopMs, removeMs);
    }

    /// <summary>Removes every pod labelled <see cref="BenchLabel"/> (this run's and any a crashed run left); returns how many.</summary>
    public async Task<int> RemoveAllBenchPodsAsync(CancellationToken ct)
    {
        var list = await Runtime.ListPodSandboxAsync(new ListPodSandboxRequest
        {
            Filter = new PodSandboxFilter { LabelSelector = { [BenchLabel] = "true" } },
        }, deadline: Deadline(), cancellationToken: ct);
        var ids = list.Items.Select(p => p.Id).ToList();
        lock (gate) ids.AddRange(livePods.Where(id => !ids.Contains(id)));
        var failures = new List<string>();
        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct }, async (id, token) =>
        {
            try
            {
                await RemovePodAsync(id, token);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
                lock (gate) livePods.Remove(id);
            }
            catch (RpcException e)
            {
                lock (failures) failures.Add($"{id}: {e.Status.StatusCode} {e.Status.Detail}");
            }
        });
        if (failures.Count > 0)
            throw new InvalidOperationException($"{Name}: could not remove {failures.Count} bench pod(s): {string.Join("; ", failures)}");
        return ids.Count;
    }

    // ---- memory

    /// <summary>The daemon's Rss/Pss.</summary>
    public ProcMemory DaemonMemory()
    {
        int pid = DaemonPid ?? throw new InvalidOperationException($"{Name}: the daemon's pid is unknown (give --start-command or --daemon-pid)");
        return Procfs.Memory(pid);
    }

    /// <summary>
    /// The per-pod helper processes (--helpers named, with --helper-match in the command line or a counted helper or
    /// the daemon as parent) and pod infra processes (--infra named, child of a helper).
    /// </summary>
    public (List<ProcInfo> Helpers, List<ProcInfo> Infra) PodProcesses()
    {
        int daemonPid = DaemonPid ?? -1;
        var all = Procfs.Processes();
        var helpers = new List<ProcInfo>();
        var helperPids = new HashSet<int>();
        // Helpers may be children of helpers (conmon's double fork leaves none, but be safe): iterate to a fixed point.
        bool added = true;
        while (added)
        {
            added = false;
            foreach (var p in all)
            {
                if (helperPids.Contains(p.Pid) || !options.Helpers.Contains(p.Comm)) continue;
                bool matches = (options.HelperMatch is { } m && p.CommandLine.Contains(m, StringComparison.Ordinal))
                    || p.ParentPid == daemonPid || helperPids.Contains(p.ParentPid);
                if (!matches) continue;
                helpers.Add(p);
                helperPids.Add(p.Pid);
                added = true;
            }
        }
        var infra = all.Where(p => options.Infra.Contains(p.Comm) && (helperPids.Contains(p.ParentPid) || p.ParentPid == daemonPid)).ToList();
        return (helpers, infra);
    }

    public static ProcMemory SumMemory(IEnumerable<ProcInfo> processes)
    {
        var sum = new ProcMemory(0, 0);
        foreach (var p in processes)
        {
            try
            {
                sum += Procfs.Memory(p.Pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Exited between listing and reading; it no longer uses memory.
            }
        }
        return sum;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Runtime is not null)
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
                int removed = await RemoveAllBenchPodsAsync(cts.Token);
                if (removed > 0) Console.Error.WriteLine($"{Name}: removed {removed} leftover bench pod(s)");
            }
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException or OperationCanceledException)
        {
            Console.Error.WriteLine($"{Name}: cleanup of bench pods failed: {e.Message}");
        }
        finally
        {
            await StopDaemonAsync();
            channel.Dispose();
        }
    }
}
