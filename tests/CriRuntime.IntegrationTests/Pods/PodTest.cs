using System.Diagnostics;
using System.Net;
using System.Text.Json;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>A pod this test started: its id and the exact config it was started with.</summary>
public sealed record TestPod(string Id, PodSandboxConfig Config)
{
    public string Uid => Config.Metadata.Uid;
    public string LogDirectory => Config.LogDirectory;

    /// <summary>The cgroup parent the kubelet would give a BestEffort pod (cgroupfs driver).</summary>
    public string CgroupParent => Config.Linux.CgroupParent;
}

/// <summary>
/// Base for end-to-end pod and container tests: a CNI network of the test's own, a daemon wired to it
/// (runc and crun handlers, conmon) with the busybox test image pulled, kubelet-like pod and container
/// configs, RPC helpers whose failures carry the daemon's log tail, and cleanup that stops and removes
/// every pod (and, if the daemon could not, kills, unmounts and deletes what it left) even when the
/// test failed.
/// </summary>
public abstract class PodTest(RegistryFixture registry, ITestOutputHelper output) : DaemonTest(output)
{
    /// <summary>How long a container may take to reach a state after the call that causes it.</summary>
    public static readonly TimeSpan StateTimeout = TimeSpan.FromSeconds(30);

    public const string PodNamespace = "criruntime-test";

    private const string RuntimeConfig = """
        [runtime]
        default_handler = "runc"
        conmon = "/usr/bin/conmon"

        [runtime.handlers.runc]
        path = "/usr/sbin/runc"

        [runtime.handlers.crun]
        path = "/usr/bin/crun"

        """;

    private static readonly string[] CgroupParentLevels = ["kubepods", "kubepods/besteffort"];

    private readonly object gate = new();
    private readonly List<DaemonProcess> podDaemons = [];
    private readonly List<string> podIds = [];
    private readonly List<string> podUids = [];
    private readonly HashSet<string> cgroupParentsBefore = new(StringComparer.Ordinal);
    private CniTestNetwork? network;
    private DaemonProcess? daemon;

    /// <summary>When this test began: every CRI timestamp it sees must be later.</summary>
    protected DateTime TestStart { get; } = DateTime.UtcNow;

    protected RegistryFixture Registry => registry;

    protected CniTestNetwork Network => network ?? throw new InvalidOperationException("InitializeAsync has not run");

    /// <summary>The daemon the test talks to now (the restarted one after a restart).</summary>
    protected DaemonProcess Daemon => daemon ?? throw new InvalidOperationException("call StartPodDaemonAsync first");

    protected RuntimeService.RuntimeServiceClient Runtime => Daemon.Runtime;

    /// <summary>The standard busybox test image (applets: <see cref="TestImages.Applets"/>; others via /bin/busybox NAME).</summary>
    protected string BusyboxImage => registry.Ref("busybox:latest");

    /// <summary>PullImageResponse.image_ref of <see cref="BusyboxImage"/>.</summary>
    protected string BusyboxImageRef { get; private set; } = "";

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        foreach (var hierarchy in HostState.CgroupHierarchies())
            foreach (var level in CgroupParentLevels)
                if (Directory.Exists(Path.Combine(hierarchy, level))) cgroupParentsBefore.Add(Path.Combine(hierarchy, level));
        network = CniTestNetwork.Create();
    }

    // ---- daemon

    /// <summary>Starts a daemon on this test's network with the runc and crun handlers, and pulls busybox.</summary>
    /// <param name="runtimeKeys">Lines added to the [runtime] table (it cannot be reopened in <paramref name="extraConfig"/>).</param>
    protected async Task<DaemonProcess> StartPodDaemonAsync(string? extraConfig = null, string? runtimeKeys = null)
    {
        string runtimeConfig = RuntimeConfig.Replace("[runtime]\n", "[runtime]\n" + (runtimeKeys is null ? "" : runtimeKeys.TrimEnd('\n') + "\n"), StringComparison.Ordinal);
        var d = await StartDaemonAsync(Network.DaemonConfig + "\n" + runtimeConfig + (extraConfig ?? ""));
        lock (gate) podDaemons.Add(d);
        daemon = d;
        BusyboxImageRef = await PullAsync(d, BusyboxImage);
        return d;
    }

    /// <summary>Starts the daemon again on its dirs (after <see cref="DaemonProcess.KillAsync"/>); later calls go to it.</summary>
    protected async Task<DaemonProcess> RestartPodDaemonAsync(DaemonProcess stopped)
    {
        var d = await RestartDaemonAsync(stopped);
        lock (gate) podDaemons.Add(d);
        daemon = d;
        return d;
    }

    // ---- configs

    /// <summary>
    /// A PodSandboxConfig as the kubelet sends it for a BestEffort pod: metadata with a fresh uid, hostname,
    /// a log directory of its own, the kubelet's pod labels, cgroup parent /kubepods/besteffort/pod&lt;uid&gt;,
    /// and namespace options network=POD, pid=CONTAINER, ipc=POD.
    /// </summary>
    protected PodSandboxConfig NewPodConfig(string name, uint attempt = 0)
    {
        string uid = Guid.NewGuid().ToString();
        return new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = name, Uid = uid, Namespace = PodNamespace, Attempt = attempt },
            Hostname = name,
            LogDirectory = TempDir("criruntime-podlogs-"),
            Labels =
            {
                ["io.kubernetes.pod.name"] = name,
                ["io.kubernetes.pod.namespace"] = PodNamespace,
                ["io.kubernetes.pod.uid"] = uid,
            },
            Linux = new LinuxPodSandboxConfig
            {
                CgroupParent = $"/kubepods/besteffort/pod{uid}",
                SecurityContext = new LinuxSandboxSecurityContext
                {
                    NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Pod, Pid = NamespaceMode.Container, Ipc = NamespaceMode.Pod },
                },
            },
        };
    }

    /// <summary>
    /// A ContainerConfig as the kubelet sends it: metadata, image, command/args, log_path "NAME/0.log" (the
    /// kubelet creates the NAME directory under the pod's log directory, so this does too), the container-name
    /// label, BestEffort resources, and the pod's namespace options.
    /// </summary>
    protected static ContainerConfig NewContainerConfig(PodSandboxConfig podConfig, string name, string image,
        IReadOnlyList<string> command, IReadOnlyList<string>? args = null)
    {
        Directory.CreateDirectory(Path.Combine(podConfig.LogDirectory, name));
        var config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = name, Attempt = 0 },
            Image = new ImageSpec { Image = image },
            Command = { command },
            LogPath = $"{name}/0.log",
            Labels = { ["io.kubernetes.container.name"] = name },
            Linux = new LinuxContainerConfig
            {
                Resources = new LinuxContainerResources { CpuShares = 2, OomScoreAdj = 1000 },
                SecurityContext = new LinuxContainerSecurityContext
                {
                    NamespaceOptions = podConfig.Linux?.SecurityContext?.NamespaceOptions?.Clone() ?? new NamespaceOption(),
                },
            },
        };
        if (args is not null) config.Args.Add(args);
        return config;
    }

    // ---- pods

    /// <summary>Runs a pod from <see cref="NewPodConfig"/>, changed by <paramref name="configure"/>.</summary>
    protected Task<TestPod> RunPodAsync(string name, Action<PodSandboxConfig>? configure = null, string runtimeHandler = "")
    {
        var config = NewPodConfig(name);
        configure?.Invoke(config);
        return RunPodAsync(config, runtimeHandler);
    }

    /// <summary>RunPodSandbox with exactly <paramref name="config"/>; the pod is removed after the test.</summary>
    protected async Task<TestPod> RunPodAsync(PodSandboxConfig config, string runtimeHandler = "")
    {
        // Recorded first so cleanup finds the pod's cgroups even if RunPodSandbox fails half-way.
        lock (gate) podUids.Add(config.Metadata.Uid);
        var response = await CallAsync($"RunPodSandbox({config.Metadata.Name}, handler \"{runtimeHandler}\")",
            dl => Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config, RuntimeHandler = runtimeHandler }, deadline: dl));
        Assert.False(string.IsNullOrEmpty(response.PodSandboxId), "RunPodSandbox returned an empty pod_sandbox_id");
        lock (gate) podIds.Add(response.PodSandboxId);
        return new TestPod(response.PodSandboxId, config);
    }

    /// <summary>
    /// Records a pod made by another client (crictl) so cleanup stops, removes and sweeps it as its own: call with
    /// the uid before RunPodSandbox (its cgroups are found by uid even if the call fails half-way), then with the id.
    /// </summary>
    protected void TrackPod(string uid, string? podId = null)
    {
        lock (gate)
        {
            if (!podUids.Contains(uid)) podUids.Add(uid);
            if (podId is not null && !podIds.Contains(podId)) podIds.Add(podId);
        }
    }

    protected Task<PodSandboxStatusResponse> PodStatusAsync(string podId, bool verbose = false) =>
        CallAsync($"PodSandboxStatus({podId})",
            dl => Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = podId, Verbose = verbose }, deadline: dl));

    /// <summary>The pod's primary IP (PodSandboxStatus.network.ip), checked to be in this test's subnet.</summary>
    protected async Task<IPAddress> PodIpAsync(string podId)
    {
        var status = (await PodStatusAsync(podId)).Status;
        string ip = status.Network?.Ip ?? "";
        Assert.True(IPAddress.TryParse(ip, out var address), $"PodSandboxStatus.network.ip is \"{ip}\", not an IP address");
        Assert.True(Network.Contains(address), $"pod IP {address} is not in the test network's subnet {Network.Subnet}");
        return address;
    }

    protected Task StopPodAsync(string podId) =>
        CallAsync($"StopPodSandbox({podId})", dl => Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }, deadline: dl));

    protected Task RemovePodAsync(string podId) =>
        CallAsync($"RemovePodSandbox({podId})", dl => Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }, deadline: dl));

    // ---- containers

    /// <summary>CreateContainer from <see cref="NewContainerConfig"/>, changed by <paramref name="configure"/>.</summary>
    protected async Task<string> CreateContainerAsync(string podId, PodSandboxConfig podConfig, string containerName, string image,
        IReadOnlyList<string> command, IReadOnlyList<string>? args = null, Action<ContainerConfig>? configure = null)
    {
        var config = NewContainerConfig(podConfig, containerName, image, command, args);
        configure?.Invoke(config);
        var response = await CallAsync($"CreateContainer({containerName} in {podId})",
            dl => Runtime.CreateContainerAsync(new CreateContainerRequest { PodSandboxId = podId, Config = config, SandboxConfig = podConfig }, deadline: dl));
        Assert.False(string.IsNullOrEmpty(response.ContainerId), "CreateContainer returned an empty container_id");
        return response.ContainerId;
    }

    /// <summary>CreateContainer then StartContainer; returns the container id.</summary>
    protected async Task<string> CreateAndStartAsync(string podId, PodSandboxConfig podConfig, string containerName, string image,
        IReadOnlyList<string> command, IReadOnlyList<string>? args = null, Action<ContainerConfig>? configure = null)
    {
        string id = await CreateContainerAsync(podId, podConfig, containerName, image, command, args, configure);
        await StartContainerAsync(id);
        return id;
    }

    /// <summary>Busybox container in <paramref name="pod"/> running <paramref name="command"/>, created and started.</summary>
    protected Task<string> CreateAndStartAsync(TestPod pod, string containerName, IReadOnlyList<string> command, Action<ContainerConfig>? configure = null) =>
        CreateAndStartAsync(pod.Id, pod.Config, containerName, BusyboxImage, command, null, configure);

    /// <summary>["sh", "-c", script].</summary>
    protected static IReadOnlyList<string> Sh(string script) => ["sh", "-c", script];

    protected Task StartContainerAsync(string containerId) =>
        CallAsync($"StartContainer({containerId})", dl => Runtime.StartContainerAsync(new StartContainerRequest { ContainerId = containerId }, deadline: dl));

    protected Task StopContainerAsync(string containerId, long timeoutSeconds) =>
        CallAsync($"StopContainer({containerId}, timeout {timeoutSeconds})",
            dl => Runtime.StopContainerAsync(new StopContainerRequest { ContainerId = containerId, Timeout = timeoutSeconds }, deadline: dl));

    protected Task RemoveContainerAsync(string containerId) =>
        CallAsync($"RemoveContainer({containerId})", dl => Runtime.RemoveContainerAsync(new RemoveContainerRequest { ContainerId = containerId }, deadline: dl));

    protected Task<ContainerStatusResponse> ContainerStatusAsync(string containerId, bool verbose = false) =>
        CallAsync($"ContainerStatus({containerId})",
            dl => Runtime.ContainerStatusAsync(new ContainerStatusRequest { ContainerId = containerId, Verbose = verbose }, deadline: dl));

    /// <summary>Polls ContainerStatus until the container is in <paramref name="state"/>; fails with the last status.</summary>
    protected async Task<ContainerStatus> WaitForStateAsync(string containerId, ContainerState state, TimeSpan? timeout = null)
    {
        var limit = timeout ?? StateTimeout;
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var status = (await ContainerStatusAsync(containerId)).Status;
            if (status.State == state) return status;
            if (sw.Elapsed > limit)
                throw Failure($"container {containerId} is still {status.State} after {limit}, expected {state}; last status: {status}");
            await Task.Delay(100);
        }
    }

    /// <summary>Polls ContainerStatus until the container is EXITED.</summary>
    protected Task<ContainerStatus> WaitForExitAsync(string containerId, TimeSpan? timeout = null) =>
        WaitForStateAsync(containerId, ContainerState.ContainerExited, timeout);

    /// <summary>
    /// The container's init pid on the host, from verbose ContainerStatus: info["info"] is a JSON object with
    /// "pid", as containerd and CRI-O report it (and crictl inspect shows).
    /// </summary>
    protected async Task<int> ContainerPidAsync(string containerId)
    {
        var response = await ContainerStatusAsync(containerId, verbose: true);
        if (!response.Info.TryGetValue("info", out var json))
            throw Failure($"verbose ContainerStatus({containerId}) has no info[\"info\"]; info keys: [{string.Join(", ", response.Info.Keys)}]");
        using var doc = JsonDocument.Parse(json);
        if (!doc.RootElement.TryGetProperty("pid", out var pid) || !pid.TryGetInt32(out int value) || value <= 0)
            throw Failure($"verbose ContainerStatus({containerId}) info[\"info\"] has no positive \"pid\": {json}");
        return value;
    }

    protected Task<ExecSyncResponse> ExecSyncAsync(string containerId, IReadOnlyList<string> cmd, long timeoutSeconds = 0) =>
        CallAsync($"ExecSync({containerId}, [{string.Join(' ', cmd)}])",
            dl => Runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = containerId, Cmd = { cmd }, Timeout = timeoutSeconds }, deadline: dl));

    /// <summary>ExecSync that must exit 0; returns its stdout.</summary>
    protected async Task<string> ExecOkAsync(string containerId, params string[] cmd)
    {
        var r = await ExecSyncAsync(containerId, cmd, timeoutSeconds: 30);
        if (r.ExitCode != 0)
            throw Failure($"ExecSync({containerId}, [{string.Join(' ', cmd)}]) exited {r.ExitCode}\nstdout: {r.Stdout.ToStringUtf8()}\nstderr: {r.Stderr.ToStringUtf8()}");
        return r.Stdout.ToStringUtf8();
    }

    // ---- lists: the unary and the streaming RPC must agree

    /// <summary>ListContainers and StreamContainers with <paramref name="filter"/>; asserts both give the same items.</summary>
    protected async Task<IReadOnlyList<Container>> ListContainersAsync(ContainerFilter? filter = null)
    {
        var request = new ListContainersRequest();
        if (filter is not null) request.Filter = filter;
        var listed = (await CallAsync($"ListContainers({filter})", dl => Runtime.ListContainersAsync(request, deadline: dl))).Containers.ToList();

        var streamRequest = new StreamContainersRequest();
        if (filter is not null) streamRequest.Filter = filter;
        var streamed = new List<Container>();
        try
        {
            using var call = Runtime.StreamContainers(streamRequest, deadline: Deadline());
            await foreach (var chunk in call.ResponseStream.ReadAllAsync())
                streamed.AddRange(chunk.Containers);
        }
        catch (RpcException e)
        {
            throw Failure($"StreamContainers({filter}) failed: {e.StatusCode}: {e.Status.Detail}");
        }
        AssertSameItems("ListContainers", "StreamContainers", filter?.ToString(), listed, streamed, c => c.Id);
        return listed;
    }

    /// <summary>ListPodSandbox and StreamPodSandboxes with <paramref name="filter"/>; asserts both give the same items.</summary>
    protected async Task<IReadOnlyList<PodSandbox>> ListPodsAsync(PodSandboxFilter? filter = null)
    {
        var request = new ListPodSandboxRequest();
        if (filter is not null) request.Filter = filter;
        var listed = (await CallAsync($"ListPodSandbox({filter})", dl => Runtime.ListPodSandboxAsync(request, deadline: dl))).Items.ToList();

        var streamRequest = new StreamPodSandboxesRequest();
        if (filter is not null) streamRequest.Filter = filter;
        var streamed = new List<PodSandbox>();
        try
        {
            using var call = Runtime.StreamPodSandboxes(streamRequest, deadline: Deadline());
            await foreach (var chunk in call.ResponseStream.ReadAllAsync())
                streamed.AddRange(chunk.PodSandboxes);
        }
        catch (RpcException e)
        {
            throw Failure($"StreamPodSandboxes({filter}) failed: {e.StatusCode}: {e.Status.Detail}");
        }
        AssertSameItems("ListPodSandbox", "StreamPodSandboxes", filter?.ToString(), listed, streamed, p => p.Id);
        return listed;
    }

    private void AssertSameItems<T>(string unary, string stream, string? filter, List<T> listed, List<T> streamed, Func<T, string> id)
        where T : Google.Protobuf.IMessage<T>
    {
        var duplicates = streamed.GroupBy(id).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (duplicates.Count > 0)
            throw Failure($"{stream}({filter}) sent these items more than once: {string.Join(", ", duplicates)}");
        var a = listed.OrderBy(id, StringComparer.Ordinal).ToList();
        var b = streamed.OrderBy(id, StringComparer.Ordinal).ToList();
        if (!a.SequenceEqual(b))
            throw Failure($"{unary} and {stream} disagree for filter {filter}:\n{unary}: {string.Join("\n  ", a)}\n{stream}: {string.Join("\n  ", b)}");
    }

    /// <summary>Asserts the ids are exactly <paramref name="expected"/>, in any order.</summary>
    protected void AssertIds(IEnumerable<string> expected, IEnumerable<string> actual, string what)
    {
        var e = expected.Order(StringComparer.Ordinal).ToList();
        var a = actual.Order(StringComparer.Ordinal).ToList();
        if (!e.SequenceEqual(a))
            throw Failure($"{what} gave [{string.Join(", ", a)}], expected [{string.Join(", ", e)}]");
    }

    // ---- logs and time

    /// <summary>The whole file, read while conmon may still be writing it.</summary>
    protected static async Task<string> ReadLogAsync(string path)
    {
        await using var stream = OpenShared(path);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync();
    }

    private static string ReadLog(string path)
    {
        using var stream = OpenShared(path);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static FileStream OpenShared(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

    /// <summary>Polls until <paramref name="path"/> exists and contains <paramref name="text"/>; returns the content.</summary>
    protected async Task<string> WaitForLogAsync(string path, string text, TimeSpan? timeout = null)
    {
        string content = "";
        bool found = await EventuallyAsync(() =>
        {
            if (!File.Exists(path)) return false;
            content = ReadLog(path);
            return content.Contains(text, StringComparison.Ordinal);
        }, timeout ?? StateTimeout);
        if (!found) throw Failure($"log {path} did not get \"{text}\" within {timeout ?? StateTimeout}; it has:\n{content}");
        return content;
    }

    /// <summary>Polls an async <paramref name="condition"/> until it holds or <paramref name="timeout"/> passes.</summary>
    protected static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (await condition()) return true;
            if (sw.Elapsed > timeout) return false;
            await Task.Delay(100);
        }
    }

    /// <summary>Asserts a CRI timestamp (ns since the epoch) falls within this test's run.</summary>
    protected void AssertDuringTest(long unixNanos, string what)
    {
        var earliest = TestStart.AddSeconds(-5);
        var latest = DateTime.UtcNow.AddSeconds(5);
        var at = DateTime.UnixEpoch.AddTicks(unixNanos / 100);
        Assert.True(at >= earliest && at <= latest,
            $"{what} = {unixNanos} ns ({at:O}) is not between the test's start {earliest:O} and now {latest:O}: not nanoseconds since the epoch?");
    }

    /// <summary>GET <paramref name="url"/> until it answers 200 (the server may still be starting); returns the body.</summary>
    protected async Task<string> HttpGetAsync(string url)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
        string last = "";
        string? body = null;
        await EventuallyAsync(async () =>
        {
            try
            {
                using var response = await http.GetAsync(url);
                last = $"HTTP {(int)response.StatusCode}";
                if (!response.IsSuccessStatusCode) return false;
                body = await response.Content.ReadAsStringAsync();
                return true;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                last = e.Message;
                return false;
            }
        }, TimeSpan.FromSeconds(20));
        return body ?? throw Failure($"GET {url} did not answer within 20 s: {last}\nbridge {Network.BridgeName} ports: {string.Join(", ", Network.BridgePorts())}\n" +
            $"NAT rules for the test subnet:\n{string.Join('\n', await CniTestNetwork.NatRulesMentioningAsync([$"10.200.{Network.ThirdOctet}."]))}");
    }

    // ---- RPC plumbing

    /// <summary>Runs one unary call with the standard deadline; a failure names the call and shows the daemon log tail.</summary>
    protected async Task<T> CallAsync<T>(string what, Func<DateTime, AsyncUnaryCall<T>> call)
    {
        try
        {
            return await call(Deadline());
        }
        catch (RpcException e)
        {
            throw Failure($"{what} failed: {e.StatusCode}: {e.Status.Detail}");
        }
    }

    /// <summary>Runs <paramref name="call"/>, which must fail with <paramref name="expected"/>; returns the error.</summary>
    protected Task<RpcException> ExpectErrorAsync<T>(StatusCode expected, string what, Func<DateTime, AsyncUnaryCall<T>> call) =>
        ExpectRpcErrorAsync(Daemon, expected, what, async () => await call(Deadline()));

    /// <summary>A test failure carrying the daemon's log tail.</summary>
    protected XunitException Failure(string message) =>
        new($"{message}\n--- daemon log tail:\n{(daemon is null ? "(no daemon)" : daemon.LogTail(80))}");

    // ---- leak checks

    /// <summary>
    /// Asserts the daemon and the network hold nothing of the given pods and containers any more: no mount under
    /// the daemon's root or state (namespace pins, rootfs), no file there named by one of their ids, no conmon or
    /// container process (by command line under root/state, or by cgroup under the pods' cgroup parents), no cgroup
    /// below the pods' cgroup parents, no IP reserved in host-local's dataDir, no veth on the bridge, and no
    /// NAT rule naming a pod id or pod IP. Processes get a few seconds to be reaped; the rest must hold already.
    /// </summary>
    protected async Task AssertNothingLeftAsync(IReadOnlyCollection<TestPod> pods, IReadOnlyCollection<string> containerIds, IReadOnlyCollection<string> podIps)
    {
        var d = Daemon;
        var problems = new List<string>();

        List<HostState.HostProcess> Stray() =>
            HostState.ProcessesMentioning(d.Root).Concat(HostState.ProcessesMentioning(d.State))
                .Concat(pods.SelectMany(p => HostState.ProcessesInCgroupsContaining($"pod{p.Uid}")))
                .Where(p => p.Pid != d.ProcessId)
                .DistinctBy(p => p.Pid)
                .ToList();
        var stray = Stray();
        if (stray.Count > 0 && await EventuallyAsync(() => Stray().Count == 0, TimeSpan.FromSeconds(5)))
            stray = [];
        problems.AddRange(stray.Select(p => $"process left: {p}"));

        foreach (var dir in new[] { d.Root, d.State })
            problems.AddRange(HostState.MountsUnder(dir).Select(m => $"mount left: {m}"));
        var ids = pods.Select(p => p.Id).Concat(containerIds).ToList();
        foreach (var dir in new[] { d.Root, d.State })
            problems.AddRange(HostState.PathsNaming(dir, ids).Select(p => $"file left: {p}"));
        foreach (var pod in pods)
            problems.AddRange(HostState.CgroupDirsAt(pod.CgroupParent).Where(c => !c.EndsWith("/pod" + pod.Uid, StringComparison.Ordinal))
                .Select(c => $"cgroup left: {c}"));
        problems.AddRange(Network.ReservedAddresses().Select(f => $"host-local IP still reserved: {f}"));
        problems.AddRange(Network.BridgePorts().Select(p => $"veth still on bridge {Network.BridgeName}: {p}"));
        problems.AddRange((await CniTestNetwork.NatRulesMentioningAsync(pods.Select(p => p.Id).Concat(podIps))).Select(r => $"NAT rule left: {r}"));

        if (problems.Count > 0)
            throw Failure($"{problems.Count} things left behind after removing {pods.Count} pods and {containerIds.Count} containers:\n" +
                string.Join('\n', problems.Take(100)));
    }

    // ---- cleanup

    public override async Task DisposeAsync()
    {
        await RemoveAllPodsAsync();
        List<DaemonProcess> daemons;
        lock (gate) daemons = [.. podDaemons];
        foreach (var d in daemons)
        {
            try
            {
                await d.StopAsync(TimeSpan.FromSeconds(10));
            }
            catch (OperationCanceledException)
            {
                await d.KillAsync();
            }
        }
        await SweepLeftoversAsync(daemons);
        await base.DisposeAsync();
        if (network is not null)
        {
            try
            {
                await network.DisposeAsync();
            }
            catch (Exception e)
            {
                Output.WriteLine($"cleanup: {e.Message}");
            }
        }
        RemovePodCgroups();
    }

    /// <summary>Stop and remove every pod the daemon knows of or this test made, as the kubelet would.</summary>
    private async Task RemoveAllPodsAsync()
    {
        var d = daemon;
        if (d is null || d.HasExited) return;
        var ids = new List<string>();
        lock (gate) ids.AddRange(podIds);
        try
        {
            var listed = await d.Runtime.ListPodSandboxAsync(new ListPodSandboxRequest(), deadline: DateTime.UtcNow.AddSeconds(30));
            ids.AddRange(listed.Items.Select(p => p.Id));
        }
        catch (RpcException e)
        {
            Output.WriteLine($"cleanup: ListPodSandbox: {e.StatusCode}: {e.Status.Detail}");
        }
        foreach (var id in ids.Distinct())
        {
            try
            {
                await d.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = id }, deadline: DateTime.UtcNow.AddSeconds(60));
                await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id }, deadline: DateTime.UtcNow.AddSeconds(60));
            }
            catch (RpcException e)
            {
                Output.WriteLine($"cleanup: removing pod {id}: {e.StatusCode}: {e.Status.Detail}");
            }
        }
    }

    /// <summary>
    /// What the daemon should have removed but did not: kill container processes (by the pods' cgroups) and
    /// conmon/runtime processes (by the daemon dirs in their command lines), lazily unmount what is mounted under
    /// the daemon dirs, and CNI DEL the pods so their IPs and NAT rules go. Each leak is written to the output.
    /// </summary>
    private async Task SweepLeftoversAsync(IReadOnlyList<DaemonProcess> daemons)
    {
        List<string> uids, ids;
        lock (gate)
        {
            uids = [.. podUids];
            ids = [.. podIds];
        }
        var baseDirs = daemons.Select(d => d.BaseDir).Distinct().ToList();
        var stray = uids.SelectMany(u => HostState.ProcessesInCgroupsContaining($"pod{u}"))
            .Concat(baseDirs.SelectMany(HostState.ProcessesMentioning))
            .Where(p => daemons.All(d => d.ProcessId != p.Pid))
            .DistinctBy(p => p.Pid)
            .ToList();
        foreach (var p in stray)
        {
            Output.WriteLine($"cleanup: killing leftover {p}");
            try
            {
                using var process = Process.GetProcessById(p.Pid);
                process.Kill();
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
            }
        }
        if (stray.Count > 0)
            await EventuallyAsync(() => stray.All(p => !HostState.ProcessExists(p.Pid)), TimeSpan.FromSeconds(10));

        foreach (var mount in baseDirs.SelectMany(HostState.MountsUnder).OrderByDescending(m => m.MountPoint.Length))
        {
            Output.WriteLine($"cleanup: unmounting leftover {mount}");
            var run = await HostCommand.RunAsync("umount", ["-l", mount.MountPoint]);
            if (run.ExitCode != 0) Output.WriteLine($"cleanup: {run}");
        }

        if (network is not null && ids.Count > 0)
        {
            try
            {
                var rules = await CniTestNetwork.NatRulesMentioningAsync(ids);
                if (rules.Count > 0 || network.ReservedAddresses().Count > 0)
                {
                    Output.WriteLine($"cleanup: CNI DEL for {ids.Count} pods (NAT rules left: {rules.Count}, IPs left: {network.ReservedAddresses().Count})");
                    foreach (var id in ids)
                        if (await network.DeleteAttachmentAsync(id) is { } error) Output.WriteLine($"cleanup: {error}");
                }
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or System.ComponentModel.Win32Exception)
            {
                Output.WriteLine($"cleanup: CNI DEL: {e.Message}");
            }
        }
    }

    /// <summary>
    /// Removes the pod&lt;uid&gt; cgroups (the kubelet's job, as it creates them) and the kubepods parents if this
    /// test's pods brought them into being.
    /// </summary>
    private void RemovePodCgroups()
    {
        List<string> uids;
        lock (gate) uids = [.. podUids];
        var dirs = uids.SelectMany(u => HostState.CgroupDirsAt($"kubepods/besteffort/pod{u}")).ToList();
        foreach (var hierarchy in HostState.CgroupHierarchies())
            foreach (var level in CgroupParentLevels.Reverse())
            {
                string dir = Path.Combine(hierarchy, level);
                if (!cgroupParentsBefore.Contains(dir) && Directory.Exists(dir)) dirs.Add(dir);
            }
        foreach (var dir in dirs)
        {
            try
            {
                // rmdir: a cgroup directory holds only kernel control files; it fails if processes or children remain.
                Directory.Delete(dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                if (Directory.Exists(dir) && dir.Contains("/pod", StringComparison.Ordinal))
                    Output.WriteLine($"cleanup: cannot remove cgroup {dir}: {e.Message}");
            }
        }
    }
}
