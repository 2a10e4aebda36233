using System.Diagnostics;
using System.Text.Json.Nodes;
using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Bench;

/// <summary>
/// The workloads. Each runs against every target in turn (same order, same configs) before the next
/// workload starts, so slow drift of the machine touches both runtimes alike.
/// </summary>
public sealed partial class Workloads(BenchOptions options, IReadOnlyList<Target> targets, Results results)
{
    private static readonly Goal PodStartGoal = new(0.7, AtMost: true);
    private static readonly Goal ThroughputGoal = new(1.3, AtMost: false);
    private static readonly Goal PerPodMemoryGoal = new(0.5, AtMost: true);
    private static readonly Goal NoWorseGoal = new(1.0, AtMost: true);
    private static readonly Goal PullGoal = new(0.8, AtMost: true);

    private static void Log(string message) => Console.Error.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");

    public async Task StartupAsync(CancellationToken ct)
    {
        foreach (var t in targets)
        {
            if (t.Options.StartCommand is null)
            {
                await t.ConnectAsync(ct);
                continue;
            }
            Log($"{t.Name}: daemon start to first Version, {options.StartupRuns} runs");
            var samples = await t.MeasureStartupAsync(options.Runs("startup") ? options.StartupRuns : 1, ct);
            if (options.Runs("startup"))
                results.Set("startup", "daemon start to first Version, median", "ms", t.Name, SampleStatistics.Median(samples), samples);
        }
    }

    /// <summary>Pulls the pod image (not timed), then records each daemon's idle memory with no pods.</summary>
    public async Task PrepareAsync(CancellationToken ct)
    {
        foreach (var t in targets)
        {
            if (results.Info["endpoints"] is not JsonObject endpoints) results.Info["endpoints"] = endpoints = new JsonObject();
            endpoints[t.Name] = new JsonObject
            {
                ["endpoint"] = t.Options.Endpoint,
                ["runtimeName"] = t.Version?.RuntimeName,
                ["runtimeVersion"] = t.Version?.RuntimeVersion,
                ["runtimeApiVersion"] = t.Version?.RuntimeApiVersion,
                ["daemonPid"] = t.DaemonPid,
            };
            int leftovers = await t.RemoveAllBenchPodsAsync(ct);
            if (leftovers > 0) Log($"{t.Name}: removed {leftovers} bench pod(s) an earlier run left");
            Log($"{t.Name}: pulling {options.Image}");
            await t.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = options.Image } },
                deadline: Target.Deadline(), cancellationToken: ct);
        }
        if (!options.Runs("memory")) return;
        await Task.Delay(TimeSpan.FromSeconds(2), ct);
        foreach (var t in targets)
        {
            if (t.DaemonPid is null) continue;
            var m = t.DaemonMemory();
            results.Set("rss-idle-start", "idle daemon RSS, just started", "MiB", t.Name, m.RssKiB / 1024.0, goal: NoWorseGoal);
            results.Set("pss-idle-start", "idle daemon PSS, just started", "MiB", t.Name, m.PssKiB / 1024.0);
            results.Set("anon-idle-start", "  of its RSS anonymous (heap, stacks)", "MiB", t.Name, m.AnonKiB / 1024.0);
        }
    }

    /// <summary>One warm-up pod, then --pods pods one after another (kept for the teardown figure), then teardown.</summary>
    public async Task PodStartAndTeardownAsync(CancellationToken ct)
    {
        foreach (var t in targets)
        {
            // First pod pays one-off costs (containerd pulls its sandbox image, JIT, caches): not counted.
            Log($"{t.Name}: warm-up pod");
            var warm = await t.StartPodAsync("warmup", options.Image, ct);
            await t.RemovePodAsync(warm.PodId, ct);

            Log($"{t.Name}: {options.Pods} pod starts, one after another");
            var starts = new List<PodStart>();
            var forks = new List<double>();
            for (int i = 0; i < options.Pods; i++)
            {
                long before = Procfs.ForkCount();
                starts.Add(await t.StartPodAsync("start", options.Image, ct));
                forks.Add(Procfs.ForkCount() - before);
            }
            var total = starts.Select(s => s.TotalMs).ToList();
            var run = starts.Select(s => s.RunPodSandboxMs).ToList();
            var create = starts.Select(s => s.CreateContainerMs).ToList();
            var start = starts.Select(s => s.StartContainerMs).ToList();
            results.Set("podstart-p50", "pod start p50 (run+create+start)", "ms", t.Name, SampleStatistics.Median(total), total, PodStartGoal);
            results.Set("podstart-p90", "pod start p90", "ms", t.Name, SampleStatistics.P90(total));
            results.Set("podstart-run-p50", "  RunPodSandbox p50", "ms", t.Name, SampleStatistics.Median(run), run);
            results.Set("podstart-run-p90", "  RunPodSandbox p90", "ms", t.Name, SampleStatistics.P90(run));
            results.Set("podstart-create-p50", "  CreateContainer p50", "ms", t.Name, SampleStatistics.Median(create), create);
            results.Set("podstart-create-p90", "  CreateContainer p90", "ms", t.Name, SampleStatistics.P90(create));
            results.Set("podstart-start-p50", "  StartContainer p50", "ms", t.Name, SampleStatistics.Median(start), start);
            results.Set("podstart-start-p90", "  StartContainer p90", "ms", t.Name, SampleStatistics.P90(start));
            results.Set("podstart-forks", "forks+clones per pod start (machine-wide), median", "count", t.Name, SampleStatistics.Median(forks), forks);

            Log($"{t.Name}: teardown of {starts.Count} pods, one after another");
            var stop = new List<double>();
            var remove = new List<double>();
            foreach (var s in starts)
            {
                var (stopMs, removeMs) = await t.RemovePodAsync(s.PodId, ct);
                stop.Add(stopMs);
                remove.Add(removeMs);
            }
            var teardown = stop.Zip(remove, (a, b) => a + b).ToList();
            results.Set("teardown-p50", "teardown p50 (stop+remove)", "ms", t.Name, SampleStatistics.Median(teardown), teardown);
            results.Set("teardown-p90", "teardown p90", "ms", t.Name, SampleStatistics.P90(teardown));
            results.Set("teardown-stop-p50", "  StopPodSandbox p50", "ms", t.Name, SampleStatistics.Median(stop), stop);
            results.Set("teardown-remove-p50", "  RemovePodSandbox p50", "ms", t.Name, SampleStatistics.Median(remove), remove);
        }
    }

    /// <summary>--load-pods pods started by N workers at a time: pods per second (median over --load-runs).</summary>
    public async Task LoadAsync(CancellationToken ct)
    {
        foreach (int concurrency in options.Concurrency)
        {
            foreach (var t in targets)
            {
                var rates = new List<double>();
                var teardownRates = new List<double>();
                // Made first so the table lists the start rate above the teardown rate.
                results.Get($"load{concurrency}", $"pod start, {concurrency} at a time", "pods/s", ThroughputGoal);
                for (int run = 0; run < options.LoadRuns; run++)
                {
                    Log($"{t.Name}: {options.LoadPods} pods, {concurrency} at a time (run {run + 1}/{options.LoadRuns})");
                    var ids = new List<string>();
                    var sw = Stopwatch.StartNew();
                    await Parallel.ForEachAsync(Enumerable.Range(0, options.LoadPods),
                        new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = ct }, async (_, token) =>
                        {
                            var s = await t.StartPodAsync($"load{concurrency}", options.Image, token);
                            lock (ids) ids.Add(s.PodId);
                        });
                    double seconds = sw.Elapsed.TotalSeconds;
                    rates.Add(options.LoadPods / seconds);

                    sw.Restart();
                    await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = ct },
                        async (id, token) => await t.RemovePodAsync(id, token));
                    double teardownSeconds = sw.Elapsed.TotalSeconds;
                    teardownRates.Add(ids.Count / teardownSeconds);
                }
                results.Set($"load{concurrency}-teardown", $"teardown, {concurrency} at a time", "pods/s", t.Name, SampleStatistics.Median(teardownRates), teardownRates);
                results.Set($"load{concurrency}", $"pod start, {concurrency} at a time", "pods/s", t.Name, SampleStatistics.Median(rates), rates, ThroughputGoal);
            }
        }
    }

    /// <summary>
    /// Memory with --memory-pods pods running, then (same pods, a second container each) List latency with
    /// 2 × --memory-pods containers present.
    /// </summary>
    public async Task MemoryAndListAsync(CancellationToken ct)
    {
        int n = options.MemoryPods;
        foreach (var t in targets)
        {
            var ids = new List<string>();
            try
            {
                if (options.Runs("memory") && t.DaemonPid is not null)
                {
                    await Task.Delay(TimeSpan.FromSeconds(2), ct);
                    var idle = t.DaemonMemory();
                    results.Set("rss-idle-after", "idle daemon RSS, after the pod workloads", "MiB", t.Name, idle.RssKiB / 1024.0, goal: NoWorseGoal);
                    results.Set("anon-idle-after", "  of its RSS anonymous (heap, stacks)", "MiB", t.Name, idle.AnonKiB / 1024.0);
                    await StartPodsAsync(t, n, "memory", ids, ct);
                    await Task.Delay(TimeSpan.FromSeconds(3), ct);
                    var daemon = t.DaemonMemory();
                    var (helpers, infra) = t.PodProcesses();
                    var helperMemory = Target.SumMemory(helpers);
                    var infraMemory = Target.SumMemory(infra);
                    double perPodRss = (daemon.RssKiB + helperMemory.RssKiB - idle.RssKiB) / 1024.0 / n;
                    double perPodPss = (daemon.PssKiB + helperMemory.PssKiB - idle.PssKiB) / 1024.0 / n;
                    results.Set("mem-per-pod", $"per pod: (daemon + helpers - idle) / {n}, RSS", "MiB", t.Name, perPodRss, goal: PerPodMemoryGoal);
                    results.Set("mem-per-pod-pss", $"per pod, PSS", "MiB", t.Name, perPodPss);
                    results.Set("mem-per-pod-infra", $"per pod incl. pod infra process, RSS", "MiB", t.Name,
                        perPodRss + infraMemory.RssKiB / 1024.0 / n);
                    results.Set("mem-daemon", $"daemon RSS with {n} pods", "MiB", t.Name, daemon.RssKiB / 1024.0);
                    results.Set("mem-helpers", $"helper processes with {n} pods", "count", t.Name, helpers.Count);
                    results.Set("mem-helper-rss", "RSS per helper process", "MiB", t.Name,
                        helpers.Count == 0 ? 0 : helperMemory.RssKiB / 1024.0 / helpers.Count);
                    results.Set("mem-infra", $"pod infra processes with {n} pods", "count", t.Name, infra.Count);
                    if (helpers.Count < n)
                        Log($"{t.Name}: WARNING: found {helpers.Count} helper processes for {n} pods; check --helpers/--helper-match");
                }
                if (options.Runs("list"))
                {
                    if (ids.Count == 0) await StartPodsAsync(t, n, "list", ids, ct);
                    Log($"{t.Name}: a second container in each of {ids.Count} pods");
                    await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct },
                        async (id, token) => await t.AddContainerAsync(id, "sleep2", options.Image, token));
                    await ListLatencyAsync(t, 2 * ids.Count, ct);
                }
            }
            finally
            {
                Log($"{t.Name}: removing {ids.Count} pods");
                await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = CancellationToken.None },
                    async (id, token) => await t.RemovePodAsync(id, token));
            }
        }
    }

    private async Task StartPodsAsync(Target t, int count, string workload, List<string> ids, CancellationToken ct)
    {
        Log($"{t.Name}: starting {count} pods");
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = ct },
            async (_, token) =>
            {
                var s = await t.StartPodAsync(workload, options.Image, token);
                lock (ids) ids.Add(s.PodId);
            });
    }

    private async Task ListLatencyAsync(Target t, int expectedContainers, CancellationToken ct)
    {
        Log($"{t.Name}: {options.ListCalls} ListContainers and ListPodSandbox calls with {expectedContainers} containers");
        var containers = new List<double>();
        var pods = new List<double>();
        int seen = 0;
        // A few untimed calls first, as the kubelet has made thousands before.
        for (int i = 0; i < 5; i++)
        {
            await t.Runtime.ListContainersAsync(new ListContainersRequest(), deadline: Target.Deadline(), cancellationToken: ct);
            await t.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: Target.Deadline(), cancellationToken: ct);
        }
        for (int i = 0; i < options.ListCalls; i++)
        {
            var sw = Stopwatch.StartNew();
            var c = await t.Runtime.ListContainersAsync(new ListContainersRequest(), deadline: Target.Deadline(), cancellationToken: ct);
            containers.Add(sw.Elapsed.TotalMilliseconds);
            seen = c.Containers.Count;
            sw.Restart();
            await t.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: Target.Deadline(), cancellationToken: ct);
            pods.Add(sw.Elapsed.TotalMilliseconds);
        }
        if (seen < expectedContainers)
            throw new InvalidOperationException($"{t.Name}: ListContainers returned {seen} containers, expected at least {expectedContainers}");
        results.Set("list-containers-p50", $"ListContainers p50 ({seen} containers)", "ms", t.Name, SampleStatistics.Median(containers), containers, NoWorseGoal);
        results.Set("list-containers-p90", "ListContainers p90", "ms", t.Name, SampleStatistics.P90(containers));
        results.Set("list-pods-p50", "ListPodSandbox p50", "ms", t.Name, SampleStatistics.Median(pods), pods, NoWorseGoal);
        results.Set("list-pods-p90", "ListPodSandbox p90", "ms", t.Name, SampleStatistics.P90(pods));
    }

    /// <summary>
    /// Cold pull of --large-image (none of its layers on the node but busybox's), then --shared-image (only its
    /// last layer is new), --pull-runs times; both are removed before each run and, with --content-dir, the
    /// daemon's root must shrink back to its size without them first.
    /// </summary>
    public async Task PullAsync(CancellationToken ct)
    {
        foreach (var t in targets)
        {
            await RemoveImagesAsync(t, ct);
            long? baseline = t.Options.ContentDir is { } dir ? await StableSizeAsync(dir, ct) : null;
            var large = new List<double>();
            var shared = new List<double>();
            for (int run = 0; run < options.PullRuns; run++)
            {
                if (run > 0)
                {
                    await RemoveImagesAsync(t, ct);
                    if (baseline is not null) await WaitColdAsync(t, baseline.Value, ct);
                }
                Log($"{t.Name}: cold pull of {options.LargeImage}, then {options.SharedImage} (run {run + 1}/{options.PullRuns})");
                large.Add(await TimedPullAsync(t, options.LargeImage, ct));
                shared.Add(await TimedPullAsync(t, options.SharedImage, ct));
            }
            await RemoveImagesAsync(t, ct);
            results.Set("pull-large", "pull+unpack, large image, cold, median", "ms", t.Name, SampleStatistics.Median(large), large, PullGoal);
            results.Set("pull-shared", "pull+unpack, image sharing its layers, median", "ms", t.Name, SampleStatistics.Median(shared), shared, PullGoal);
            results.Info["endpoints"]![t.Name]!.AsObject()["coldPullVerified"] = baseline is not null;
        }
    }

    private static async Task<double> TimedPullAsync(Target t, string image, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        await t.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = image } }, deadline: Target.Deadline(), cancellationToken: ct);
        return sw.Elapsed.TotalMilliseconds;
    }

    private async Task RemoveImagesAsync(Target t, CancellationToken ct)
    {
        foreach (var image in new[] { options.SharedImage, options.LargeImage })
        {
            try
            {
                await t.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = image } }, deadline: Target.Deadline(), cancellationToken: ct);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
            }
        }
    }

    private static async Task WaitColdAsync(Target t, long baseline, CancellationToken ct)
    {
        const long Slack = 8L << 20;
        var sw = Stopwatch.StartNew();
        long size;
        while ((size = DirectorySize(t.Options.ContentDir!)) > baseline + Slack)
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(60))
                throw new InvalidOperationException(
                    $"{t.Name}: {t.Options.ContentDir} is still {(size - baseline) >> 20} MiB above its size without the pull images " +
                    "60 s after RemoveImage: the daemon keeps their content, so a pull would not be cold");
            await Task.Delay(200, ct);
        }
    }

    private static async Task<long> StableSizeAsync(string dir, CancellationToken ct)
    {
        long last = DirectorySize(dir);
        for (int i = 0; i < 50; i++)
        {
            await Task.Delay(200, ct);
            long now = DirectorySize(dir);
            if (Math.Abs(now - last) < (1L << 20)) return now;
            last = now;
        }
        return last;
    }

    /// <summary>Bytes of regular files under <paramref name="dir"/> (symlinks not followed, vanishing files skipped).</summary>
    public static long DirectorySize(string dir)
    {
        var opts = new EnumerationOptions
        {
            RecurseSubdirectories = true,
            IgnoreInaccessible = true,
            AttributesToSkip = FileAttributes.ReparsePoint,
        };
        long total = 0;
        try
        {
            foreach (var f in new DirectoryInfo(dir).EnumerateFiles("*", opts))
            {
                try
                {
                    total += f.Length;
                }
                catch (IOException)
                {
                }
            }
        }
        catch (DirectoryNotFoundException)
        {
        }
        return total;
    }

    /// <summary>`runc run -d` of a prepared bundle with no daemon (deleted again after each, untimed).</summary>
    public async Task FloorAsync(string workDir, CancellationToken ct)
    {
        if (options.FloorBundle is not { } bundle) return;
        string root = Path.Combine(workDir, "runc-floor-state");
        Directory.CreateDirectory(root);
        Log($"floor: {options.FloorRuns} × runc run -d {bundle}");
        var samples = new List<double>();
        for (int i = 0; i < options.FloorRuns; i++)
        {
            string id = $"criruntime-bench-floor-{Environment.ProcessId}-{i}";
            var sw = Stopwatch.StartNew();
            var (code, stderr) = await RuncAsync(root, ["run", "-d", "--bundle", bundle, id], ct);
            double ms = sw.Elapsed.TotalMilliseconds;
            try
            {
                if (code != 0) throw new InvalidOperationException($"runc run -d {id} failed with {code}: {stderr.Trim()}");
                samples.Add(ms);
            }
            finally
            {
                var (delCode, delErr) = await RuncAsync(root, ["delete", "-f", id], CancellationToken.None);
                if (delCode != 0 && code == 0) Log($"floor: runc delete -f {id} failed: {delErr.Trim()}");
            }
        }
        results.Floor["runs"] = samples.Count;
        results.Floor["medianMs"] = Math.Round(SampleStatistics.Median(samples), 3);
        results.Floor["p90Ms"] = Math.Round(SampleStatistics.P90(samples), 3);
        results.Floor["samplesMs"] = new JsonArray(samples.Select(s => (JsonNode)Math.Round(s, 3)).ToArray());
        results.Floor["runc"] = options.Runc;
    }

    // The container inherits runc's stdio; /dev/null keeps it off our pipes (runc -d would otherwise hold them open).
    private async Task<(int Code, string Stderr)> RuncAsync(string root, string[] args, CancellationToken ct)
    {
        string errFile = Path.Combine(root, $"stderr-{Guid.NewGuid():N}");
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("runc=$0; root=$1; shift; exec \"$runc\" --root \"$root\" \"$@\" </dev/null >/dev/null 2>\"$ERRFILE\"");
        psi.ArgumentList.Add(options.Runc);
        psi.ArgumentList.Add(root);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["ERRFILE"] = errFile;
        using var p = Process.Start(psi)!;
        await p.WaitForExitAsync(ct);
        string err = File.Exists(errFile) ? await File.ReadAllTextAsync(errFile, CancellationToken.None) : "";
        File.Delete(errFile);
        return (p.ExitCode, err);
    }
}
