using System.Collections.Concurrent;
using System.Security.Cryptography;
using CriRuntime.Config;
using CriRuntime.Containers;
using CriRuntime.Events;
using CriRuntime.Images;

using CriRuntime.Lifecycle;
using CriRuntime.Native;
using CriRuntime.Network.Cni;
using CriRuntime.Oci;
using CriRuntime.Pods;
using CriRuntime.Recovery;
using CriRuntime.Storage;
using CriRuntime.Tests.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;
using CriRuntime.Content;

namespace CriRuntime.Tests.Lifecycle;

/// <summary>
/// A runtime that only keeps state, with hooks to fail or hold a step: the managers above it run for real
/// (records, overlay rootfs, cgroups, pod files), only conmon and runc are left out.
/// </summary>
internal sealed class FakeContainerRuntime : IContainerRuntime, IContainerRuntimes
{
    private readonly ConcurrentDictionary<string, (string Status, string ExitDir)> containers = new(StringComparer.Ordinal);

    public string HandlerName => "fake";
    public string DefaultHandler => "fake";
    public IEnumerable<string> Names => ["fake"];

    /// <summary>Runs inside create, before the container exists; may block or throw.</summary>
    public Func<RuntimeCreateRequest, Task>? OnCreate { get; set; }

    /// <summary>Runs inside kill, before the container stops; may block.</summary>
    public Func<string, Task>? OnKill { get; set; }

    /// <summary>What conmon's exit file would trigger: the container manager's exit handling.</summary>
    public Func<string, Task>? OnExit { get; set; }

    /// <summary>When set, delete fails with this message (a runtime that cannot clean up now).</summary>
    public string? DeleteFailure { get; set; }

    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>Containers the runtime knows (created and not deleted).</summary>
    public ICollection<string> Known => containers.Keys;

    public IContainerRuntime Resolve(string? handler) =>
        string.IsNullOrEmpty(handler) || handler == "fake" ? this : throw new ArgumentException($"runtime handler '{handler}' is not configured");

    public async Task<int> CreateAsync(RuntimeCreateRequest request, CancellationToken ct)
    {
        Calls.Enqueue($"create {request.Id}");
        if (OnCreate is not null) await OnCreate(request).ConfigureAwait(false);
        containers[request.Id] = ("created", request.ExitDir);
        return 4242;
    }

    public Task StartAsync(string id, CancellationToken ct)
    {
        Calls.Enqueue($"start {id}");
        if (!containers.TryGetValue(id, out var c) || c.Status != "created") throw new OciRuntimeException($"fake start {id}: not created");
        containers[id] = c with { Status = "running" };
        return Task.CompletedTask;
    }

    public async Task KillAsync(string id, int signal, bool all, CancellationToken ct)
    {
        Calls.Enqueue($"kill {id} {signal}");
        if (OnKill is not null) await OnKill(id).ConfigureAwait(false);
        if (!containers.TryGetValue(id, out var c) || c.Status == "stopped") return;
        containers[id] = c with { Status = "stopped" };
        // As conmon does when the container's process exits.
        File.WriteAllText(Path.Combine(c.ExitDir, id), (128 + signal).ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (OnExit is not null) await OnExit(id).ConfigureAwait(false);
    }

    public Task DeleteAsync(string id, bool force, CancellationToken ct)
    {
        Calls.Enqueue($"delete {id}");
        if (DeleteFailure is not null) throw new OciRuntimeException(DeleteFailure);
        containers.TryRemove(id, out _);
        return Task.CompletedTask;
    }

    public Task<OciState?> StateAsync(string id, CancellationToken ct) =>
        Task.FromResult(containers.TryGetValue(id, out var c) ? new OciState(id, c.Status, 4242, "") : null);

    public Task<ExecResult> ExecSyncAsync(string id, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken ct) =>
        throw new NotSupportedException("not used by these tests");

    public Task<int> ExecStreamingAsync(string id, IReadOnlyList<string> command, ExecStdio stdio, CancellationToken ct) =>
        throw new NotSupportedException("the lifecycle tests do not exec");

    public Task<int> ExecTerminalAsync(string id, IReadOnlyList<string> command, TerminalStdio stdio, CancellationToken ct) =>
        throw new NotSupportedException("the lifecycle tests do not exec");

    public Task AttachAsync(AttachTarget target, AttachStdio stdio, CancellationToken ct) =>
        throw new NotSupportedException("the lifecycle tests do not attach");

    public Task UpdateResourcesAsync(string id, LinuxContainerResources resources, CancellationToken ct) =>
        throw new NotSupportedException("not used by these tests");

    public Task ReopenLogAsync(string bundleDir, string? logPath, CancellationToken ct) =>
        throw new NotSupportedException("not used by these tests");
}

/// <summary>
/// The pod and container managers and the lifecycle coordinator over a scratch root and state dir, a real layer
/// store with one one-layer image, real cgroups under a test parent, and a <see cref="FakeContainerRuntime"/>.
/// Pods use the host's network and IPC and no shared PID namespace, so no CNI and no namespaces are involved.
/// </summary>
internal sealed class PodWorld : IAsyncDisposable
{
    private readonly TempDir tmp = new();
    private readonly CniManager cni;
    private readonly Cgroups cgroups = Cgroups.Detect();
    private readonly ImageStore images;
    private readonly LayerStore layers;
    private readonly CriRuntimeConfig config;

    private PodWorld()
    {
        string suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5));
        CgroupParent = $"/criruntime-test-{suffix}";
        config = new CriRuntimeConfig { Root = tmp["root"], State = tmp["state"] };
        cni = new CniManager(tmp["cni/conf"], [tmp["cni/bin"]], tmp["cni/cache"], NullLogger<CniManager>.Instance, TimeSpan.FromSeconds(5));
        images = new ImageStore(tmp["root/images"], NullLogger<ImageStore>.Instance);
        layers = new LayerStore(tmp["root/overlay"], NullLogger<LayerStore>.Instance);
        Pods = null!;
        Containers = null!;
        Lifecycle = null!;
        Image = null!;
    }

    public FakeContainerRuntime Runtime { get; } = new();

    public ImageManager Images { get; private set; } = null!;

    /// <summary>The layer store (shared by every restart, reloaded by recovery).</summary>
    public LayerStore Layers => layers;

    /// <summary>What the last <see cref="RestartAsync"/>'s recovery set aside or left alone.</summary>
    public RecoveryReport Recovery { get; private set; } = new();
    public string CgroupParent { get; }
    public ImageRecord Image { get; private set; }
    public PodSandboxManager Pods { get; private set; }
    public ContainerManager Containers { get; private set; }
    public PodLifecycle Lifecycle { get; private set; }
    public string StateDir => config.State;
    public string RootDir => config.Root;

    public static async Task<PodWorld> CreateAsync()
    {
        var world = new PodWorld();
        byte[] tar = new TestTar().File("etc/hostname", "test\n").Build();
        var diffId = Digest.Sha256(tar);
        await world.layers.EnsureAsync(diffId, null, diffId, _ => Task.FromResult<Stream>(new MemoryStream(Compress.Gzip(tar))), CancellationToken.None);
        world.Image = await world.images.PutAsync(new ImageRecord
        {
            Id = Digest.Sha256($"config {world.CgroupParent}"),
            RepoTags = ["test.invalid/fake:1"],
            RepoDigests = [],
            ManifestDigest = Digest.Sha256($"manifest {world.CgroupParent}"),
            ChainIds = [diffId],
            Size = tar.Length,
            Platform = "linux/amd64",
            PulledAt = DateTimeOffset.UtcNow,
            Config = new ImageRuntimeConfig { Cmd = ["/bin/sh"] },
            Blobs = [],
        }, CancellationToken.None);
        await world.RestartAsync();
        return world;
    }

    /// <summary>New managers over the same dirs and runtime, recovered as the daemon does at start-up.</summary>
    public async Task RestartAsync()
    {
        var events = new ContainerEventHub(NullLogger<ContainerEventHub>.Instance);
        Pods = new PodSandboxManager(config, Runtime, cgroups, cni, events, NullLogger<PodSandboxManager>.Instance);
        Containers = new ContainerManager(config, Pods, images, layers, Runtime, cgroups, events, NullLogger<ContainerManager>.Instance);
        Lifecycle = new PodLifecycle(Pods, Containers, NullLogger<PodLifecycle>.Instance);
        var containers = Containers;
        Runtime.OnExit = id => containers.HandleExitAsync(id, CancellationToken.None);
        // The daemon's whole start-up recovery, in its order, with a real image manager (no registry is ever asked).
        Images = new ImageManager(config, images, layers, new BlobStore(tmp["root/blobs"]),
            new CriRuntime.Images.Distribution.RegistryClient(new RegistryHosts(tmp["certs.d"]), NullLogger<CriRuntime.Images.Distribution.RegistryClient>.Instance, TimeSpan.FromSeconds(5)),
            Containers, NullLogger<ImageManager>.Instance);
        Recovery = new RecoveryReport();
        var recovery = new StartupRecovery(new ImageRecovery(Images), new PodRecovery(Pods, NullLogger<PodRecovery>.Instance),
            new ContainerRecovery(Containers, Pods, Runtime, NullLogger<ContainerRecovery>.Instance), new ImageGarbageCollection(Images),
            Recovery, NullLogger<StartupRecovery>.Instance);
        await recovery.RunAsync(CancellationToken.None);
    }

    public Task<PodSandboxRecord> RunPodAsync(string name) => Pods.RunAsync(new PodSandboxConfig
    {
        Metadata = new PodSandboxMetadata { Name = name, Namespace = "test", Uid = $"uid-{name}" },
        Linux = new LinuxPodSandboxConfig
        {
            CgroupParent = $"{CgroupParent}/{name}",
            SecurityContext = new LinuxSandboxSecurityContext
            {
                NamespaceOptions = new NamespaceOption { Network = NamespaceMode.Node, Ipc = NamespaceMode.Node, Pid = NamespaceMode.Container },
            },
        },
    }, null, CancellationToken.None);

    public ContainerConfig ContainerConfig(string name) => new()
    {
        Metadata = new ContainerMetadata { Name = name },
        Image = new ImageSpec { Image = Image.Id.ToString() },
    };

    /// <summary>Container records on disk, whatever their phase (Creating ones are hidden from List).</summary>
    public IReadOnlyList<string> ContainerRecordFiles() =>
        Directory.Exists(Path.Combine(RootDir, "containers", "records"))
            ? Directory.GetFiles(Path.Combine(RootDir, "containers", "records"))
            : [];

    /// <summary>Mounts under the scratch dir (container rootfs overlays).</summary>
    public IReadOnlyList<string> Mounts() =>
        global::CriRuntime.Native.Mounts.ReadMountInfo().Select(m => m.MountPoint).Where(m => m.StartsWith(tmp.Path + "/", StringComparison.Ordinal)).ToList();

    public async ValueTask DisposeAsync()
    {
        try
        {
            await cgroups.KillAllAndRemoveAsync(CgroupParent, TimeSpan.FromSeconds(10), CancellationToken.None);
        }
        finally
        {
            cni.Dispose();
            tmp.Dispose();
        }
    }
}
