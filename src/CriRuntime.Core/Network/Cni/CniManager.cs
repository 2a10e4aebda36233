using System.Text.Json.Nodes;
using CriRuntime.Native;
using CriRuntime.State;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Network.Cni;

/// <summary>
/// Attaches pod sandboxes to the CNI network and reports whether that network is usable.
/// <para>
/// Each sandbox gets two attachments, in this order: the <c>loopback</c> plugin on "lo" (when the binary is in
/// the bin dirs; containerd does the same, so the runtime need not bring lo up itself), then the network from
/// conf_dir on "eth0". What was attached, with which config and arguments, and the results, are kept in a cache
/// entry per sandbox so DEL and CHECK repeat exactly what ADD did, across restarts and config changes.
/// </para>
/// <para>Calls for one sandbox are serialized; different sandboxes run in parallel.</para>
/// </summary>
public sealed class CniManager : IDisposable
{
    private const string PodIfName = "eth0";
    private const string LoopbackIfName = "lo";
    private const string LoopbackType = "loopback";
    private const long NsfsMagic = 0x6e736673;

    /// <summary>Fallback re-read of conf_dir when no watcher event arrived (the directory may not exist yet, or
    /// inotify may have missed a change on some file systems).</summary>
    private static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(3);

    private readonly string confDir;
    private readonly ILogger<CniManager> logger;
    private readonly CniPluginInvoker plugins;
    private readonly CniResultCache cache;
    private readonly KeyedLocks sandboxLocks = new();
    private readonly Lock watcherGate = new();
    private FileSystemWatcher? watcher;
    private CniConfigSnapshot snapshot;
    private int changed = 1;
    private bool disposed;

    public CniManager(string confDir, IReadOnlyList<string> binDirs, string cacheDir, ILogger<CniManager> logger, TimeSpan pluginTimeout)
    {
        ArgumentException.ThrowIfNullOrEmpty(confDir);
        ArgumentException.ThrowIfNullOrEmpty(cacheDir);
        if (binDirs.Count == 0) throw new ArgumentException("at least one CNI bin dir is needed", nameof(binDirs));
        if (pluginTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(pluginTimeout), pluginTimeout, "the plugin timeout must be positive");
        this.confDir = Path.GetFullPath(confDir);
        this.logger = logger;
        plugins = new CniPluginInvoker([.. binDirs], pluginTimeout);
        cache = new CniResultCache(cacheDir);
        snapshot = new CniConfigSnapshot(null, CniStatus.NotReady("CNI config not loaded yet"), [], long.MinValue / 2);
        Reload();
    }

    /// <summary>The NetworkReady condition. Cheap: re-reads conf_dir only after the watcher saw a change or
    /// every few seconds.</summary>
    public CniStatus Status => Current().Status;

    public string ConfDir => confDir;

    /// <summary>Where the result cache entry of a sandbox lives.</summary>
    public string CacheEntryPath(string sandboxId) => cache.PathOf(sandboxId);

    /// <summary>Runs ADD for loopback and the pod network. On failure everything attempted is deleted again and the
    /// cache entry removed before the exception propagates (if that DEL fails too, it is logged, and a later
    /// <see cref="TearDownAsync"/> runs DEL with the current config, as containerd does).</summary>
    /// <exception cref="CniException">No usable network config, or a plugin failed or timed out.</exception>
    public async Task<PodNetworkResult> SetUpAsync(PodNetworkRequest request, CancellationToken ct)
    {
        Validate(request, requireNetns: true);
        // Always what is on disk now: a config fixed a moment ago must be used even if Status was not asked.
        var current = Reload();
        if (current.Network is null)
            throw new CniException($"cannot set up the network of sandbox {request.SandboxId}: {current.Status.Message}");

        using var held = await sandboxLocks.AcquireAsync(request.SandboxId, ct).ConfigureAwait(false);
        var attachments = new List<CniAttachment>();
        if (plugins.Find(LoopbackType) is not null)
            attachments.Add(new CniAttachment(LoopbackIfName, CniNetwork.Loopback(current.Network.CniVersion), null));
        else
            logger.LogWarning("CNI plugin \"loopback\" not found in {BinDirs}: lo of sandbox {SandboxId} stays down", plugins.CniPath, request.SandboxId);
        attachments.Add(new CniAttachment(PodIfName, current.Network, current.Status.ConfigFile));
        var entry = new CniCacheEntry(request.SandboxId, request.NetnsPath, request.PodName, request.PodNamespace, request.PodUid,
            CapabilityArgs(request), attachments);

        // Written before the first plugin runs: after a crash mid-ADD, DEL still knows which config to undo.
        await cache.WriteAsync(entry, ct).ConfigureAwait(false);
        var attempted = new List<CniAttachment>();
        try
        {
            foreach (var attachment in attachments)
            {
                attempted.Add(attachment);
                await AddAsync(entry, attachment, ct).ConfigureAwait(false);
            }
            await cache.WriteAsync(entry, ct).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            logger.LogWarning("CNI ADD for sandbox {SandboxId} failed, deleting what was set up: {Error}", request.SandboxId, e.Message);
            try
            {
                // Not cancellable: leaving an IP or a veth behind is worse than a late return.
                await DeleteAsync(entry, attempted, request.NetnsPath, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception rollback)
            {
                // Typically the config that broke ADD breaks DEL too. The entry goes anyway: a later teardown then
                // runs DEL with the current (maybe fixed) config instead of retrying the broken one forever.
                logger.LogError("rolling back CNI ADD of sandbox {SandboxId} failed; teardown will retry with the current config: {Error}",
                    request.SandboxId, rollback.Message);
            }
            cache.Delete(request.SandboxId);
            throw;
        }

        var pod = attachments[^1];
        var ips = CniResults.PodIps(pod.Result!, PodIfName);
        logger.LogInformation("sandbox {SandboxId} attached to CNI network {Network} with {Ips}", request.SandboxId, pod.Network.Name, string.Join(", ", ips));
        return new PodNetworkResult(ips, pod.Result!.ToJsonString());
    }

    /// <summary>Runs DEL for every attachment in reverse order with the cached config, arguments and results, or
    /// with the current config when there is no cache entry. Idempotent; a missing network namespace is fine.
    /// Every plugin is asked even when one fails; the cache entry is removed only when all succeeded.</summary>
    public async Task TearDownAsync(PodNetworkRequest request, CancellationToken ct)
    {
        Validate(request, requireNetns: false);
        using var held = await sandboxLocks.AcquireAsync(request.SandboxId, ct).ConfigureAwait(false);
        CniCacheEntry? entry = null;
        try
        {
            entry = cache.TryRead(request.SandboxId);
        }
        catch (FormatException e)
        {
            logger.LogWarning("ignoring CNI cache entry of sandbox {SandboxId}, tearing down with the current config: {Error}", request.SandboxId, e.Message);
        }

        if (entry is null)
        {
            var current = Reload();
            if (current.Network is null)
            {
                // Nothing records what was set up and there is no config to run DEL with; failing would only block
                // the pod's removal forever.
                logger.LogWarning("no CNI cache entry for sandbox {SandboxId} and no usable network config ({Problem}): nothing to tear down",
                    request.SandboxId, current.Status.Message);
                return;
            }
            var attachments = new List<CniAttachment>();
            if (plugins.Find(LoopbackType) is not null)
                attachments.Add(new CniAttachment(LoopbackIfName, CniNetwork.Loopback(current.Network.CniVersion), null));
            attachments.Add(new CniAttachment(PodIfName, current.Network, current.Status.ConfigFile));
            entry = new CniCacheEntry(request.SandboxId, request.NetnsPath, request.PodName, request.PodNamespace, request.PodUid,
                CapabilityArgs(request), attachments);
        }

        string netns = request.NetnsPath.Length > 0 ? request.NetnsPath : entry.NetnsPath;
        await DeleteAsync(entry, entry.Attachments, netns, ct).ConfigureAwait(false);
        cache.Delete(request.SandboxId);
        logger.LogInformation("sandbox {SandboxId} detached from CNI", request.SandboxId);
    }

    /// <summary>Runs CHECK for every attachment with its cached result as prevResult.</summary>
    /// <exception cref="CniException">No cache entry, a config older than 0.4.0, a gone namespace, or a plugin reported a problem.</exception>
    public async Task CheckAsync(PodNetworkRequest request, CancellationToken ct)
    {
        Validate(request, requireNetns: true);
        using var held = await sandboxLocks.AcquireAsync(request.SandboxId, ct).ConfigureAwait(false);
        CniCacheEntry? entry;
        try
        {
            entry = cache.TryRead(request.SandboxId);
        }
        catch (FormatException e)
        {
            throw new CniException($"cannot CHECK the network of sandbox {request.SandboxId}: {e.Message}", e);
        }
        if (entry is null || entry.Attachments.Any(a => a.Result is null))
            throw new CniException($"cannot CHECK the network of sandbox {request.SandboxId}: it has no complete CNI result cached ({cache.PathOf(request.SandboxId)}); was it set up?");
        if (!IsNetworkNamespace(request.NetnsPath))
            throw new CniException($"cannot CHECK the network of sandbox {request.SandboxId}: {request.NetnsPath} is not a network namespace");

        foreach (var attachment in entry.Attachments)
        {
            var network = attachment.Network;
            if (!CniVersions.HasCheck(network.CniVersion))
                throw new CniException($"cannot CHECK network \"{network.Name}\": its cniVersion {network.CniVersion} has no CHECK (0.4.0 or later needed)");
            if (network.DisableCheck) continue;
            var call = Call("CHECK", entry, request.NetnsPath, attachment);
            foreach (var plugin in network.Plugins)
                await plugins.ExecAsync(plugin.Type, call, PluginConfig(network, plugin, attachment.Result, entry.CapabilityArgs), ct).ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        lock (watcherGate)
        {
            disposed = true;
            watcher?.Dispose();
            watcher = null;
        }
    }

    private async Task AddAsync(CniCacheEntry entry, CniAttachment attachment, CancellationToken ct)
    {
        var network = attachment.Network;
        var call = Call("ADD", entry, entry.NetnsPath, attachment);
        JsonObject? previous = null;
        foreach (var plugin in network.Plugins)
        {
            byte[] output = await plugins.ExecAsync(plugin.Type, call, PluginConfig(network, plugin, previous, entry.CapabilityArgs), ct).ConfigureAwait(false);
            try
            {
                previous = CniResults.Parse(output, network.CniVersion);
            }
            catch (FormatException e)
            {
                throw new CniException($"CNI plugin \"{plugin.Type}\" ADD (network \"{network.Name}\", interface {attachment.IfName}) returned a bad result: {e.Message}", e)
                    { Plugin = plugin.Type };
            }
            // Kept as it grows, so a rollback after a later plugin failed hands DEL what was set up so far.
            attachment.Result = previous;
        }
    }

    private async Task DeleteAsync(CniCacheEntry entry, IReadOnlyList<CniAttachment> attachments, string netnsPath, CancellationToken ct)
    {
        // Plugins release IPs and host-side state without the namespace; CNI_NETNS empty tells them it is gone.
        string netns = netnsPath.Length > 0 && IsNetworkNamespace(netnsPath) ? netnsPath : "";
        var failures = new List<CniException>();
        foreach (var attachment in attachments.Reverse())
        {
            var network = attachment.Network;
            var call = Call("DEL", entry, netns, attachment);
            // prevResult on DEL came with 0.4.0; older plugins would reject it.
            var previous = CniVersions.HasCheck(network.CniVersion) ? attachment.Result : null;
            foreach (var plugin in network.Plugins.Reverse())
            {
                try
                {
                    await plugins.ExecAsync(plugin.Type, call, PluginConfig(network, plugin, previous, entry.CapabilityArgs), ct).ConfigureAwait(false);
                }
                catch (CniException e)
                {
                    // Keep going: a failing portmap must not keep the IP allocated.
                    failures.Add(e);
                }
            }
        }
        if (failures.Count == 1) throw new CniException($"CNI DEL for sandbox {entry.SandboxId}: {failures[0].Message}", failures[0]) { Plugin = failures[0].Plugin, Code = failures[0].Code };
        if (failures.Count > 1)
            throw new CniException($"CNI DEL for sandbox {entry.SandboxId} failed in {failures.Count} plugins: {string.Join("; ", failures.Select(f => f.Message))}",
                new AggregateException(failures)) { Plugin = failures[0].Plugin, Code = failures[0].Code };
    }

    private CniCall Call(string command, CniCacheEntry entry, string netns, CniAttachment attachment) =>
        new(command, entry.SandboxId, netns, attachment.IfName,
            $"IgnoreUnknown=1;K8S_POD_NAMESPACE={entry.PodNamespace};K8S_POD_NAME={entry.PodName};K8S_POD_INFRA_CONTAINER_ID={entry.SandboxId};K8S_POD_UID={entry.PodUid}",
            attachment.Network.Name);

    /// <summary>What one plugin reads on stdin (libcni's buildOneConfig): its own config with the list's name and
    /// cniVersion, prevResult, and runtimeConfig holding only the capabilities it declares.</summary>
    internal static JsonObject PluginConfig(CniNetwork network, CniPlugin plugin, JsonObject? previous, JsonObject capabilityArgs)
    {
        var config = (JsonObject)plugin.Config.DeepClone();
        config["name"] = network.Name;
        config["cniVersion"] = network.CniVersion;
        if (previous is not null) config["prevResult"] = previous.DeepClone();
        else config.Remove("prevResult");
        var runtimeConfig = new JsonObject();
        foreach (var capability in plugin.Capabilities.Order(StringComparer.Ordinal))
            if (capabilityArgs[capability] is JsonNode value) runtimeConfig[capability] = value.DeepClone();
        if (runtimeConfig.Count > 0) config["runtimeConfig"] = runtimeConfig;
        return config;
    }

    /// <summary>The runtimeConfig values this pod offers, in the names and shapes of the CNI conventions.</summary>
    internal static JsonObject CapabilityArgs(PodNetworkRequest request)
    {
        var ports = new JsonArray();
        foreach (var p in request.PortMappings)
        {
            var mapping = new JsonObject { ["hostPort"] = p.HostPort, ["containerPort"] = p.ContainerPort, ["protocol"] = p.Protocol.ToLowerInvariant() };
            if (!string.IsNullOrEmpty(p.HostIp)) mapping["hostIP"] = p.HostIp;
            ports.Add((JsonNode)mapping);
        }
        var args = new JsonObject { ["portMappings"] = ports };
        if (request.Bandwidth is { } b)
        {
            args["bandwidth"] = new JsonObject
            {
                ["ingressRate"] = b.IngressRateBitsPerSecond,
                ["ingressBurst"] = b.IngressBurstBits,
                ["egressRate"] = b.EgressRateBitsPerSecond,
                ["egressBurst"] = b.EgressBurstBits,
            };
        }
        if (request.Dns is { } dns)
        {
            args["dns"] = new JsonObject
            {
                ["servers"] = new JsonArray([.. dns.Servers.Select(s => (JsonNode?)s)]),
                ["searches"] = new JsonArray([.. dns.Searches.Select(s => (JsonNode?)s)]),
                ["options"] = new JsonArray([.. dns.Options.Select(s => (JsonNode?)s)]),
            };
        }
        if (request.Ips is { Count: > 0 } ips) args["ips"] = new JsonArray([.. ips.Select(s => (JsonNode?)s)]);
        return args;
    }

    private void Validate(PodNetworkRequest request, bool requireNetns)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed), this);
        ArgumentNullException.ThrowIfNull(request);
        string id = request.SandboxId ?? "";
        // The id names the cache file and reaches plugins' chain names and file names.
        if (id.Length == 0 || id is "." or ".." || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new ArgumentException($"sandbox id \"{id}\" is not usable for CNI (letters, digits, '-', '_', '.')", nameof(request));
        if (requireNetns && string.IsNullOrEmpty(request.NetnsPath))
            throw new ArgumentException($"sandbox {id} has no network namespace path", nameof(request));
    }

    private static bool IsNetworkNamespace(string path)
    {
        try
        {
            return Files.StatFs(path).Type == NsfsMagic;
        }
        catch (NativeException)
        {
            return false;
        }
    }

    private CniConfigSnapshot Current()
    {
        var current = Volatile.Read(ref snapshot);
        if (Volatile.Read(ref changed) == 0 && Environment.TickCount64 - current.LoadedAtMs < (long)RecheckInterval.TotalMilliseconds)
            return current;
        return Reload();
    }

    private CniConfigSnapshot Reload()
    {
        // Cleared before reading, so a change that lands during the read marks it again.
        Interlocked.Exchange(ref changed, 0);
        EnsureWatcher();
        var next = CniConfigLoader.Load(confDir, plugins);
        var previous = Interlocked.Exchange(ref snapshot, next);
        if (previous.Status != next.Status)
        {
            if (next.Status.Ready)
                logger.LogInformation("CNI network {Network} from {ConfigFile} is in use{Skipped}", next.Status.NetworkName, next.Status.ConfigFile,
                    next.Skipped.Count > 0 ? "; passed over: " + string.Join("; ", next.Skipped) : "");
            else
                logger.LogWarning("CNI network not ready: {Problem}", next.Status.Message);
        }
        return next;
    }

    private void EnsureWatcher()
    {
        if (Volatile.Read(ref watcher) is not null) return;
        lock (watcherGate)
        {
            if (disposed || watcher is not null || !Directory.Exists(confDir)) return;
            try
            {
                var w = new FileSystemWatcher(confDir) { IncludeSubdirectories = false, NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.DirectoryName };
                w.Created += OnChanged;
                w.Changed += OnChanged;
                w.Deleted += OnChanged;
                w.Renamed += OnChanged;
                w.Error += OnWatcherError;
                w.EnableRaisingEvents = true;
                watcher = w;
            }
            catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException or PlatformNotSupportedException)
            {
                // The periodic re-check still notices changes, a little later.
                logger.LogDebug("cannot watch CNI config directory {ConfDir}: {Error}", confDir, e.Message);
            }
        }
    }

    private void OnChanged(object sender, FileSystemEventArgs e) => Interlocked.Exchange(ref changed, 1);

    private void OnWatcherError(object sender, ErrorEventArgs e)
    {
        // Overflow or the directory went away: drop the watcher; the next read re-creates it if it can.
        lock (watcherGate)
        {
            if (ReferenceEquals(watcher, sender))
            {
                watcher.Dispose();
                watcher = null;
            }
        }
        Interlocked.Exchange(ref changed, 1);
    }
}
