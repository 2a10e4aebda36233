using System.Collections.Concurrent;
using CriRuntime.Config;
using CriRuntime.Events;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Oci;
using CriRuntime.Pods;
using CriRuntime.State;
using CriRuntime.Storage;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Runtime.V1;
using CriRuntime.Content;

namespace CriRuntime.Containers;

/// <summary>
/// Creates, starts, stops and removes containers. A container is an overlay rootfs of its image's
/// layers, an OCI bundle, and a process that conmon monitors: conmon holds its stdio, writes its CRI
/// log and, when it exits, an exit file that <see cref="ExitMonitor"/> turns into the EXITED state.
/// Because conmon outlives the daemon, a restarted daemon finds its containers still running.
/// </summary>
public sealed partial class ContainerManager : IImagesInUse
{
    private static readonly TimeSpan CgroupKillTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan KillWait = TimeSpan.FromSeconds(10);

    private readonly RecordStore<ContainerRecord> store;
    // Operations (create, start, stop, remove) hold a container's lock for their whole length;
    // record changes take the short record lock, so an exit can be recorded while a stop waits for it.
    private readonly KeyedLocks locks = new();
    private readonly KeyedLocks recordLocks = new();
    private readonly ConcurrentDictionary<string, string> reservedNames = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource> exits = new(StringComparer.Ordinal);
    private readonly PodSandboxManager pods;
    private readonly ImageStore images;
    private readonly LayerStore layers;
    private readonly IContainerRuntimes runtimes;
    private readonly Cgroups cgroups;
    private readonly ILogger logger;
    private readonly CriRuntime.Cdi.CdiRegistry? cdi;
    private readonly string bundlesDir;
    private readonly string containersDir;
    private readonly bool unprivilegedPorts;
    private readonly bool unprivilegedIcmp;
    private readonly ImageVolumesMode imageVolumesMode;
    private readonly CriRuntime.Oci.Spec.LsmHost lsm;
    // The node's huge page sizes do not change while it runs.
    private static readonly Lazy<IReadOnlySet<string>?> hugepageSizes = new(() => LinuxResourcesValidation.HostHugepageSizes());

    public ContainerManager(CriRuntimeConfig config, PodSandboxManager pods, ImageStore images, LayerStore layers, IContainerRuntimes runtimes,
        Cgroups cgroups, ContainerEventHub events, ILogger<ContainerManager> logger, CriRuntime.Cdi.CdiRegistry? cdi = null)
    {
        this.cdi = cdi;
        this.pods = pods;
        this.images = images;
        this.layers = layers;
        this.runtimes = runtimes;
        this.cgroups = cgroups;
        this.logger = logger;
        unprivilegedPorts = config.Runtime.UnprivilegedPorts;
        unprivilegedIcmp = config.Runtime.UnprivilegedIcmp;
        lsm = CriRuntime.Oci.Spec.LsmHost.ForThisHost(logger);
        containersDir = Path.Combine(config.Root, "containers");
        bundlesDir = Path.Combine(config.State, "containers");
        imageVolumesMode = ImageVolumes.ParseMode(config.Runtime.ImageVolumes);
        ExitDir = Path.Combine(config.State, "exits");
        store = new RecordStore<ContainerRecord>(Path.Combine(config.Root, "containers", "records"), ContainerJsonContext.Default.ContainerRecord, logger,
            // The embedded CRI config must parse, and it must name the object (its name is reserved from it).
            validate: r => _ = r.Config.Metadata ?? throw new System.Text.Json.JsonException("its config has no metadata"))
        {
            Changed = (before, after) => ContainerEvents.Publish(events, before, after),
        };
    }

    public string? ContainerUsing(string imageId) =>
        store.All.FirstOrDefault(c => c.ImageId == imageId || c.ImageMounts?.Any(m => m.ImageId == imageId) == true)?.Id;

    /// <summary>Where conmon writes one file per exited container, named by its id.</summary>
    public string ExitDir { get; }

    public IEnumerable<ContainerRecord> List() => store.All.Where(c => c.Phase != ContainerPhase.Creating);

    public ContainerRecord? Find(string id)
    {
        var container = store.FindByIdOrPrefix(id);
        return container is { Phase: not ContainerPhase.Creating } ? container : null;
    }

    public ContainerRecord Get(string id) =>
        Find(id) ?? throw new NotFoundException($"container '{Echo.Of(id)}' not found; ListContainers shows the containers that exist");

    public async Task<ContainerRecord> CreateAsync(string podSandboxId, ContainerConfig containerConfig, CancellationToken cancellationToken)
    {
        if (containerConfig.Metadata is not { } metadata || string.IsNullOrWhiteSpace(metadata.Name))
            throw new InvalidArgumentException("config.metadata.name is empty: give the container a name");
        if (string.IsNullOrWhiteSpace(containerConfig.Image?.Image))
            throw new InvalidArgumentException("config.image.image is empty: name the image to run (as pulled, or its id)");
        ContainerConfigLimits.Validate(containerConfig);
        ContainerConfigValidation.Validate(containerConfig, cgroups.IsUnified, hugepageSizes.Value);
        ContainerConfigValidation.ValidateHostPaths(containerConfig, HostPathResolves, Directory.Exists);
        var cdiDevices = CriRuntime.Cdi.CdiDeviceNames.Requested(containerConfig);
        var cdiEdits = cdiDevices.Count == 0 ? CriRuntime.Cdi.CdiResolution.None
            : (cdi ?? throw new FailedPreconditionException("CDI devices were asked for, but this daemon has no CDI registry")).Resolve(cdiDevices);

        var pod = pods.Get(podSandboxId);
        RequireAcceptsContainers(pod, "created");
        // The pod lock is held to the end, so a stop or removal of the pod waits for this container to be
        // made (or undone) and then finds it. Lock order: see PodLifecycle.
        using var podLock = await pods.LockAsync(pod.Id, cancellationToken).ConfigureAwait(false);
        pod = pods.Get(pod.Id);
        RequireAcceptsContainers(pod, "created");

        var image = images.Find(containerConfig.Image.Image)
            ?? throw new NotFoundException($"image '{Echo.Of(containerConfig.Image.Image)}' is not on this node; pull it first (PullImage / crictl pull)");

        // Everything that can fail before the try below comes first, so no failure leaves the name reserved.
        var runtime = runtimes.Resolve(pod.RuntimeHandler);
        int stopSignal = StopSignals.Effective(containerConfig.StopSignal, image.Config.StopSignal);
        var pidMode = PidModeOf(containerConfig, pod);
        string? targetPidNamespace = pidMode == PidNamespaceMode.Target
            ? PidNamespaceTarget.PathOf(containerConfig.Linux!.SecurityContext!.NamespaceOptions!.TargetId,
                Find(containerConfig.Linux.SecurityContext.NamespaceOptions.TargetId), pod.Id, Signals.Exists)
            : null;
        string id = ObjectIds.New();
        // Image mounts are checked and their images found before anything is made, and recorded with the container.
        var imageMounts = ImageMounts.Plan(containerConfig, images.Find, Path.Combine(bundlesDir, id));
        using var containerLock = await locks.AcquireAsync(id, cancellationToken).ConfigureAwait(false);
        string key = ContainerRecord.ReservationKeyOf(pod.Id, metadata);
        if (!reservedNames.TryAdd(key, id))
            throw new AlreadyExistsException(
                $"pod sandbox {pod.Id} already has a container named {metadata.Name} (attempt {metadata.Attempt}): {reservedNames.GetValueOrDefault(key)}; remove it first or use another attempt");

        string logPath = string.IsNullOrEmpty(pod.Config.LogDirectory) || string.IsNullOrEmpty(containerConfig.LogPath)
            ? ""
            : Path.Combine(pod.Config.LogDirectory, containerConfig.LogPath);
        var container = new ContainerRecord
        {
            Id = id,
            PodSandboxId = pod.Id,
            ConfigBytes = containerConfig.ToByteArray(),
            ImageId = image.Id.ToString(),
            ImageRef = image.RepoDigests.FirstOrDefault() ?? image.Id.ToString(),
            LayerChainIds = [.. image.ChainIds.Select(c => c.ToString())],
            // kubelet passes the image id; crictl ps and pod statuses read better with the tag, as containerd shows it.
            ImageName = image.RepoTags.FirstOrDefault() ?? containerConfig.Image.Image,
            RuntimeHandler = runtime.HandlerName,
            Phase = ContainerPhase.Creating,
            CreatedAt = CriClock.NowNanos(),
            LogPath = logPath,
            Bundle = Path.Combine(bundlesDir, id),
            WritableLayerDir = Path.Combine(containersDir, id),
            CgroupsPath = $"{pod.CgroupParent}/{id}",
            StopSignal = stopSignal,
            ImageMounts = imageMounts.Count > 0 ? imageMounts : null,
        };

        try
        {
            // Persisted first: a crash from here on leaves a Creating record that start-up undoes.
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            await store.PutAsync(container, cancellationToken).ConfigureAwait(false);
            string upper = Path.Combine(container.WritableLayerDir, "upper");
            string work = Path.Combine(container.WritableLayerDir, "work");
            // The writable layer and the bundle (config.json holds the container's env) are the daemon's alone (issue #11);
            // the upper dir's own mode is what the container sees as its "/" (OverlayMount sets it).
            FileModes.CreateDirectory(container.WritableLayerDir, FileModes.PrivateDirectory);
            FileModes.CreateDirectory(container.Bundle, FileModes.PrivateDirectory);
            FileModes.CreateDirectory(container.Rootfs, FileModes.PrivateDirectory);
            OverlayMount.MountLayers(layers, image.ChainIds, upper, work, container.Rootfs);
            var imageMountSources = ImageMounts.MountAll(imageMounts, containerConfig, layers);
            var imageVolumeMounts = ImageVolumes.Prepare(imageVolumesMode, image, containerConfig, container.Rootfs, container.WritableLayerDir,
                container.ImageName, logger);
            var mounted = System.Diagnostics.Stopwatch.GetElapsedTime(started);

            var spec = RuntimeSpecBuilder.BuildContainer(new ContainerSpecInput
            {
                Id = id,
                SandboxId = pod.Id,
                ImageName = containerConfig.Image.Image,
                Config = containerConfig,
                PodConfig = pod.Config,
                Image = image.Config,
                RootfsPath = container.Rootfs,
                NetworkNamespacePath = pod.NetworkNamespace,
                IpcNamespacePath = pod.IpcNamespace,
                UtsNamespacePath = pod.UtsNamespace,
                PidMode = pidMode,
                PodPidNamespacePath = pidMode == PidNamespaceMode.Pod ? await pods.PodPidNamespaceAsync(pod, cancellationToken).ConfigureAwait(false) : null,
                TargetPidNamespacePath = targetPidNamespace,
                HostIpc = pod.Config.Linux?.SecurityContext?.NamespaceOptions?.Ipc == NamespaceMode.Node,
                UnprivilegedPorts = unprivilegedPorts,
                UnprivilegedIcmp = unprivilegedIcmp,
                HugetlbAvailable = cgroups.HasHugetlb,
                CgroupsPath = container.CgroupsPath,
                HostnameFile = Path.Combine(pod.PodStateDir, "hostname"),
                HostsFile = Path.Combine(pod.PodStateDir, "hosts"),
                ResolvConfFile = Path.Combine(pod.PodStateDir, "resolv.conf"),
                ShmPath = pod.ShmPath,
                Hostname = pod.Hostname,
                ImageMountSources = imageMountSources,
                ImageVolumeMounts = imageVolumeMounts,
                CgroupV2 = cgroups.IsUnified,
                Lsm = lsm,
                CdiEdits = cdiEdits.Edits,
            });
            RuntimeSpecBuilder.WriteBundle(container.Bundle, spec);
            var specWritten = System.Diagnostics.Stopwatch.GetElapsedTime(started);

            if (logPath.Length > 0) Directory.CreateDirectory(Path.GetDirectoryName(logPath)!);
            FileModes.CreateDirectory(ExitDir, FileModes.PrivateDirectory);
            File.Delete(Path.Combine(ExitDir, id));
            int containerPid = await runtime.CreateAsync(new RuntimeCreateRequest
            {
                Id = id,
                BundleDir = container.Bundle,
                LogPath = logPath.Length > 0 ? logPath : Path.Combine(container.Bundle, "output.log"),
                ExitDir = ExitDir,
                Terminal = containerConfig.Tty,
                Stdin = containerConfig.Stdin,
                StdinOnce = containerConfig.StdinOnce,
            }, cancellationToken).ConfigureAwait(false);

            var conmonDone = System.Diagnostics.Stopwatch.GetElapsedTime(started);
            OverlayMount.SealHostSide(container.Rootfs);
            container = container with { Phase = ContainerPhase.Created, Pid = containerPid, User = ProcessUserOf(spec) };
            await store.PutAsync(container, CancellationToken.None).ConfigureAwait(false);
            logger.LogInformation("Container {Id} ({Name}) created in pod sandbox {Pod} from {Image}", id, Echo.Of(metadata.Name), pod.Id, image.Id);
            logger.LogDebug("Container {Id}: rootfs mounted at {Mounted:F1} ms, spec written at {Spec:F1} ms, created by conmon at {Conmon:F1} ms, recorded at {Total:F1} ms",
                id, mounted.TotalMilliseconds, specWritten.TotalMilliseconds, conmonDone.TotalMilliseconds, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return container;
        }
        catch (Exception e)
        {
            logger.LogWarning("Creating container {Name} in pod sandbox {Pod} failed, undoing it: {Error}", Echo.Of(metadata.Name), pod.Id, Echo.Capped(e.Message, 4096));
            await DiscardAsync(container, CancellationToken.None).ConfigureAwait(false);
            reservedNames.TryRemove(new KeyValuePair<string, string>(key, id));
            throw;
        }
    }

    /// <summary>Whether a host path names something that exists, following symlinks (a dangling one does not).</summary>
    private static bool HostPathResolves(string path)
    {
        try
        {
            Files.RealPath(path);
            return true;
        }
        catch (NativeException e) when (e.Errno is Errno.ENOENT or Errno.ENOTDIR)
        {
            return false;
        }
    }

    public async Task StartAsync(string containerId, CancellationToken cancellationToken)
    {
        var container = Get(containerId);
        using var containerLock = await locks.AcquireAsync(container.Id, cancellationToken).ConfigureAwait(false);
        container = Get(container.Id);
        // The pod first, as containerd checks it: a stopped pod's containers were stopped with it, and "the pod is not
        // ready" is what the caller must act on. Without the pod lock: a stop of the pod marks it stopping first, then
        // waits for this container's lock.
        RequireAcceptsContainers(pods.Get(container.PodSandboxId), "started");
        if (container.Phase != ContainerPhase.Created)
            throw new FailedPreconditionException($"container {container.Id} is {StateName(container.Phase)}, not CREATED; only a created container can be started");
        var runtime = runtimes.Resolve(container.RuntimeHandler);
        try
        {
            await runtime.StartAsync(container.Id, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // As containerd does: the container is done, with the start error as its message.
            await UpdateAsync(container.Id, c => c.Phase != ContainerPhase.Created ? null : c with
            {
                Phase = ContainerPhase.Exited,
                ExitCode = 128,
                FinishedAt = CriClock.NowNanos(),
                Reason = "StartError",
                Message = e.Message,
            }).ConfigureAwait(false);
            throw;
        }
        long startedAt = CriClock.NowNanos();
        // An exit recorded while we were starting already made the record EXITED; keep that.
        await UpdateAsync(container.Id, c => c.Phase switch
        {
            ContainerPhase.Created => c with { Phase = ContainerPhase.Running, StartedAt = startedAt },
            ContainerPhase.Exited when c.StartedAt == 0 => c with { StartedAt = Math.Min(startedAt, c.FinishedAt) },
            _ => null,
        }).ConfigureAwait(false);
        logger.LogInformation("Container {Id} started", container.Id);
    }

    /// <summary>
    /// Sends the stop signal, waits up to <paramref name="timeout"/>, then kills every process of the
    /// container. A container that is not running is left as it is (CRI: idempotent).
    /// </summary>
    public async Task StopAsync(string containerId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var container = Get(containerId);
        using var containerLock = await locks.AcquireAsync(container.Id, cancellationToken).ConfigureAwait(false);
        await StopLockedAsync(container.Id, timeout, cancellationToken).ConfigureAwait(false);
    }

    private async Task StopLockedAsync(string containerId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var container = store.Find(containerId);
        if (container is null || container.Phase is ContainerPhase.Exited or ContainerPhase.Creating) return;
        var runtime = runtimes.Resolve(container.RuntimeHandler);
        var exited = exits.GetOrAdd(container.Id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

        if (container.Phase == ContainerPhase.Running && timeout > TimeSpan.Zero)
        {
            await runtime.KillAsync(container.Id, container.StopSignal, all: false, cancellationToken).ConfigureAwait(false);
            if (await WaitAsync(exited, timeout, cancellationToken).ConfigureAwait(false)) return;
            logger.LogInformation("Container {Id} did not stop within {Timeout}s of signal {Signal}; killing it", container.Id, timeout.TotalSeconds, container.StopSignal);
        }

        await runtime.KillAsync(container.Id, Signals.SIGKILL, all: true, cancellationToken).ConfigureAwait(false);
        if (await WaitAsync(exited, KillWait, cancellationToken).ConfigureAwait(false)) return;

        // A created (never started) container has no conmon exit to wait for on some runtimes, and
        // an exit file can be lost; the runtime's own word settles it.
        var state = await runtime.StateAsync(container.Id, cancellationToken).ConfigureAwait(false);
        if (state is null || state.Status == "stopped")
        {
            await MarkExitedAsync(container.Id, fallbackExitCode: 137, cancellationToken).ConfigureAwait(false);
            return;
        }
        throw new TimeoutException($"container {container.Id} did not exit {KillWait.TotalSeconds}s after SIGKILL; its state is {state.Status}");
    }

    /// <summary>Removes a container, stopping it first if needed. An unknown id is not an error.</summary>
    public async Task RemoveAsync(string containerId, CancellationToken cancellationToken)
    {
        var container = Find(containerId);
        if (container is null) return;
        using var containerLock = await locks.AcquireAsync(container.Id, cancellationToken).ConfigureAwait(false);
        await StopLockedAsync(container.Id, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        container = store.Find(container.Id);
        if (container is null) return;
        var problems = await ReleaseAsync(container, cancellationToken).ConfigureAwait(false);
        if (problems.Count > 0)
            throw new IOException($"container {container.Id} was only partly removed: {string.Join("; ", problems)}; retry RemoveContainer");
        store.Delete(container.Id);
        exits.TryRemove(container.Id, out _);
        reservedNames.TryRemove(new KeyValuePair<string, string>(container.ReservationKey, container.Id));
        logger.LogInformation("Container {Id} removed", container.Id);
    }

    /// <summary>Stops every container of the pod; the caller holds the pod's lock, so no container is being created in it.</summary>
    internal async Task StopAllInPodAsync(string podId, CancellationToken cancellationToken)
    {
        // StopPodSandbox forcibly stops every container of the pod (CRI), all at once.
        await Task.WhenAll(store.All.Where(c => c.PodSandboxId == podId).Select(async c =>
        {
            using var containerLock = await locks.AcquireAsync(c.Id, cancellationToken).ConfigureAwait(false);
            await StopLockedAsync(c.Id, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        })).ConfigureAwait(false);
    }

    /// <summary>Removes every container of the pod; the caller holds the pod's lock.</summary>
    internal Task RemoveAllInPodAsync(string podId, CancellationToken cancellationToken) =>
        Task.WhenAll(store.All.Where(c => c.PodSandboxId == podId).Select(c => RemoveAsync(c.Id, cancellationToken)));

    public async Task<ExecResult> ExecSyncAsync(string containerId, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (command.Count == 0 || string.IsNullOrEmpty(command[0]))
            throw new InvalidArgumentException("cmd is empty: give the command to run in the container");
        var container = Get(containerId);
        if (container.Phase != ContainerPhase.Running)
            throw new FailedPreconditionException($"container {container.Id} is {StateName(container.Phase)}; commands can only be executed in a running container");
        return await runtimes.Resolve(container.RuntimeHandler).ExecSyncAsync(container.Id, command, timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Checks that an exec into <paramref name="containerId"/> can start now (it exists and runs).</summary>
    public void RequireRunningForExec(string containerId)
    {
        var container = Get(containerId);
        if (container.Phase != ContainerPhase.Running)
            throw new FailedPreconditionException($"container {container.Id} is {StateName(container.Phase)}; commands can only be executed in a running container");
    }

    /// <summary>Runs a command in a running container with streamed stdio (the streaming server's exec); returns its exit code.</summary>
    public async Task<int> ExecStreamingAsync(string containerId, IReadOnlyList<string> command, ExecStdio stdio, CancellationToken cancellationToken)
    {
        if (command.Count == 0 || string.IsNullOrEmpty(command[0]))
            throw new InvalidArgumentException("cmd is empty: give the command to run in the container");
        RequireRunningForExec(containerId);
        var container = Get(containerId);
        return await runtimes.Resolve(container.RuntimeHandler).ExecStreamingAsync(container.Id, command, stdio, cancellationToken).ConfigureAwait(false);
    }

    public async Task ReopenLogAsync(string containerId, CancellationToken cancellationToken)
    {
        var container = Get(containerId);
        if (container.Phase != ContainerPhase.Running)
            throw new FailedPreconditionException($"container {container.Id} is {StateName(container.Phase)}; only a running container's log can be reopened");
        // With the path, the monitor is also waited for until the new file exists, as kubelet expects.
        await runtimes.Resolve(container.RuntimeHandler)
            .ReopenLogAsync(container.Bundle, container.LogPath.Length > 0 ? container.LogPath : null, cancellationToken).ConfigureAwait(false);
    }

    public async Task UpdateResourcesAsync(string containerId, LinuxContainerResources resources, CancellationToken cancellationToken)
    {
        LinuxResourcesValidation.Validate(resources, "linux", cgroups.IsUnified, hugepageSizes.Value);
        var container = Get(containerId);
        using var containerLock = await locks.AcquireAsync(container.Id, cancellationToken).ConfigureAwait(false);
        container = Get(container.Id);
        if (container.Phase is ContainerPhase.Exited)
            throw new FailedPreconditionException($"container {container.Id} has exited; resources of an exited container cannot be updated");
        await runtimes.Resolve(container.RuntimeHandler).UpdateResourcesAsync(container.Id, resources, cancellationToken).ConfigureAwait(false);
        await UpdateAsync(container.Id, c =>
        {
            var config = c.Config.Clone();
            config.Linux ??= new LinuxContainerConfig();
            config.Linux.Resources = resources;
            return c with { ConfigBytes = config.ToByteArray() };
        }).ConfigureAwait(false);
    }

    /// <summary>Called when conmon wrote an exit file: records the exit and wakes whoever waits for it.</summary>
    public async Task HandleExitAsync(string containerId, CancellationToken cancellationToken)
    {
        var container = store.Find(containerId);
        if (container is null || container.Phase is ContainerPhase.Exited or ContainerPhase.Creating) return;
        await MarkExitedAsync(containerId, fallbackExitCode: null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Ids of running containers whose exit file exists: a safety net for missed watcher events.</summary>
    public IEnumerable<string> ExitedButNotRecorded() =>
        store.All.Where(c => c.Phase is ContainerPhase.Running or ContainerPhase.Created && File.Exists(Path.Combine(ExitDir, c.Id))).Select(c => c.Id);

    private async Task MarkExitedAsync(string containerId, int? fallbackExitCode, CancellationToken cancellationToken)
    {
        var container = store.Find(containerId);
        if (container is null || container.Phase is ContainerPhase.Exited or ContainerPhase.Creating) return;
        int exitCode;
        DateTimeOffset finishedAt;
        if (!ExitFiles.TryRead(ExitDir, containerId, out exitCode, out finishedAt))
        {
            if (fallbackExitCode is null) return;
            exitCode = fallbackExitCode.Value;
            finishedAt = DateTimeOffset.UtcNow;
        }
        bool oomKilled = cgroups.OomKillCount(container.CgroupsPath) > 0;
        string reason = oomKilled ? "OOMKilled" : exitCode == 0 ? "Completed" : "Error";
        long finished = (finishedAt - DateTimeOffset.UnixEpoch).Ticks * 100;
        var updated = await UpdateAsync(containerId, c => c.Phase is ContainerPhase.Exited or ContainerPhase.Creating ? null : c with
        {
            Phase = ContainerPhase.Exited,
            ExitCode = exitCode,
            FinishedAt = c.StartedAt > 0 ? Math.Max(finished, c.StartedAt) : finished,
            Reason = reason,
        }).ConfigureAwait(false);
        if (updated is null) return;
        logger.LogInformation("Container {Id} exited with code {ExitCode} ({Reason})", containerId, exitCode, reason);
        exits.GetOrAdd(containerId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    // ---- what start-up recovery (Recovery/ContainerRecovery) needs; nothing else calls these.

    /// <summary>Persistent per-container directories (overlay upper and work) live here, one per id.</summary>
    internal string WritableLayersDir => containersDir;

    /// <summary>OCI bundles live here, one per id.</summary>
    internal string BundlesDir => bundlesDir;

    /// <summary>Reads the records from disk (see <see cref="RecordStore{T}.Load"/>).</summary>
    internal StoreLoadReport LoadRecords()
    {
        FileModes.CreateDirectory(ExitDir, FileModes.PrivateDirectory);
        return store.Load();
    }

    internal IReadOnlyList<ContainerRecord> AllRecords() => store.All.ToList();

    internal ContainerRecord? FindRecord(string id) => store.Find(id);

    internal string RecordPath(string id) => store.PathOf(id);

    /// <summary>True when a record with this id exists on disk but is not loaded (newer version, held back, quarantined).</summary>
    internal bool IsNotLoaded(string id) => store.IsNotLoaded(id, out _);

    internal void ReserveName(ContainerRecord container) => reservedNames[container.ReservationKey] = container.Id;

    internal Task PutRecordAsync(ContainerRecord container, CancellationToken cancellationToken) => store.PutAsync(container, cancellationToken);

    /// <summary>Forgets a record without touching its file or directories (its pod is held back); sweeps spare it.</summary>
    internal void HoldBack(string id, string why) => store.Unload(id, why);

    /// <summary>Moves the record into quarantine and frees its name; the container's directories are left as they are.</summary>
    internal QuarantinedItem? QuarantineRecord(ContainerRecord container, string reason)
    {
        var item = store.MoveToQuarantine(container.Id, reason);
        reservedNames.TryRemove(new KeyValuePair<string, string>(container.ReservationKey, container.Id));
        return item;
    }

    /// <summary>Records an exit that conmon wrote while the daemon was down.</summary>
    internal Task RecordExitFromFileAsync(string id, CancellationToken cancellationToken) => MarkExitedAsync(id, fallbackExitCode: null, cancellationToken);

    /// <summary>Undoes every part of a container that exists and deletes its record; returns what could not be undone (the record then stays).</summary>
    internal async Task<List<string>> TryDiscardAsync(ContainerRecord container, CancellationToken cancellationToken)
    {
        var problems = await ReleaseAsync(container, cancellationToken).ConfigureAwait(false);
        if (problems.Count == 0) store.Delete(container.Id);
        return problems;
    }

    /// <summary>
    /// Layers that containers' root file systems are made of, as chain ids, for garbage collection; null when that
    /// cannot be known for some container (then no layer may be collected). Taken from each record (written at create
    /// time), else from its image, and in any case from every overlay mounted under the bundles dir, so a container
    /// whose record is quarantined or unreadable still protects the layers its mounted rootfs uses.
    /// </summary>
    public IReadOnlySet<Digest>? LayersInUse()
    {
        var used = new HashSet<Digest>();
        bool unknown = false;
        foreach (var container in store.All)
        {
            foreach (var mount in container.ImageMounts ?? [])
            {
                foreach (var text in mount.LayerChainIds)
                {
                    if (Digest.TryParse(text, out var chainId)) used.Add(chainId);
                    else unknown = true;
                }
            }
            if (container.LayerChainIds is { } recorded)
            {
                foreach (var text in recorded)
                {
                    if (Digest.TryParse(text, out var chainId)) used.Add(chainId);
                    else unknown = true;
                }
            }
            else if (Digest.TryParse(container.ImageId, out var imageId) && images.List().FirstOrDefault(i => i.Id == imageId) is { } image)
            {
                used.UnionWith(image.ChainIds);
            }
            else if (!Mounts.IsMountPoint(container.Rootfs))
            {
                // An older record whose image is gone and whose rootfs is not mounted (a reboot): its layers are
                // unknown, and collecting none is the only safe answer until it is removed.
                logger.LogWarning("Container {Id}: its layers are unknown (older record, image {Image} gone, rootfs not mounted); no layer is collected while it exists",
                    container.Id, container.ImageId);
                unknown = true;
            }
        }
        foreach (var (id, why) in store.NotLoaded)
        {
            if (why.StartsWith("quarantined", StringComparison.Ordinal)) continue; // unreadable: the mount scan below covers it
            // A newer daemon's record (or one held back with it): what it uses cannot be judged here.
            logger.LogInformation("Container record {Id} is not loaded ({Why}); no layer is collected", id, why);
            unknown = true;
        }
        string bundlesPrefix = bundlesDir.TrimEnd('/') + "/";
        foreach (var mount in Mounts.ReadMountInfo())
        {
            if (mount.FsType != "overlay" || !mount.MountPoint.StartsWith(bundlesPrefix, StringComparison.Ordinal)) continue;
            foreach (var option in mount.SuperOptions.Split(','))
            {
                if (!option.StartsWith("lowerdir=", StringComparison.Ordinal)) continue;
                foreach (var lower in option["lowerdir=".Length..].Split(':'))
                {
                    if (layers.ChainIdOfLowerDir(lower) is { } chainId) used.Add(chainId);
                }
            }
        }
        return unknown ? null : used;
    }

    /// <summary>
    /// Undoes a container no one can use any more (a failed or interrupted create, or one whose pod
    /// is gone). What cannot be undone now keeps its record, hidden in the Creating phase, so the
    /// next start-up tries again instead of leaking it.
    /// </summary>
    private async Task DiscardAsync(ContainerRecord container, CancellationToken cancellationToken)
    {
        var problems = await ReleaseAsync(container, cancellationToken).ConfigureAwait(false);
        if (problems.Count == 0)
        {
            store.Delete(container.Id);
            return;
        }
        await store.PutAsync(container with { Phase = ContainerPhase.Creating }, CancellationToken.None).ConfigureAwait(false);
        logger.LogWarning("Container {Id} is kept for clean-up at the next start-up", container.Id);
    }

    /// <summary>Undoes every part of a container that exists; returns what could not be undone.</summary>
    internal async Task<List<string>> ReleaseAsync(ContainerRecord container, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        var runtime = runtimes.Resolve(container.RuntimeHandler);
        try
        {
            await runtime.DeleteAsync(container.Id, force: true, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            problems.Add($"could not delete it from {runtime.HandlerName}: {e.Message}");
        }
        try
        {
            await cgroups.KillAllAndRemoveAsync(container.CgroupsPath, CgroupKillTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            problems.Add($"could not remove its cgroup {container.CgroupsPath}: {e.Message}");
        }
        if (Mounts.IsMountPoint(container.Rootfs) && Mounts.TryUnmount(container.Rootfs, UnmountFlags.Detach) != 0 && Mounts.IsMountPoint(container.Rootfs))
            problems.Add($"could not unmount its rootfs {container.Rootfs}");
        problems.AddRange(ImageMounts.UnmountAll(container.Bundle));
        // Nothing is deleted through a mount: not the rootfs, not an image mount.
        if (!Mounts.IsMountPoint(container.Rootfs) && !ImageMounts.AnyMounted(container.Bundle))
        {
            foreach (var dir in new[] { container.Bundle, container.WritableLayerDir })
            {
                try
                {
                    Files.RemoveTree(dir); // iterative: a container may have made a tree deeper than PATH_MAX
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    problems.Add($"could not delete {dir}: {e.Message}");
                }
            }
        }
        try
        {
            File.Delete(Path.Combine(ExitDir, container.Id));
        }
        catch (IOException e)
        {
            problems.Add($"could not delete its exit file: {e.Message}");
        }
        foreach (var problem in problems) logger.LogWarning("Container {Id}: {Problem}", container.Id, problem);
        return problems;
    }

    /// <summary>
    /// Read-modify-write of one record under its short record lock. <paramref name="change"/> returns
    /// the new record, or null to leave it; the result is what was written, or null for no change.
    /// </summary>
    private async Task<ContainerRecord?> UpdateAsync(string id, Func<ContainerRecord, ContainerRecord?> change)
    {
        using var recordLock = await recordLocks.AcquireAsync(id, CancellationToken.None).ConfigureAwait(false);
        var current = store.Find(id);
        if (current is null) return null;
        var next = change(current);
        if (next is null) return null;
        // Durable before visible, and never abandoned half way: the record must match reality.
        await store.PutAsync(next, CancellationToken.None).ConfigureAwait(false);
        return next;
    }

    private void RequireAcceptsContainers(PodSandboxRecord pod, string verb)
    {
        if (!pods.AcceptsContainers(pod))
            throw new FailedPreconditionException(
                $"pod sandbox {pod.Id} is not ready ({(pods.IsStopping(pod.Id) ? "it is being stopped or removed" : "it was stopped, or lost its namespaces to a node reboot")}); containers can only be {verb} in a ready pod: run a new pod sandbox (RunPodSandbox) and create the container there");
    }

    private static PidNamespaceMode PidModeOf(ContainerConfig config, PodSandboxRecord pod)
    {
        var mode = config.Linux?.SecurityContext?.NamespaceOptions?.Pid ?? pod.PidMode;
        return mode switch
        {
            NamespaceMode.Node => PidNamespaceMode.Node,
            NamespaceMode.Container => PidNamespaceMode.Container,
            NamespaceMode.Target => PidNamespaceMode.Target,
            _ => pod.InfraId is null ? PidNamespaceMode.Container : PidNamespaceMode.Pod,
        };
    }

    private static ContainerProcessUser? ProcessUserOf(RuntimeSpec spec) => spec.Process?.User is { } user
        ? new ContainerProcessUser(user.Uid, user.Gid, [.. (user.AdditionalGids ?? []).Select(g => (long)g)])
        : null;

    private static async Task<bool> WaitAsync(Task exited, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await exited.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    public static string StateName(ContainerPhase phase) => phase switch
    {
        ContainerPhase.Created => "CREATED",
        ContainerPhase.Running => "RUNNING",
        ContainerPhase.Exited => "EXITED",
        _ => "UNKNOWN",
    };

}
