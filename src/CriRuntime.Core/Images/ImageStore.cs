using CriRuntime.Native;
using System.Collections.Frozen;
using System.Text.Json;
using CriRuntime.Storage;
using Microsoft.Extensions.Logging;
using CriRuntime.Content;

namespace CriRuntime.Images;

/// <summary>
/// The node's images: an immutable in-memory snapshot for lock-free reads (kubelet lists every few
/// seconds), and one JSON file rewritten atomically on every change, so a crash leaves either the old
/// or the new set. Writers take a short lock; nothing slow (downloads, unpacking) runs under it.
/// </summary>
public sealed class ImageStore
{
    private readonly string path;
    private readonly ILogger logger;
    private readonly SemaphoreSlim writeLock = new(1, 1);
    private volatile Snapshot snapshot = Snapshot.Empty;

    public ImageStore(string dir, ILogger<ImageStore> logger)
    {
        FileModes.CreateDirectory(dir, FileModes.PrivateDirectory);
        path = Path.Combine(dir, "images.json");
        this.logger = logger;
    }

    public IReadOnlyList<ImageRecord> List() => snapshot.Images;

    /// <summary>
    /// Set when the index on disk was written by a newer daemon: it is not loaded and must not be overwritten, so
    /// every change is refused with this message. Garbage collection must not run either (what is used is unknown).
    /// </summary>
    public string? ReadOnlyReason { get; private set; }

    /// <summary>
    /// Reads the index. An unreadable or unparsable one is moved into quarantine/ (never deleted) and the store
    /// starts empty, so images are pulled again; one with a newer schema version is left untouched and the store is
    /// read-only (<see cref="ReadOnlyReason"/>).
    /// </summary>
    public async Task<StoreLoadReport> LoadAsync(CancellationToken cancellationToken)
    {
        var report = new StoreLoadReport();
        snapshot = Snapshot.Empty;
        if (!File.Exists(path)) return report;
        try
        {
            byte[] bytes = await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
            int version = RecordSchema.ReadVersion(bytes, "version");
            if (version > RecordSchema.Current)
            {
                ReadOnlyReason = $"the image index {path} has schema version {version}, newer than the {RecordSchema.Current} this daemon knows (a newer criruntime wrote it); it is left untouched, so images cannot be pulled or removed until that criruntime runs again or the file is moved away";
                logger.LogWarning("{Reason}", ReadOnlyReason);
                report.Newer.Add(new NewerRecord(path, version, RecordSchema.Current));
                return report;
            }
            var database = JsonSerializer.Deserialize(bytes, ImageJsonContext.Default.ImageDatabase)
                ?? throw new JsonException("the file holds null");
            if (database.Images is null || database.Images.Any(i => i is null)) throw new JsonException("the images list is missing or holds null");
            snapshot = new Snapshot(database.Images);
            logger.LogInformation("Loaded {Count} images from {Path}", database.Images.Count, path);
        }
        catch (Exception e) when (e is JsonException or IOException or FormatException or ArgumentException or InvalidOperationException or UnauthorizedAccessException)
        {
            var item = Quarantine.MoveAside(path, $"unreadable image index: {e.Message}", DateTimeOffset.UtcNow);
            logger.LogError("Cannot read the image index {Path}: {Error}; moved it to {Aside}; the node has no images until they are pulled again",
                path, e.Message, item.MovedTo);
            report.Quarantined.Add(item);
        }
        return report;
    }

    /// <summary>
    /// Finds an image by id (full "sha256:..." or bare hex, or a unique hex prefix of at least 12
    /// characters, as crictl prints them), by tag, or by repo digest. Short names are normalized.
    /// </summary>
    public ImageRecord? Find(string reference)
    {
        var current = snapshot;
        if (string.IsNullOrWhiteSpace(reference)) return null;
        reference = reference.Trim();

        string hex = reference.StartsWith("sha256:", StringComparison.Ordinal) ? reference["sha256:".Length..] : reference;
        if (hex.Length >= 12 && hex.Length <= 64 && hex.All(char.IsAsciiHexDigitLower))
        {
            if (hex.Length == 64 && current.ById.TryGetValue(hex, out var exact)) return exact;
            var matches = current.Images.Where(i => i.Id.Hex.StartsWith(hex, StringComparison.Ordinal)).Take(2).ToList();
            if (matches.Count == 1) return matches[0];
            if (hex.Length == 64 || reference.StartsWith("sha256:", StringComparison.Ordinal)) return null;
        }

        if (!ImageReference.TryParse(reference, out var parsed, out _) || parsed is null) return null;
        if (parsed.DigestReference is { } byDigest && current.ByReference.TryGetValue(byDigest, out var digested)) return digested;
        if (parsed.Digest is null && parsed.TagReference is { } byTag && current.ByReference.TryGetValue(byTag, out var tagged)) return tagged;
        return null;
    }

    /// <summary>
    /// Adds or updates an image and makes it the only holder of its tags (a tag names one image);
    /// an image left with no tag keeps its repo digests, as containerd shows it.
    /// </summary>
    public async Task<ImageRecord> PutAsync(ImageRecord image, CancellationToken cancellationToken)
    {
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var current = snapshot;
            var next = new List<ImageRecord>(current.Images.Count + 1);
            ImageRecord merged = image;
            foreach (var existing in current.Images)
            {
                if (existing.Id == image.Id)
                {
                    merged = image with
                    {
                        RepoTags = Union(existing.RepoTags, image.RepoTags),
                        RepoDigests = Union(existing.RepoDigests, image.RepoDigests),
                        Blobs = [.. existing.Blobs.Union(image.Blobs)],
                    };
                    continue;
                }
                var keptTags = existing.RepoTags.Where(t => !image.RepoTags.Contains(t)).ToList();
                next.Add(keptTags.Count == existing.RepoTags.Count ? existing : existing with { RepoTags = keptTags });
            }
            next.Add(merged);
            await CommitAsync(next, cancellationToken).ConfigureAwait(false);
            return merged;
        }
        finally
        {
            writeLock.Release();
        }
    }

    /// <summary>
    /// Removes an image, then lets <paramref name="collect"/> free what no remaining image uses,
    /// still under the write lock so that no pull can adopt a layer while it is being deleted.
    /// </summary>
    public async Task<bool> RemoveAsync(Digest id, Func<IReadOnlyList<ImageRecord>, Task> collect, CancellationToken cancellationToken)
    {
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var current = snapshot;
            if (!current.ById.ContainsKey(id.Hex)) return false;
            var next = current.Images.Where(i => i.Id != id).ToList();
            await CommitAsync(next, cancellationToken).ConfigureAwait(false);
            await collect(next).ConfigureAwait(false);
            return true;
        }
        finally
        {
            writeLock.Release();
        }
    }

    /// <summary>Runs <paramref name="action"/> while no image can be added or removed.</summary>
    public async Task<T> UnderWriteLockAsync<T>(Func<IReadOnlyList<ImageRecord>, Task<T>> action, CancellationToken cancellationToken)
    {
        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await action(snapshot.Images).ConfigureAwait(false);
        }
        finally
        {
            writeLock.Release();
        }
    }

    private async Task CommitAsync(List<ImageRecord> images, CancellationToken cancellationToken)
    {
        if (ReadOnlyReason is { } reason) throw new FailedPreconditionException(reason);
        var bytes = JsonSerializer.SerializeToUtf8Bytes(new ImageDatabase(RecordSchema.Current, images), ImageJsonContext.Default.ImageDatabase);
        await AtomicFile.WriteAllBytesAsync(path, bytes, cancellationToken).ConfigureAwait(false);
        snapshot = new Snapshot(images);
    }

    private static List<string> Union(IReadOnlyList<string> a, IReadOnlyList<string> b) => [.. a.Concat(b).Distinct(StringComparer.Ordinal)];

    private sealed class Snapshot
    {
        public static readonly Snapshot Empty = new([]);

        public Snapshot(IReadOnlyList<ImageRecord> images)
        {
            Images = images;
            ById = images.ToFrozenDictionary(i => i.Id.Hex, StringComparer.Ordinal);
            var byReference = new Dictionary<string, ImageRecord>(StringComparer.Ordinal);
            foreach (var image in images)
                foreach (var reference in image.RepoTags.Concat(image.RepoDigests))
                    byReference[reference] = image;
            ByReference = byReference.ToFrozenDictionary(StringComparer.Ordinal);
        }

        public IReadOnlyList<ImageRecord> Images { get; }
        public FrozenDictionary<string, ImageRecord> ById { get; }
        public FrozenDictionary<string, ImageRecord> ByReference { get; }
    }
}
