using System.Diagnostics;
using CriRuntime.IntegrationTests;
using CriRuntime.IntegrationTests.Pods;
using CriRuntime.TestSupport;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace CriRuntime.FuzzTests;

/// <summary>
/// Generated hostile requests to every CRI RPC against the real daemon (runc, conmon, CNI, a loopback registry),
/// in batches. Each request starts from a valid one (a kubelet-like pod or container config, the ids of a live
/// pod and container) and has up to three fields, chosen over the whole descriptor tree, set to hostile values.
/// After each batch: the daemon answers Version on the same connection within a second, no answer was INTERNAL,
/// UNKNOWN or a hang, and every pod the batch made can be removed. At the end everything is removed and nothing
/// is left: no record, mount, process, cgroup, IP or veth, nothing outside the daemon's dirs and the paths the
/// requests named. The seed is printed; <see cref="FuzzRun"/> tells how to rerun one.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class FuzzSuiteTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private const int BatchSize = 20;
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan VersionLimit = TimeSpan.FromSeconds(1);

    /// <summary>RPCs with many fields get more of the requests, so each field is hit about as often as a simple RPC's.</summary>
    private static readonly Dictionary<string, int> Weights = new(StringComparer.Ordinal)
    {
        ["RunPodSandbox"] = 8,
        ["CreateContainer"] = 10,
        ["UpdateContainerResources"] = 3,
        ["ExecSync"] = 2,
        ["PullImage"] = 2,
        ["ListContainers"] = 2,
        ["ListPodSandbox"] = 2,
    };

    private readonly List<string> madePodIds = [];
    private readonly List<string> madeContainerIds = [];
    private readonly List<string> madeUids = [];
    // Every pod and container id the run ever made (madePodIds is emptied as pods are removed after each batch).
    private readonly HashSet<string> everMadeIds = new(StringComparer.Ordinal);
    private readonly HashSet<string> sentCgroupParents = new(StringComparer.Ordinal);
    private TestPod? fixturePod;
    private string? fixtureContainer;
    private string? imageId;
    private int nameCounter;

    [Fact]
    public async Task Hostile_requests_to_every_rpc_get_the_right_codes_and_leave_nothing_behind()
    {
        var run = FuzzRun.FromEnvironment();
        Output.WriteLine($"fuzz seed {run.Seed}, budget {run.Budget.TotalSeconds} s (rerun: {run.RerunHint})");
        string scratch = $"/tmp/{run.Token}";
        string daemonCwd = Environment.CurrentDirectory;
        var hostBefore = HostSnapshot.Take([daemonCwd]);

        // Every registry but the test one resolves to a closed loopback port: a fuzzed image name never leaves the host.
        string certs = TempDir("criruntime-fuzz-certs-");
        Directory.CreateDirectory(Path.Combine(certs, Registry.Host));
        Directory.CreateDirectory(Path.Combine(certs, "_default"));
        await File.WriteAllTextAsync(Path.Combine(certs, "_default", "hosts.toml"), "server = \"http://127.0.0.1:9\"\n");
        var daemon = await StartPodDaemonAsync($"\n[registry]\nconfig_path = \"{certs}\"\n");

        var rng = new Random(run.Seed);
        var values = new HostileValues(run.Token, scratch, LiveIds);
        var mutator = new RequestMutator(values);
        var caller = new DynamicCaller(daemon.Channel);
        var findings = new Findings(run);
        var methods = DynamicCaller.AllMethods
            .SelectMany(m => Enumerable.Repeat(m, Weights.GetValueOrDefault(m.Name, 1)))
            .ToList();
        Output.WriteLine($"{DynamicCaller.AllMethods.Count} RPCs; {DynamicCaller.AllMethods.Sum(m => mutator.Paths(m.InputType).Count)} field paths in their requests");

        var deck = new List<MethodDescriptor>();
        var clock = Stopwatch.StartNew();
        int sent = 0;
        var perRpc = new Dictionary<string, int>(StringComparer.Ordinal);
        try
        {
            while (clock.Elapsed < run.Budget && sent < run.MaxRequests)
            {
                await EnsureFixturesAsync();
                for (int i = 0; i < BatchSize && sent < run.MaxRequests; i++, sent++)
                {
                    // Dealt from a shuffled deck of the weighted RPCs: every RPC comes up once per deck, whatever the seed.
                    if (deck.Count == 0) deck.AddRange(methods.OrderBy(_ => rng.Next()));
                    var method = deck[^1];
                    deck.RemoveAt(deck.Count - 1);
                    var request = Baseline(method);
                    int count = rng.Next(10) == 0 ? 0 : 1 + rng.Next(3);
                    var mutations = mutator.Mutate(request, rng, count);
                    Remember(method, request);
                    // A stop with a grace period longer than the call's deadline waits that long (busybox sleep as
                    // PID 1 ignores SIGTERM) by design: such a call gets a short deadline, which cancels the wait.
                    bool waitsByDesign = request is StopContainerRequest { Timeout: > 10 };
                    var outcome = await caller.CallAsync(method, request, waitsByDesign ? TimeSpan.FromSeconds(2) : CallTimeout);
                    if (waitsByDesign && outcome.Code == StatusCode.DeadlineExceeded) outcome = outcome with { Code = StatusCode.OK, Detail = "(waited the grace period until the deadline)" };
                    perRpc[method.Name] = perRpc.GetValueOrDefault(method.Name) + 1;
                    Learn(method, request, outcome);
                    findings.Judge(sent, method, mutations, request.CalculateSize(), outcome);
                }
                await AfterBatchAsync(caller, findings, sent);
            }
        }
        finally
        {
            Output.WriteLine($"sent {sent} requests in {clock.Elapsed.TotalSeconds:0} s: " +
                string.Join(", ", perRpc.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}")));
            Output.WriteLine(findings.Summary());
        }
        var unsent = DynamicCaller.AllMethods.Select(m => m.Name).Where(n => !perRpc.ContainsKey(n)).ToList();

        // Remove everything, as the kubelet would after the last pod goes.
        await RemoveEverythingAsync(caller, findings);
        var leaks = await LeaksAsync(daemon, hostBefore, run, scratch, daemonCwd);
        CleanUpHost(scratch, hostBefore, run);

        var problems = new List<string>();
        if (findings.Violations.Count > 0)
            problems.Add($"{findings.Violations.Count} wrong answers:\n" + string.Join('\n', findings.Violations.Take(40)));
        if (leaks.Count > 0)
            problems.Add($"{leaks.Count} things left after removing everything:\n" + string.Join('\n', leaks.Take(60)));
        if (unsent.Count > 0 && sent >= methods.Count)
            problems.Add($"RPCs never called in {sent} requests: {string.Join(", ", unsent)}");
        if (problems.Count > 0)
            throw Failure($"fuzz seed {run.Seed} (rerun: {run.RerunHint}):\n" + string.Join("\n\n", problems));
    }

    // ---- the valid requests mutations start from

    private IReadOnlyList<string> LiveIds()
    {
        var ids = new List<string>();
        if (fixturePod is not null) ids.Add(fixturePod.Id);
        if (fixtureContainer is not null) ids.Add(fixtureContainer);
        if (imageId is not null) ids.Add(imageId);
        ids.Add(BusyboxImage);
        return ids;
    }

    /// <summary>A pod with one running container, which most baselines point at; made again when a request removed it.</summary>
    private async Task EnsureFixturesAsync()
    {
        var image = await Daemon.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = BusyboxImage } }, deadline: Deadline());
        if (image.Image is null) await PullAsync(Daemon, BusyboxImage);
        imageId = (await Daemon.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = BusyboxImage } }, deadline: Deadline())).Image?.Id;

        bool podReady = false;
        if (fixturePod is not null)
        {
            try
            {
                var status = await Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = fixturePod.Id }, deadline: Deadline());
                podReady = status.Status.State == PodSandboxState.SandboxReady;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
            }
        }
        if (!podReady)
        {
            fixturePod = await RunPodAsync($"fz-fixture-{nameCounter++}");
            lock (madePodIds) madePodIds.Add(fixturePod.Id);
            lock (everMadeIds) everMadeIds.Add(fixturePod.Id);
            fixtureContainer = null;
        }

        bool containerRunning = false;
        if (fixtureContainer is not null)
        {
            try
            {
                var status = await Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = fixtureContainer }, deadline: Deadline());
                containerRunning = status.Status.State == ContainerState.ContainerRunning;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
            {
            }
        }
        if (!containerRunning)
        {
            fixtureContainer = await CreateAndStartAsync(fixturePod!, $"fixture-{nameCounter++}", ["sleep", "3600"]);
            lock (madeContainerIds) madeContainerIds.Add(fixtureContainer);
            lock (everMadeIds) everMadeIds.Add(fixtureContainer);
        }
    }

    /// <summary>
    /// A request that would succeed (or fail only for the state it finds): kubelet-like configs for the creating
    /// RPCs, the fixture's ids in every id field, the test image in every image field.
    /// </summary>
    private IMessage Baseline(MethodDescriptor method)
    {
        var pod = fixturePod!;
        switch (method.Name)
        {
            case "RunPodSandbox":
                return new RunPodSandboxRequest { Config = NewPodConfig($"fz-{nameCounter++}") };
            case "CreateContainer":
                return new CreateContainerRequest
                {
                    PodSandboxId = pod.Id,
                    Config = NewContainerConfig(pod.Config, $"c{nameCounter++}", BusyboxImage, ["sleep", "3600"]),
                    // A copy: mutations of the request must not change the fixture's own config.
                    SandboxConfig = pod.Config.Clone(),
                };
            case "ExecSync":
                return new ExecSyncRequest { ContainerId = fixtureContainer, Cmd = { "true" }, Timeout = 10 };
            case "UpdateContainerResources":
                return new UpdateContainerResourcesRequest { ContainerId = fixtureContainer, Linux = new LinuxContainerResources { CpuShares = 2 } };
            case "PullImage" or "ImageStatus" or "RemoveImage":
            {
                var request = RequestMutator.NewMessage(method.InputType);
                method.InputType.FindFieldByName("image").Accessor.SetValue(request, new ImageSpec { Image = BusyboxImage });
                return request;
            }
        }
        var message = RequestMutator.NewMessage(method.InputType);
        foreach (var field in method.InputType.Fields.InFieldNumberOrder())
        {
            if (field.FieldType != FieldType.String || field.IsRepeated) continue;
            if (field.Name.EndsWith("pod_sandbox_id", StringComparison.Ordinal)) field.Accessor.SetValue(message, pod.Id);
            else if (field.Name.EndsWith("container_id", StringComparison.Ordinal)) field.Accessor.SetValue(message, fixtureContainer ?? "");
        }
        return message;
    }

    /// <summary>Notes what a request may make before it is sent: the pod's uid and cgroup parent, so a half-made pod is still found.</summary>
    private void Remember(MethodDescriptor method, IMessage request)
    {
        if (request is RunPodSandboxRequest run && run.Config is { } config)
        {
            string uid = config.Metadata?.Uid ?? "";
            if (uid.Length is > 0 and < 256)
            {
                lock (madeUids) madeUids.Add(uid);
                TrackPod(uid);
            }
            string parent = config.Linux?.CgroupParent ?? "";
            if (parent.Length is > 0 and < 4096) lock (sentCgroupParents) sentCgroupParents.Add(parent);
        }
    }

    /// <summary>Notes what a request made: pods and containers, to remove and look for afterwards.</summary>
    private void Learn(MethodDescriptor method, IMessage request, CallOutcome outcome)
    {
        if (outcome.Response is RunPodSandboxResponse { PodSandboxId.Length: > 0 } ran)
        {
            lock (madePodIds) madePodIds.Add(ran.PodSandboxId);
            lock (everMadeIds) everMadeIds.Add(ran.PodSandboxId);
            string uid = ((RunPodSandboxRequest)request).Config?.Metadata?.Uid ?? "";
            if (uid.Length is > 0 and < 256) TrackPod(uid, ran.PodSandboxId);
        }
        if (outcome.Response is CreateContainerResponse { ContainerId.Length: > 0 } created)
            lock (madeContainerIds) madeContainerIds.Add(created.ContainerId);
        if (outcome.Response is CreateContainerResponse { ContainerId.Length: > 0 } createdToo)
            lock (everMadeIds) everMadeIds.Add(createdToo.ContainerId);
    }

    // ---- after each batch

    private async Task AfterBatchAsync(DynamicCaller caller, Findings findings, int sent)
    {
        if (Daemon.HasExited)
            throw Failure($"the daemon exited during the batch ending at request {sent}\n{findings.Last(BatchSize)}");

        // Version on the same connection as the fuzzed calls. The CI host is shared (2 cores, other suites beside
        // this one), so one slow answer is retried twice before it counts: a stalled daemon fails all three.
        var tries = new List<TimeSpan>();
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var sw = Stopwatch.StartNew();
            try
            {
                await Runtime.VersionAsync(new VersionRequest(), deadline: DateTime.UtcNow + TimeSpan.FromSeconds(5));
            }
            catch (RpcException e)
            {
                throw Failure($"Version failed after the batch ending at request {sent}: {e.StatusCode}: {e.Status.Detail}\n{findings.Last(BatchSize)}");
            }
            tries.Add(sw.Elapsed);
            if (sw.Elapsed < VersionLimit) break;
        }
        if (tries.All(t => t >= VersionLimit))
            throw Failure($"Version took {string.Join(", ", tries.Select(t => $"{t.TotalMilliseconds:0} ms"))} after the batch ending at request {sent}\n{findings.Last(BatchSize)}");

        // Every pod the batch made (but the fixture) goes now: removal of a pod with a hostile config is judged too.
        var podIds = new List<string>();
        lock (madePodIds) podIds.AddRange(madePodIds);
        try
        {
            var listed = await Runtime.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: Deadline());
            podIds.AddRange(listed.Items.Select(p => p.Id));
        }
        catch (RpcException e)
        {
            findings.Cleanup("ListPodSandbox", "", e.StatusCode, e.Status.Detail);
        }
        foreach (var id in podIds.Distinct().Where(id => id != fixturePod?.Id))
            await RemovePodJudgedAsync(caller, findings, id);
        lock (madePodIds) madePodIds.RemoveAll(id => id != fixturePod?.Id);
    }

    private async Task RemovePodJudgedAsync(DynamicCaller caller, Findings findings, string id)
    {
        foreach (var (name, request) in new (string, IMessage)[]
                 {
                     ("StopPodSandbox", new StopPodSandboxRequest { PodSandboxId = id }),
                     ("RemovePodSandbox", new RemovePodSandboxRequest { PodSandboxId = id }),
                 })
        {
            var method = DynamicCaller.AllMethods.Single(m => m.Name == name);
            var outcome = await caller.CallAsync(method, request, TimeSpan.FromSeconds(60));
            // The pod exists (or did a moment ago): anything but OK is a failed clean-up, NotFound included only if another call removed it.
            if (outcome.Code is not (StatusCode.OK or StatusCode.NotFound))
                findings.Cleanup(name, id, outcome.Code, outcome.Detail);
        }
    }

    // ---- the end

    private async Task RemoveEverythingAsync(DynamicCaller caller, Findings findings)
    {
        var containers = new List<string>();
        lock (madeContainerIds) containers.AddRange(madeContainerIds);
        try
        {
            containers.AddRange((await Runtime.ListContainersAsync(new ListContainersRequest(), deadline: Deadline())).Containers.Select(c => c.Id));
        }
        catch (RpcException e)
        {
            findings.Cleanup("ListContainers", "", e.StatusCode, e.Status.Detail);
        }
        foreach (var id in containers.Distinct())
        {
            var outcome = await caller.CallAsync(DynamicCaller.AllMethods.Single(m => m.Name == "RemoveContainer"),
                new RemoveContainerRequest { ContainerId = id }, TimeSpan.FromSeconds(60));
            if (outcome.Code is not (StatusCode.OK or StatusCode.NotFound)) findings.Cleanup("RemoveContainer", id, outcome.Code, outcome.Detail);
        }
        var pods = new List<string>();
        lock (madePodIds) pods.AddRange(madePodIds);
        pods.AddRange((await Runtime.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: Deadline())).Items.Select(p => p.Id));
        foreach (var id in pods.Distinct()) await RemovePodJudgedAsync(caller, findings, id);
        fixturePod = null;
        fixtureContainer = null;
    }

    /// <summary>Everything the run left after the removals, as one line each.</summary>
    private async Task<List<string>> LeaksAsync(DaemonProcess d, HostSnapshot before, FuzzRun run, string scratch, string daemonCwd)
    {
        var leaks = new List<string>();
        var pods = (await Runtime.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: Deadline())).Items;
        leaks.AddRange(pods.Select(p => $"pod record still listed: {p.Id} ({HostileValues.Describe(p.Metadata?.Name ?? "")})"));
        var containers = (await Runtime.ListContainersAsync(new ListContainersRequest(), deadline: Deadline())).Containers;
        leaks.AddRange(containers.Select(c => $"container record still listed: {c.Id}"));

        List<string> ids, uids;
        lock (madePodIds) lock (madeContainerIds) lock (madeUids)
        {
            ids = [.. madePodIds, .. madeContainerIds];
            uids = [.. madeUids];
        }
        lock (everMadeIds) ids.AddRange(everMadeIds);
        // Ids seen over the whole run: removed pods are no longer in madePodIds, so gather them from the daemon's dirs' names too.
        var allIds = ids.Concat(KnownObjectIds(d)).Distinct().ToList();

        List<HostState.HostProcess> Stray() =>
            HostState.ProcessesMentioning(d.Root).Concat(HostState.ProcessesMentioning(d.State))
                // The fixture's pods live under kubepods/besteffort/pod<uid>; a bare uid such as "/" would match every cgroup.
                .Concat(uids.SelectMany(u => HostState.ProcessesInCgroupsContaining("/pod" + u)))
                .Concat(HostState.ProcessesMentioning(run.Token))
                .Where(p => p.Pid != d.ProcessId)
                .DistinctBy(p => p.Pid)
                .ToList();
        if (Stray().Count > 0) await EventuallyAsync(() => Stray().Count == 0, TimeSpan.FromSeconds(5));
        leaks.AddRange(Stray().Select(p => $"process left: {p}"));

        var after = HostSnapshot.Take([daemonCwd]);
        foreach (var mount in HostState.Mounts().Where(m => !before.MountPoints.Contains(m.MountPoint)))
        {
            bool ours = mount.MountPoint.StartsWith(d.BaseDir + "/", StringComparison.Ordinal) || mount.MountPoint.Contains(run.Token, StringComparison.Ordinal)
                || allIds.Any(id => mount.MountPoint.Contains(id, StringComparison.Ordinal));
            if (ours) leaks.Add($"mount left: {mount}");
        }
        foreach (var dir in new[] { d.Root, d.State })
            leaks.AddRange(HostState.PathsNaming(dir, ids).Select(p => $"file left: {p}"));

        foreach (var cgroup in after.CgroupDirs.Where(c => !before.CgroupDirs.Contains(c)))
        {
            // A pod's or container's own cgroup is a leak; a parent on the way to one that a request named is #13 item 5.
            if (IsNamedCgroup(cgroup, new FuzzRun(-1, TimeSpan.Zero, 0), allIds, uids)) leaks.Add($"cgroup left: {cgroup}");
            else if (IsSentParentCgroup(cgroup)) leaks.Add($"cgroup parent the daemon made for a pod left: {cgroup}");
            else if (IsNamedCgroup(cgroup, run, [], [])) leaks.Add($"cgroup left: {cgroup}");
        }
        foreach (var uid in uids)
            foreach (var dir in HostState.CgroupDirsAt($"kubepods/besteffort/pod{uid}").Where(c => !c.EndsWith("/pod" + uid, StringComparison.Ordinal)))
                leaks.Add($"container cgroup left: {dir}");

        leaks.AddRange(Network.ReservedAddresses().Select(f => $"host-local IP still reserved: {f}"));
        leaks.AddRange(Network.BridgePorts().Select(p => $"veth still on bridge {Network.BridgeName}: {p}"));

        foreach (var entry in after.Entries.Where(e => !before.Entries.Contains(e)))
        {
            string parent = Path.GetDirectoryName(entry) ?? "/";
            bool named = entry.Contains(run.Token, StringComparison.Ordinal) || allIds.Any(id => entry.Contains(id, StringComparison.Ordinal));
            // The scratch dir is where the requests' absolute made-up paths point: the daemon may create what they name there.
            if (entry == scratch) continue;
            if (named || (HostSnapshot.StrictDirs.Contains(parent) && !HostSnapshot.IsOtherActivity(entry)) || parent == daemonCwd.TrimEnd('/'))
                leaks.Add($"created outside the daemon's dirs: {entry}");
        }
        return leaks;
    }

    private static bool IsNamedCgroup(string dir, FuzzRun run, IReadOnlyList<string> ids, IReadOnlyList<string> uids) =>
        dir.Contains(run.Token, StringComparison.Ordinal) ||
        ids.Any(id => dir.Contains(id, StringComparison.Ordinal)) || uids.Any(u => dir.Contains(u, StringComparison.Ordinal));

    private bool IsOurCgroup(string dir, FuzzRun run, IReadOnlyList<string> ids, IReadOnlyList<string> uids) =>
        IsNamedCgroup(dir, run, ids, uids) || IsSentParentCgroup(dir);

    /// <summary>A new first- or second-level cgroup that a cgroup_parent this run sent leads to.</summary>
    private bool IsSentParentCgroup(string dir)
    {
        string relative = string.Join('/', dir.Split('/').Skip(5));
        lock (sentCgroupParents)
            return relative.Length > 0 && sentCgroupParents.Any(p => ("/" + p.Trim('/') + "/").StartsWith("/" + relative + "/", StringComparison.Ordinal));
    }

    /// <summary>Pod and container ids the daemon ever held: the names of its per-object dirs (they go when the object goes, so only those left are found).</summary>
    private static IEnumerable<string> KnownObjectIds(DaemonProcess d)
    {
        foreach (var dir in new[] { Path.Combine(d.State, "pods"), Path.Combine(d.State, "containers"), Path.Combine(d.Root, "pods"), Path.Combine(d.Root, "containers") })
        {
            if (!Directory.Exists(dir)) continue;
            foreach (var entry in Directory.EnumerateFileSystemEntries(dir))
                if (Path.GetFileName(entry).Length == 64) yield return Path.GetFileName(entry);
        }
    }

    /// <summary>Removes what the run made on the host outside the daemon's dirs, so the next run (and the host) start clean.</summary>
    private void CleanUpHost(string scratch, HostSnapshot before, FuzzRun run)
    {
        foreach (var mount in HostState.Mounts().Where(m => m.MountPoint.Contains(run.Token, StringComparison.Ordinal)).OrderByDescending(m => m.MountPoint.Length))
            HostCommand.RunAsync("umount", ["-l", mount.MountPoint]).GetAwaiter().GetResult();
        try
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Output.WriteLine($"cleanup: {scratch}: {e.Message}");
        }
        var after = HostSnapshot.Take([]);
        List<string> uids;
        lock (madeUids) uids = [.. madeUids];
        foreach (var cgroup in after.CgroupDirs.Where(c => !before.CgroupDirs.Contains(c) && IsOurCgroup(c, run, [], uids)).OrderByDescending(c => c.Length))
        {
            List<string> dirs;
            try
            {
                dirs = [.. Directory.EnumerateDirectories(cgroup, "*", SearchOption.AllDirectories).OrderByDescending(p => p.Length).Append(cgroup)];
            }
            catch (DirectoryNotFoundException)
            {
                continue; // already gone: cpu and cpuacct (and net_cls, net_prio) are one hierarchy under two names.
            }
            foreach (var dir in dirs)
            {
                try
                {
                    Directory.Delete(dir);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    Output.WriteLine($"cleanup: cgroup {dir}: {e.Message}");
                }
            }
        }
    }
}
