using System.Collections.Concurrent;
using CriRuntime.Config;
using CriRuntime.Events;
using CriRuntime.Native;
using CriRuntime.Network.Cni;
using CriRuntime.Oci;
using CriRuntime.State;
using CriRuntime.Storage;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Runtime.V1;

namespace CriRuntime.Pods;

/// <summary>
/// Runs, stops and removes pod sandboxes. A pod is a set of pinned namespaces (no pause process),
/// its etc files and /dev/shm, a cgroup, a CNI attachment, and a catatonit infra process only when
/// its containers share one PID namespace. Each step of RunAsync is undone if a later one fails, and
/// a record in the Creating phase marks a pod whose set-up a crash interrupted. Stopping and removing a pod
/// with its containers is <see cref="Lifecycle.PodLifecycle"/>'s job; this class knows only the pod itself.
/// </summary>
public sealed class PodSandboxManager
{
    private const string DefaultCgroupRoot = "/criruntime";
    private static readonly TimeSpan CgroupKillTimeout = TimeSpan.FromSeconds(10);

    private readonly CriRuntimeConfig config;
    private readonly RecordStore<PodSandboxRecord> store;
    private static readonly Lazy<IReadOnlySet<string>?> hugepageSizes = new(() => LinuxResourcesValidation.HostHugepageSizes());
    private readonly KeyedLocks locks = new();
    private readonly ConcurrentDictionary<string, string> reservedNames = new(StringComparer.Ordinal);
    // Pods a stop has begun on: no container may be created or started in them any more.
    private readonly ConcurrentDictionary<string, byte> stopping = new(StringComparer.Ordinal);
    private readonly IContainerRuntimes runtimes;
    private readonly Cgroups cgroups;
    private readonly CniManager cni;
    private readonly ILogger logger;
    private readonly string podsDir;

    public PodSandboxManager(CriRuntimeConfig config, IContainerRuntimes runtimes, Cgroups cgroups, CniManager cni,
        ContainerEventHub events, ILogger<PodSandboxManager> logger)
    {
        this.config = config;
        this.runtimes = runtimes;
        this.cgroups = cgroups;
        this.cni = cni;
        this.logger = logger;
        store = new RecordStore<PodSandboxRecord>(Path.Combine(config.Root, "pods"), PodJsonContext.Default.PodSandboxRecord, logger,
            // The embedded CRI config must parse, and it must name the object (its name is reserved from it).
            validate: r => _ = r.Config.Metadata ?? throw new System.Text.Json.JsonException("its config has no metadata"))
        {
            Changed = (before, after) => PodEvents.Publish(events, before, after),
        };
        podsDir = Path.Combine(config.State, "pods");
    }

    public IEnumerable<PodSandboxRecord> List() => store.All.Where(p => p.Phase != PodSandboxPhase.Creating);

    /// <summary>The pod with this id (or unique id prefix), or null.</summary>
    public PodSandboxRecord? Find(string id)
    {
        var pod = store.FindByIdOrPrefix(id);
        return pod is { Phase: not PodSandboxPhase.Creating } ? pod : null;
    }

    public PodSandboxRecord Get(string id) =>
        Find(id) ?? throw new NotFoundException($"pod sandbox '{Echo.Of(id)}' not found; ListPodSandbox shows the pods that exist");

    /// <summary>The pod's lock. Lock order: see <see cref="Lifecycle.PodLifecycle"/>.</summary>
    internal Task<IDisposable> LockAsync(string podId, CancellationToken cancellationToken) => locks.AcquireAsync(podId, cancellationToken);

    /// <summary>True once a stop has begun on the pod: it takes no new containers, and its created ones do not start.</summary>
    public bool IsStopping(string podId) => stopping.ContainsKey(podId);

    /// <summary>Ready, and no stop has begun on it: the state in which containers may be created and started.</summary>
    public bool AcceptsContainers(PodSandboxRecord pod) => pod.Phase == PodSandboxPhase.Ready && !IsStopping(pod.Id);

    /// <summary>Marks the pod as stopping; the caller holds its lock. A stop is one way: only removal clears the mark.</summary>
    internal void MarkStopping(string podId) => stopping[podId] = 0;

    /// <summary>The pid namespace the pod's containers join, when the pod shares one.</summary>
    public async Task<string?> PodPidNamespaceAsync(PodSandboxRecord pod, CancellationToken cancellationToken)
    {
        if (pod.InfraId is null) return null;
        var state = await runtimes.Resolve(pod.RuntimeHandler).StateAsync(pod.InfraId, cancellationToken).ConfigureAwait(false);
        if (state is not { Status: "running", Pid: > 0 })
            throw new FailedPreconditionException($"pod sandbox {pod.Id}: its infra process (the shared PID namespace) is not running; stop and remove the pod, then run it again");
        return $"/proc/{state.Pid}/ns/pid";
    }

    public async Task<PodSandboxRecord> RunAsync(PodSandboxConfig podConfig, string? runtimeHandler, CancellationToken cancellationToken)
    {
        Validate(podConfig);
        PortMappingValidation.Validate(podConfig.PortMappings);
        // The pod cgroup gets these before any container: refuse what the kernel would, naming the field.
        LinuxResourcesValidation.Validate(podConfig.Linux?.Resources, "config.linux.resources", cgroups.IsUnified, hugepageSizes.Value);
        LinuxResourcesValidation.Validate(podConfig.Linux?.Overhead, "config.linux.overhead", cgroups.IsUnified, hugepageSizes.Value);
        var runtime = runtimes.Resolve(runtimeHandler);
        string key = PodSandboxRecord.ReservationKeyOf(podConfig.Metadata);
        string id = ObjectIds.New();
        if (!reservedNames.TryAdd(key, id))
            throw new AlreadyExistsException(
                $"a pod sandbox named {podConfig.Metadata.Name} in namespace {podConfig.Metadata.Namespace} (uid {podConfig.Metadata.Uid}, attempt {podConfig.Metadata.Attempt}) already exists as {reservedNames.GetValueOrDefault(key)}; remove it first or use another attempt");

        using var podLock = await locks.AcquireAsync(id, cancellationToken).ConfigureAwait(false);
        string dir = Path.Combine(podsDir, id);
        var namespaceOptions = podConfig.Linux?.SecurityContext?.NamespaceOptions;
        bool hostNetwork = namespaceOptions?.Network == NamespaceMode.Node;
        bool hostIpc = namespaceOptions?.Ipc == NamespaceMode.Node;
        string cgroupParent = string.IsNullOrEmpty(podConfig.Linux?.CgroupParent) ? $"{DefaultCgroupRoot}/{id}" : podConfig.Linux!.CgroupParent;
        var kinds = (hostNetwork ? NamespaceKinds.None : NamespaceKinds.Network | NamespaceKinds.Uts)
                    | (hostIpc ? NamespaceKinds.None : NamespaceKinds.Ipc);
        string nsDir = Path.Combine(dir, "ns");
        // The record names everything the pod will hold before any of it exists: one durable write
        // covers a crash at any later point, because every release step tolerates what is missing.
        var pod = new PodSandboxRecord
        {
            Id = id,
            ConfigBytes = podConfig.ToByteArray(),
            RuntimeHandler = runtime.HandlerName,
            Phase = PodSandboxPhase.Creating,
            CreatedAt = CriClock.NowNanos(),
            PodStateDir = dir,
            CgroupParent = cgroupParent,
            OwnsCgroup = !cgroups.Exists(cgroupParent),
            CgroupLevelsExisting = cgroups.ExistingLevels(cgroupParent),
            ShmPath = hostIpc ? null : Path.Combine(dir, "shm"),
            NetworkNamespace = kinds.HasFlag(NamespaceKinds.Network) ? Path.Combine(nsDir, "net") : null,
            IpcNamespace = kinds.HasFlag(NamespaceKinds.Ipc) ? Path.Combine(nsDir, "ipc") : null,
            UtsNamespace = kinds.HasFlag(NamespaceKinds.Uts) ? Path.Combine(nsDir, "uts") : null,
            NetworkAttached = !hostNetwork,
            InfraId = PodSandboxRecord.PidModeOf(podConfig) == NamespaceMode.Pod ? id : null,
            ChosenHostname = PodSandboxRecord.ChooseHostname(podConfig, Namespaces.CurrentHostname),
        };

        try
        {
            await store.PutAsync(pod, cancellationToken).ConfigureAwait(false);
            // The pod's files are bind-mounted into its containers: nothing on the host needs to reach them by path.
            FileModes.CreateDirectory(dir, FileModes.PrivateDirectory);

            string hostname = pod.Hostname;
            PodFiles.WriteAll(dir, hostname, podConfig.DnsConfig);
            if (pod.ShmPath is not null) PodFiles.MountShm(pod.ShmPath);

            if (kinds != NamespaceKinds.None)
            {
                FileModes.CreateDirectory(nsDir, FileModes.PrivateDirectory);
                // A host-network pod keeps the node's UTS namespace, and with it the node's hostname.
                await Namespaces.CreatePinnedAsync(nsDir, kinds, kinds.HasFlag(NamespaceKinds.Uts) ? hostname : null, cancellationToken).ConfigureAwait(false);
            }

            cgroups.Create(cgroupParent);
            if (pod.OwnsCgroup) cgroups.SetResources(cgroupParent, podConfig.Linux?.Resources);

            if (pod.NetworkAttached)
            {
                var network = await cni.SetUpAsync(NetworkRequest(pod), cancellationToken).ConfigureAwait(false);
                pod = pod with { Ips = network.Ips };
            }

            if (pod.InfraId is not null) await StartInfraAsync(pod, runtime, hostname, cancellationToken).ConfigureAwait(false);

            pod = pod with { Phase = PodSandboxPhase.Ready };
            await store.PutAsync(pod, CancellationToken.None).ConfigureAwait(false);
            logger.LogInformation("Pod sandbox {Id} ({Namespace}/{Name}) is ready with IPs [{Ips}]",
                id, podConfig.Metadata.Namespace, podConfig.Metadata.Name, string.Join(", ", pod.Ips));
            return pod;
        }
        catch (Exception e)
        {
            logger.LogWarning("Running pod sandbox {Namespace}/{Name} failed, undoing it: {Error}",
                podConfig.Metadata.Namespace, podConfig.Metadata.Name, Echo.Capped(e.Message, 4096));
            await DiscardAsync(pod, CancellationToken.None).ConfigureAwait(false);
            reservedNames.TryRemove(new KeyValuePair<string, string>(key, id));
            throw;
        }
    }

    /// <summary>
    /// Stops the infra process and the network of a pod whose containers are stopped; the caller holds the
    /// pod's lock. Idempotent: a pod that is gone is not an error.
    /// </summary>
    internal async Task StopLockedAsync(string podId, CancellationToken cancellationToken)
    {
        var pod = store.Find(podId);
        if (pod is null) return;
        if (pod.InfraId is not null) await StopInfraAsync(pod, cancellationToken).ConfigureAwait(false);
        if (pod.NetworkAttached)
        {
            await cni.TearDownAsync(NetworkRequest(pod), cancellationToken).ConfigureAwait(false);
            pod = pod with { NetworkAttached = false };
        }
        if (pod.Phase != PodSandboxPhase.NotReady)
        {
            pod = pod with { Phase = PodSandboxPhase.NotReady };
            logger.LogInformation("Pod sandbox {Id} stopped", pod.Id);
        }
        await store.PutAsync(pod, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>
    /// Records new pod-level resources (an in-place resize) in the pod's config, as the kubelet reports them after
    /// it has resized the pod cgroup itself; null leaves that part as it was. The pod must exist and be ready.
    /// </summary>
    public async Task UpdateResourcesAsync(string podId, LinuxContainerResources? overhead, LinuxContainerResources? resources, CancellationToken cancellationToken)
    {
        var pod = Get(podId);
        using var podLock = await locks.AcquireAsync(pod.Id, cancellationToken).ConfigureAwait(false);
        pod = store.Find(pod.Id) ?? throw new NotFoundException($"pod sandbox {Echo.Of(podId)} was removed meanwhile");
        if (pod.Phase != PodSandboxPhase.Ready)
            throw new FailedPreconditionException($"pod sandbox {pod.Id} is not ready (it was stopped); its resources can no longer change");
        if (overhead is null && resources is null) return;
        LinuxResourcesValidation.Validate(overhead, "overhead", cgroups.IsUnified, hugepageSizes.Value);
        LinuxResourcesValidation.Validate(resources, "resources", cgroups.IsUnified, hugepageSizes.Value);
        var config = pod.Config.Clone();
        config.Linux ??= new LinuxPodSandboxConfig();
        if (overhead is not null) config.Linux.Overhead = overhead;
        if (resources is not null) config.Linux.Resources = resources;
        await store.PutAsync(pod with { ConfigBytes = config.ToByteArray() }, CancellationToken.None).ConfigureAwait(false);
        logger.LogInformation("Pod sandbox {Id} resources updated", pod.Id);
    }

    /// <summary>
    /// Removes a pod whose containers are removed, and everything it holds; the caller holds the pod's lock.
    /// A pod that is gone is not an error (CRI: idempotent).
    /// </summary>
    internal async Task RemoveLockedAsync(string podId, CancellationToken cancellationToken)
    {
        var pod = store.Find(podId);
        if (pod is null) return;
        var problems = await ReleaseAsync(pod, cancellationToken).ConfigureAwait(false);
        if (problems.Count > 0)
        {
            // Keep the record so that a retry (kubelet retries) finishes the job instead of leaking it.
            await store.PutAsync(pod with { Phase = PodSandboxPhase.NotReady }, CancellationToken.None).ConfigureAwait(false);
            throw new IOException($"pod sandbox {pod.Id} was only partly removed: {string.Join("; ", problems)}; retry RemovePodSandbox");
        }
        store.Delete(pod.Id);
        stopping.TryRemove(pod.Id, out _);
        reservedNames.TryRemove(new KeyValuePair<string, string>(pod.ReservationKey, pod.Id));
        logger.LogInformation("Pod sandbox {Id} removed", pod.Id);
    }

    // ---- what start-up recovery (Recovery/PodRecovery) needs; nothing else calls these.

    /// <summary>Per-pod directories under the state dir live here, one per id.</summary>
    internal string PodStateDirs => podsDir;

    /// <summary>Reads the records from disk (see <see cref="RecordStore{T}.Load"/>).</summary>
    internal StoreLoadReport LoadRecords()
    {
        FileModes.CreateDirectory(podsDir, FileModes.PrivateDirectory);
        return store.Load();
    }

    internal IReadOnlyList<PodSandboxRecord> AllRecords() => store.All.ToList();

    internal PodSandboxRecord? FindRecord(string id) => store.Find(id);

    /// <summary>True when a record with this id exists on disk but is not loaded (newer version or quarantined); why, in <paramref name="why"/>.</summary>
    internal bool IsNotLoaded(string id, out string why) => store.IsNotLoaded(id, out why);

    internal void ReserveName(PodSandboxRecord pod) => reservedNames[pod.ReservationKey] = pod.Id;

    internal Task PutRecordAsync(PodSandboxRecord pod, CancellationToken cancellationToken) => store.PutAsync(pod, cancellationToken);

    /// <summary>Moves the record into quarantine and frees its name; what the pod holds is left as it is.</summary>
    internal QuarantinedItem? QuarantineRecord(PodSandboxRecord pod, string reason)
    {
        var item = store.MoveToQuarantine(pod.Id, reason);
        reservedNames.TryRemove(new KeyValuePair<string, string>(pod.ReservationKey, pod.Id));
        return item;
    }

    /// <summary>Undoes every part of a pod that exists and deletes its record; returns what could not be undone (the record then stays).</summary>
    internal async Task<List<string>> TryDiscardAsync(PodSandboxRecord pod, CancellationToken cancellationToken)
    {
        var problems = await ReleaseAsync(pod, cancellationToken).ConfigureAwait(false);
        if (problems.Count == 0) store.Delete(pod.Id);
        return problems;
    }

    /// <summary>Unpins, unmounts and deletes a pod directory no record owns; returns what failed.</summary>
    internal static List<string> ReleaseLeftoverDirectory(string dir) => ReleaseDirectory(dir);

    /// <summary>
    /// True when what the pod keeps under the volatile state dir is gone: its namespace pins or, for a pod with
    /// none of its own (host network and IPC), its etc files. Either way its containers could not start again.
    /// </summary>
    internal static bool LostToReboot(PodSandboxRecord pod) =>
        new[] { pod.NetworkNamespace, pod.IpcNamespace, pod.UtsNamespace }.OfType<string>().Any(pin => !Namespaces.IsPinned(pin))
        || !File.Exists(Path.Combine(pod.PodStateDir, PodFiles.HostnameFile));

    /// <summary>
    /// Undoes a pod no one was told about (a failed or interrupted RunPodSandbox). What cannot be
    /// undone now keeps its record, hidden in the Creating phase, so the next start-up tries again
    /// instead of leaking it.
    /// </summary>
    private async Task DiscardAsync(PodSandboxRecord pod, CancellationToken cancellationToken)
    {
        var problems = await ReleaseAsync(pod, cancellationToken).ConfigureAwait(false);
        if (problems.Count == 0)
        {
            store.Delete(pod.Id);
            return;
        }
        await store.PutAsync(pod with { Phase = PodSandboxPhase.Creating }, CancellationToken.None).ConfigureAwait(false);
        logger.LogWarning("Pod sandbox {Id} is kept for clean-up at the next start-up", pod.Id);
    }

    /// <summary>
    /// Undoes every part of a pod that exists, in reverse order of creation; each step is idempotent
    /// and runs even when an earlier one failed. Returns what could not be undone.
    /// </summary>
    private async Task<List<string>> ReleaseAsync(PodSandboxRecord pod, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        if (pod.InfraId is not null)
            await RunRecordingProblemAsync(problems, "stop the infra process", () => StopInfraAsync(pod, cancellationToken)).ConfigureAwait(false);
        if (pod.NetworkAttached)
            await RunRecordingProblemAsync(problems, "detach the network (CNI DEL)", () => cni.TearDownAsync(NetworkRequest(pod), cancellationToken)).ConfigureAwait(false);
        if (pod.OwnsCgroup)
            await RunRecordingProblemAsync(problems, $"remove the pod cgroup {pod.CgroupParent}",
                () => cgroups.KillAllAndRemoveAsync(pod.CgroupParent, CgroupKillTimeout, cancellationToken)).ConfigureAwait(false);
        if (pod.CgroupLevelsExisting is { } existingLevels)
            RunRecordingProblem(problems, $"remove the cgroup levels made for {pod.CgroupParent}", () =>
            {
                // A level that holds another pod's cgroup stays; that pod did not make it, so nothing removes it later.
                foreach (var kept in cgroups.RemoveCreatedLevels(pod.CgroupParent, existingLevels))
                    logger.LogInformation("Pod sandbox {Id}: cgroup {Dir} was made for it but is in use by others; left in place", pod.Id, kept);
            });
        problems.AddRange(ReleaseDirectory(pod.PodStateDir));
        foreach (var problem in problems) logger.LogWarning("Pod sandbox {Id}: {Problem}", pod.Id, Echo.Capped(problem, 4096));
        return problems;
    }

    /// <summary>Unpins namespaces, unmounts shm and deletes a pod directory; returns what failed.</summary>
    private static List<string> ReleaseDirectory(string dir)
    {
        var problems = new List<string>();
        foreach (var kind in new[] { "net", "ipc", "uts" })
            RunRecordingProblem(problems, $"unpin the {kind} namespace", () => Namespaces.Unpin(Path.Combine(dir, "ns", kind)));
        RunRecordingProblem(problems, "unmount /dev/shm", () => PodFiles.UnmountShm(Path.Combine(dir, "shm")));
        RunRecordingProblem(problems, $"delete {dir}", () =>
        {
            // Never delete through a mount that is still there.
            if (Mounts.IsMountPoint(Path.Combine(dir, "shm"))) throw new IOException("its shm is still mounted");
            Files.RemoveTree(dir);
        });
        return problems;
    }

    private async Task StartInfraAsync(PodSandboxRecord pod, IContainerRuntime runtime, string hostname, CancellationToken cancellationToken)
    {
        string bundle = pod.InfraBundle;
        string rootfs = Path.Combine(bundle, "rootfs");
        FileModes.CreateDirectory(bundle, FileModes.PrivateDirectory);
        RuntimeSpecBuilder.PrepareInfraRootfs(rootfs);
        var spec = RuntimeSpecBuilder.BuildInfra(rootfs, pod.NetworkNamespace, pod.IpcNamespace, pod.UtsNamespace,
            $"{pod.CgroupParent}/{pod.InfraId}", hostname);
        RuntimeSpecBuilder.WriteBundle(bundle, spec);
        await runtime.CreateAsync(new RuntimeCreateRequest
        {
            Id = pod.InfraId!,
            BundleDir = bundle,
            LogPath = Path.Combine(bundle, "infra.log"),
            ExitDir = bundle,
        }, cancellationToken).ConfigureAwait(false);
        await runtime.StartAsync(pod.InfraId!, cancellationToken).ConfigureAwait(false);
    }

    private async Task StopInfraAsync(PodSandboxRecord pod, CancellationToken cancellationToken)
    {
        var runtime = runtimes.Resolve(pod.RuntimeHandler);
        // Never made (a rollback), or already gone: nothing to stop.
        if (await runtime.StateAsync(pod.InfraId!, cancellationToken).ConfigureAwait(false) is null) return;
        await runtime.KillAsync(pod.InfraId!, 9, all: true, cancellationToken).ConfigureAwait(false);
        await runtime.DeleteAsync(pod.InfraId!, force: true, cancellationToken).ConfigureAwait(false);
    }

    public static PodNetworkRequest NetworkRequest(PodSandboxRecord pod)
    {
        var c = pod.Config;
        var ports = c.PortMappings
            .Where(p => p.HostPort > 0)
            .Select(p => new PodPortMapping(p.Protocol switch { Protocol.Udp => "udp", Protocol.Sctp => "sctp", _ => "tcp" },
                p.ContainerPort, p.HostPort, string.IsNullOrEmpty(p.HostIp) ? null : p.HostIp))
            .ToList();
        PodDns? dns = c.DnsConfig is { } d ? new PodDns(d.Servers, d.Searches, d.Options) : null;
        return new PodNetworkRequest(pod.Id, pod.NetworkNamespace ?? "", c.Metadata.Name, c.Metadata.Namespace, c.Metadata.Uid, ports,
            PodBandwidthAnnotations.FromAnnotations(c.Annotations), dns);
    }

    private static void Validate(PodSandboxConfig podConfig)
    {
        if (podConfig.Metadata is not { } m)
            throw new InvalidArgumentException("config.metadata is missing: a pod sandbox needs a name, namespace and uid");
        if (string.IsNullOrWhiteSpace(m.Name)) throw new InvalidArgumentException("config.metadata.name is empty: give the pod sandbox a name");
        if (string.IsNullOrWhiteSpace(m.Namespace)) throw new InvalidArgumentException("config.metadata.namespace is empty: give the pod sandbox a namespace");
        if (string.IsNullOrWhiteSpace(m.Uid)) throw new InvalidArgumentException("config.metadata.uid is empty: give the pod sandbox a uid");
        PodSandboxConfigValidation.Validate(podConfig);
        // Refused before anything is made, rather than at the CNI ADD.
        PodBandwidthAnnotations.FromAnnotations(podConfig.Annotations);
        foreach (var p in podConfig.PortMappings)
        {
            if (p.ContainerPort is <= 0 or > 65535)
                throw new InvalidArgumentException($"config.port_mappings: container_port {p.ContainerPort} is not a port number (1-65535)");
            if (p.HostPort is < 0 or > 65535)
                throw new InvalidArgumentException($"config.port_mappings: host_port {p.HostPort} is not a port number (0-65535)");
        }
        var cgroupParent = podConfig.Linux?.CgroupParent;
        if (!string.IsNullOrEmpty(cgroupParent) && (!cgroupParent.StartsWith('/') || cgroupParent.Split('/').Contains("..")))
            throw new InvalidArgumentException($"config.linux.cgroup_parent '{Echo.Of(cgroupParent)}' must be an absolute cgroupfs path such as /kubepods/besteffort/pod<uid> (the cgroupfs driver is used)");
        // Checked before anything is made; an empty hostname means the node's (containerd's rule).
        if (!string.IsNullOrEmpty(podConfig.Hostname))
            Namespaces.ValidateHostname(podConfig.Hostname, "config.hostname");
        if (podConfig.Linux?.SecurityContext?.NamespaceOptions?.Pid == NamespaceMode.Target)
            throw new InvalidArgumentException("config.linux.security_context.namespace_options.pid TARGET is for containers, not pods");
    }

    private static async Task RunRecordingProblemAsync(List<string> problems, string what, Func<Task> step)
    {
        try
        {
            await step().ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            problems.Add($"could not {what}: {e.Message}");
        }
    }

    private static void RunRecordingProblem(List<string> problems, string what, Action step)
    {
        try
        {
            step();
        }
        catch (Exception e)
        {
            problems.Add($"could not {what}: {e.Message}");
        }
    }
}
