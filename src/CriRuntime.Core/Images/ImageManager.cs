using System.Collections.Concurrent;
using System.Diagnostics;
using CriRuntime.Concurrency;
using CriRuntime.Config;
using CriRuntime.Images.Distribution;
using CriRuntime.Storage;
using Microsoft.Extensions.Logging;
using CriRuntime.Content;

namespace CriRuntime.Images;

/// <summary>
/// Pulls, lists, finds and removes images. A pull resolves the reference on the registry, fetches
/// the config, unpacks missing layers in parallel straight from the network into their layer
/// directories (verifying both the compressed digest and the diff id), and only then records the
/// image: a pull that fails or is cancelled leaves nothing that a later pull could trust.
/// </summary>
public sealed class ImageManager
{
    private readonly ImageStore images;
    private readonly LayerStore layers;
    private readonly BlobStore blobs;
    private readonly RegistryClient registry;
    private readonly ILogger logger;
    private readonly Platform platform;
    private readonly int maxConcurrentDownloads;
    private readonly TimeSpan progressInterval;
    private readonly SingleFlight<string, ImageRecord> pulls = new();

    // Layers and blobs a pull in flight relies on; garbage collection leaves them alone.
    private readonly ConcurrentDictionary<Digest, int> leases = new();

    public ImageManager(CriRuntimeConfig config, ImageStore images, LayerStore layers, BlobStore blobs, RegistryClient registry, IImagesInUse inUse,
        ILogger<ImageManager> logger)
    {
        this.inUse = inUse;
        this.images = images;
        this.layers = layers;
        this.blobs = blobs;
        this.registry = registry;
        this.logger = logger;
        platform = Platform.Parse(config.Registry.DefaultPlatform);
        maxConcurrentDownloads = config.Registry.MaxConcurrentDownloads;
        progressInterval = TimeSpan.FromSeconds(config.Images.ProgressIntervalSeconds);
    }

    public Platform Platform => platform;

    private readonly IImagesInUse inUse;

    public string LayerDirectory => layers.Root;

    // ---- start-up steps, run by Recovery/ in the order StartupRecovery states.

    /// <summary>
    /// Loads the blob, layer and image stores (no collection: containers are not loaded yet). Returns what the stores
    /// quarantined or left alone as written by a newer daemon.
    /// </summary>
    public async Task<StoreLoadReport> LoadStoresAsync(CancellationToken cancellationToken)
    {
        blobs.CleanupIngest();
        var report = await layers.LoadAsync(cancellationToken).ConfigureAwait(false);
        var index = await images.LoadAsync(cancellationToken).ConfigureAwait(false);
        report.Quarantined.AddRange(index.Quarantined);
        report.Newer.AddRange(index.Newer);
        return report;
    }

    /// <summary>Forgets images whose layers are not on disk (so the kubelet pulls them again); their data is not touched.</summary>
    public async Task ForgetImagesMissingLayersAsync(CancellationToken cancellationToken)
    {
        if (images.ReadOnlyReason is not null) return;
        foreach (var broken in images.List().Where(i => i.ChainIds.Any(c => !layers.TryGet(c, out _))).ToList())
        {
            logger.LogWarning("Image {Id} ({Tags}) misses layers on disk; forgetting it so that it is pulled again",
                broken.Id, string.Join(", ", broken.RepoTags));
            await images.RemoveAsync(broken.Id, _ => Task.CompletedTask, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Frees layers and blobs that no image, container or pull uses: whatever a crash left unreferenced.</summary>
    public Task CollectGarbageAsync(CancellationToken cancellationToken) =>
        images.UnderWriteLockAsync(async remaining =>
        {
            await CollectGarbageAsync(remaining, cancellationToken).ConfigureAwait(false);
            return true;
        }, cancellationToken);

    public IReadOnlyList<ImageRecord> List() => images.List();

    public ImageRecord? Find(string reference) => images.Find(reference);

    /// <summary>The image's config blob as pulled, or null if it is gone.</summary>
    public async Task<byte[]?> ReadConfigAsync(ImageRecord image, CancellationToken cancellationToken) =>
        blobs.Exists(image.Id) ? await blobs.ReadAsync(image.Id, cancellationToken).ConfigureAwait(false) : null;

    /// <summary>Pulls <paramref name="reference"/>; concurrent pulls of one reference share one download.</summary>
    public Task<ImageRecord> PullAsync(string reference, RegistryCredentials? credentials, CancellationToken cancellationToken)
    {
        var parsed = ImageReference.Parse(reference);
        // Refused before anything is downloaded: the index could not record the image.
        if (images.ReadOnlyReason is { } readOnly) throw new FailedPreconditionException(readOnly);
        return pulls.RunAsync(parsed.ToString(), ct => PullCoreAsync(parsed, credentials, ct), cancellationToken);
    }

    private async Task<ImageRecord> PullCoreAsync(ImageReference reference, RegistryCredentials? credentials, CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        var resolved = await registry.ResolveAsync(reference, platform, credentials, cancellationToken).ConfigureAwait(false);
        var manifest = resolved.Manifest;
        ImageLimits.CheckLayerCount(reference, manifest.Layers.Count);

        var configBytes = blobs.Exists(manifest.Config.Digest)
            ? await blobs.ReadAsync(manifest.Config.Digest, cancellationToken).ConfigureAwait(false)
            : await registry.FetchBlobAsync(resolved, manifest.Config, credentials, cancellationToken).ConfigureAwait(false);
        var config = ImageConfig.Parse(configBytes);
        var diffIds = config.DiffIds;
        if (diffIds.Count != manifest.Layers.Count)
            throw new InvalidImageException(
                $"image {reference} is invalid: its manifest lists {manifest.Layers.Count} layers but its config lists {diffIds.Count} diff ids");

        var chainIds = LayerStore.ChainIds(diffIds);
        Digest id = manifest.Config.Digest;
        var blobDigests = new[] { resolved.TopDigest, resolved.ManifestDigest, id }.Distinct().ToList();
        var leased = chainIds.Concat(blobDigests).ToList();

        // Taken under the store's write lock, so garbage collection cannot be half way through
        // deleting a layer this pull is about to find present.
        await images.UnderWriteLockAsync(_ => { Lease(leased); return Task.FromResult(true); }, cancellationToken).ConfigureAwait(false);
        try
        {
            var progress = new PullProgress(reference, manifest.Layers.Where((layer, i) => !layers.TryGet(chainIds[i], out _)).Sum(l => l.Size));
            using (var timer = new Timer(_ => progress.Log(logger), null, progressInterval, progressInterval))
                await EnsureLayersAsync(resolved, credentials, diffIds, chainIds, progress, cancellationToken).ConfigureAwait(false);

            if (resolved.TopDigest != resolved.ManifestDigest)
                await blobs.PutAsync(resolved.TopDigest, resolved.TopBytes, cancellationToken).ConfigureAwait(false);
            await blobs.PutAsync(resolved.ManifestDigest, resolved.ManifestBytes, cancellationToken).ConfigureAwait(false);
            await blobs.PutAsync(id, configBytes, cancellationToken).ConfigureAwait(false);

            long size = chainIds.Sum(c => layers.TryGet(c, out var info) ? info.Size : 0);
            var record = await images.PutAsync(new ImageRecord
            {
                Id = id,
                RepoTags = reference.TagReference is { } tag ? [tag] : [],
                RepoDigests = [$"{reference.Name}@{resolved.TopDigest}"],
                ManifestDigest = resolved.ManifestDigest,
                ChainIds = chainIds,
                Size = size,
                Platform = platform.ToString(),
                PulledAt = DateTimeOffset.UtcNow,
                Config = config.RuntimeConfig,
                Blobs = blobDigests,
            }, cancellationToken).ConfigureAwait(false);

            logger.LogInformation("Pulled {Reference} as {Id} ({Size}, {Layers} layers, {Downloaded} downloaded) in {Elapsed:F1}s",
                reference, id, PullProgress.Format(size), chainIds.Count, PullProgress.Format(progress.Done), stopwatch.Elapsed.TotalSeconds);
            return record;
        }
        catch
        {
            // Layers this pull unpacked are complete and verified, but no image refers to them:
            // free them now, as containerd's pull lease does, rather than keep them until the next removal.
            Release(leased);
            leased = [];
            await images.UnderWriteLockAsync(async remaining =>
            {
                await CollectGarbageAsync(remaining, CancellationToken.None).ConfigureAwait(false);
                return true;
            }, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        finally
        {
            Release(leased);
        }
    }

    private async Task EnsureLayersAsync(ResolvedImage resolved, RegistryCredentials? credentials, IReadOnlyList<Digest> diffIds,
        IReadOnlyList<Digest> chainIds, PullProgress progress, CancellationToken cancellationToken)
    {
        using var failFast = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var slots = new SemaphoreSlim(maxConcurrentDownloads);
        var tasks = new List<Task>(chainIds.Count);
        for (int i = 0; i < chainIds.Count; i++)
        {
            int index = i;
            if (layers.TryGet(chainIds[index], out _)) continue;
            tasks.Add(Task.Run(async () =>
            {
                var descriptor = resolved.Manifest.Layers[index];
                try
                {
                    await layers.EnsureAsync(chainIds[index], index == 0 ? null : chainIds[index - 1], diffIds[index], async ct =>
                    {
                        // The slot is held from download start to unpack end: one layer's
                        // stream is both, so bounding it bounds network and disk work alike.
                        await slots.WaitAsync(ct).ConfigureAwait(false);
                        try
                        {
                            var stream = await registry.OpenBlobAsync(resolved, descriptor, credentials, progress.Add, ct).ConfigureAwait(false);
                            return new SlotReleasingStream(stream, slots);
                        }
                        catch
                        {
                            slots.Release();
                            throw;
                        }
                    }, failFast.Token).ConfigureAwait(false);
                    progress.LayerDone();
                }
                catch (Exception) when (!cancellationToken.IsCancellationRequested)
                {
                    // One bad layer fails the pull; stop the others rather than finish them.
                    await failFast.CancelAsync().ConfigureAwait(false);
                    throw;
                }
            }, failFast.Token));
        }

        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch when (!cancellationToken.IsCancellationRequested)
        {
            // Report the first real failure, not the cancellations it caused in its siblings.
            var first = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!)
                .FirstOrDefault(e => e is not OperationCanceledException);
            if (first is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
            throw;
        }
    }

    /// <summary>
    /// Removes the image that <paramref name="reference"/> names (id, tag or digest) with all its
    /// references, as containerd does, then frees layers and blobs no other image uses.
    /// Returns false when no such image exists (not an error: removal is idempotent).
    /// </summary>
    public async Task<bool> RemoveAsync(string reference, CancellationToken cancellationToken)
    {
        var image = images.Find(reference);
        if (image is null) return false;
        // Its layers are the lower dirs of that container's mounted rootfs.
        if (inUse.ContainerUsing(image.Id.ToString()) is { } container)
            throw new FailedPreconditionException($"image {image.Id} is used by container {container}; remove the container first");
        bool removed = await images.RemoveAsync(image.Id, remaining => CollectGarbageAsync(remaining, cancellationToken), cancellationToken).ConfigureAwait(false);
        if (removed) logger.LogInformation("Removed image {Id} ({Tags})", image.Id, string.Join(", ", image.RepoTags.Concat(image.RepoDigests)));
        return removed;
    }

    /// <summary>Bytes and inodes the image store uses, from what the stores already know (no disk walk).</summary>
    public FilesystemUsage GetUsage()
    {
        long bytes = 0, inodes = 0;
        foreach (var layer in layers.List())
        {
            bytes += layer.Size;
            inodes += layer.Inodes;
        }
        foreach (var blob in blobs.List())
        {
            try
            {
                bytes += new FileInfo(blobs.PathOf(blob)).Length;
                inodes++;
            }
            catch (IOException)
            {
                // Removed while we counted: it no longer uses anything.
            }
        }
        return new FilesystemUsage(layers.Root, bytes, inodes, DateTimeOffset.UtcNow);
    }

    private async Task CollectGarbageAsync(IReadOnlyList<ImageRecord> remaining, CancellationToken cancellationToken)
    {
        if (images.ReadOnlyReason is not null)
        {
            // The index is a newer daemon's and not loaded: nothing here can tell what is unused.
            logger.LogWarning("Not collecting layers or blobs: {Reason}", images.ReadOnlyReason);
            return;
        }
        // Containers protect their rootfs layers whether or not their image is still recorded.
        var containerLayers = inUse.LayersInUse();
        if (containerLayers is null)
        {
            logger.LogWarning("Not collecting layers: what some container's rootfs is made of is unknown (see the log above)");
        }
        else
        {
            var usedLayers = remaining.SelectMany(i => i.ChainIds).ToHashSet();
            usedLayers.UnionWith(containerLayers);
            foreach (var layer in layers.List())
            {
                if (usedLayers.Contains(layer.ChainId) || leases.ContainsKey(layer.ChainId)) continue;
                await layers.RemoveAsync(layer.ChainId, cancellationToken).ConfigureAwait(false);
                logger.LogDebug("Removed unused layer {ChainId}", layer.ChainId);
            }
        }
        var usedBlobs = remaining.SelectMany(i => i.Blobs).ToHashSet();
        foreach (var blob in blobs.List().ToList())
        {
            if (!usedBlobs.Contains(blob) && !leases.ContainsKey(blob)) blobs.Delete(blob);
        }
    }

    private void Lease(IEnumerable<Digest> digests)
    {
        foreach (var digest in digests) leases.AddOrUpdate(digest, 1, (_, n) => n + 1);
    }

    private void Release(IEnumerable<Digest> digests)
    {
        foreach (var digest in digests)
        {
            // Decrement, and drop the entry when it reaches zero, without racing a new lease.
            while (true)
            {
                if (!leases.TryGetValue(digest, out int n)) break;
                if (n == 1 ? leases.TryRemove(new KeyValuePair<Digest, int>(digest, 1)) : leases.TryUpdate(digest, n - 1, n)) break;
            }
        }
    }

    /// <summary>Gives a download slot back when the layer stream is closed.</summary>
    private sealed class SlotReleasingStream(Stream inner, SemaphoreSlim slots) : Stream
    {
        private int released;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing && Interlocked.Exchange(ref released, 1) == 0)
            {
                inner.Dispose();
                slots.Release();
            }
            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref released, 1) == 0)
            {
                await inner.DisposeAsync().ConfigureAwait(false);
                slots.Release();
            }
            await base.DisposeAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>How much of a filesystem the image store uses.</summary>
public sealed record FilesystemUsage(string Mountpoint, long UsedBytes, long InodesUsed, DateTimeOffset Timestamp);

/// <summary>An image whose manifest and config disagree, or that is otherwise unusable.</summary>
public sealed class InvalidImageException(string message) : CriException(CriErrorKind.FailedPrecondition, message);

/// <summary>Bytes downloaded so far of a pull, logged now and then so a long pull is visibly alive.</summary>
internal sealed class PullProgress(ImageReference reference, long total)
{
    private long done;
    private int layersDone;

    public long Done => Interlocked.Read(ref done);

    public void Add(long bytes) => Interlocked.Add(ref done, bytes);

    public void LayerDone() => Interlocked.Increment(ref layersDone);

    public void Log(ILogger logger)
    {
        long now = Done;
        logger.LogInformation("Pulling {Reference}: {Done} of {Total} ({Percent}%), {Layers} layers unpacked",
            reference, Format(now), Format(total), total == 0 ? 100 : now * 100 / total, Volatile.Read(ref layersDone));
    }

    public static string Format(long bytes) => bytes switch
    {
        >= 1 << 30 => $"{bytes / (double)(1 << 30):F2} GiB",
        >= 1 << 20 => $"{bytes / (double)(1 << 20):F1} MiB",
        >= 1 << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };
}
