using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using CriRuntime.Concurrency;
using CriRuntime.Native;
using Microsoft.Extensions.Logging;
using CriRuntime.Content;

namespace CriRuntime.Storage;

public sealed record LayerInfo(Digest ChainId, Digest DiffId, Digest? Parent, long Size, long Inodes, DateTimeOffset CreatedAt);

/// <summary>
/// Unpacked layers keyed by chain ID, shared by every image that has them, laid out like docker's
/// overlay2 driver:
/// <code>
/// DIR/CHAINHEX/diff/        the layer's files (an overlay lowerdir)
/// DIR/CHAINHEX/layer.json   metadata, written before the directory is committed
/// DIR/l/ID -> ../CHAINHEX/diff   26-character link, keeps long lowerdir lists under a page
/// DIR/tmp/                  layers being unpacked or deleted; emptied by LoadAsync
/// </code>
/// A layer directory appears under its chain ID only by an atomic rename of a complete, synced
/// temp directory, so after a crash every DIR/CHAINHEX is whole.
/// </summary>
public sealed class LayerStore
{
    private const string MetadataFile = "layer.json";

    private readonly string dir;
    private readonly string linkDir;
    private readonly string tmpDir;
    private readonly ILogger<LayerStore> logger;
    private readonly LayerUnpacker unpacker;
    private readonly ConcurrentDictionary<Digest, Entry> layers = new();
    // Unpacks in progress, one per chain ID.
    private readonly SingleFlight<Digest, LayerInfo> unpacks = new();

    public LayerStore(string dir, ILogger<LayerStore> logger)
    {
        this.dir = Path.GetFullPath(dir);
        linkDir = Path.Combine(this.dir, "l");
        tmpDir = Path.Combine(this.dir, "tmp");
        this.logger = logger;
        unpacker = new LayerUnpacker(logger);
        FileModes.CreateDirectory(this.dir, FileModes.PrivateDirectory);
        FileModes.CreateDirectory(linkDir, FileModes.PrivateDirectory);
        FileModes.CreateDirectory(tmpDir, FileModes.PrivateDirectory);
    }

    /// <summary>The store's root directory.</summary>
    public string Root => dir;

    /// <summary>
    /// Reads committed layers into memory and removes leftovers: everything in tmp/ (work in progress) and links
    /// that point nowhere. A layer directory whose metadata is missing or unreadable is moved into quarantine/, never
    /// deleted: a running container may still have it as a lower dir. One whose metadata a newer daemon wrote is
    /// left where it is, with its link, and not loaded. Call once at start-up, before anything else uses the store.
    /// </summary>
    public Task<StoreLoadReport> LoadAsync(CancellationToken ct) => Task.Run(() =>
    {
        var report = new StoreLoadReport();
        foreach (var leftover in Directory.EnumerateFileSystemEntries(tmpDir))
        {
            ct.ThrowIfCancellationRequested();
            logger.LogInformation("removing interrupted layer work {Path}", leftover);
            Files.RemoveTree(leftover);
        }

        var loaded = new Dictionary<Digest, Entry>();
        var newer = new HashSet<string>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateDirectories(dir).Order(StringComparer.Ordinal).ToList())
        {
            ct.ThrowIfCancellationRequested();
            string name = Path.GetFileName(path);
            if (name is "l" or "tmp" or Quarantine.DirectoryName) continue;
            var (entry, version, problem) = ReadEntry(path, name);
            if (version > RecordSchema.Current)
            {
                logger.LogWarning("{File} has schema version {Version}, newer than the {Supported} this daemon knows: layer left untouched and not loaded",
                    Path.Combine(path, MetadataFile), version, RecordSchema.Current);
                report.Newer.Add(new NewerRecord(Path.Combine(path, MetadataFile), version, RecordSchema.Current));
                newer.Add(name);
                continue;
            }
            if (entry is null)
            {
                var item = Quarantine.MoveAside(path, $"layer metadata {MetadataFile} is {problem}", DateTimeOffset.UtcNow);
                logger.LogError("Layer directory {Path}: its metadata is {Problem}; moved it to {Aside}", path, problem, item.MovedTo);
                report.Quarantined.Add(item);
                continue;
            }
            loaded[entry.Info.ChainId] = entry;
        }

        // Links: drop those that no layer owns, recreate those a layer is missing. Links into a layer
        // directory that a newer daemon owns stay.
        var wanted = loaded.Values.ToDictionary(e => e.Link, e => $"../{e.Info.ChainId.Hex}/diff");
        foreach (var link in Directory.EnumerateFileSystemEntries(linkDir))
        {
            string id = Path.GetFileName(link);
            bool isSymlink = Files.TryLstat(link) is { Type: FileType.Symlink };
            if (wanted.TryGetValue(id, out var target) && isSymlink && Files.ReadLink(link) == target)
            {
                wanted.Remove(id);
                continue;
            }
            if (isSymlink && Files.ReadLink(link) is { } pointsTo && pointsTo.Split('/') is [_, var hex, "diff"] && newer.Contains(hex)) continue;
            logger.LogInformation("removing stale layer link {Link}", link);
            Files.RemoveTree(link);
        }
        foreach (var (id, target) in wanted)
            Files.Symlink(target, Path.Combine(linkDir, id));

        layers.Clear();
        foreach (var (chainId, entry) in loaded) layers[chainId] = entry;
        logger.LogInformation("layer store {Dir}: {Count} layers", dir, layers.Count);
        return report;
    }, ct);

    /// <summary>
    /// The chain id of a loaded layer given one of its overlay lower dir paths (its short link or its diff dir), or
    /// null when the path is not a layer of this store.
    /// </summary>
    public Digest? ChainIdOfLowerDir(string lowerDir)
    {
        string? parent = Path.GetDirectoryName(lowerDir);
        string name = Path.GetFileName(lowerDir);
        if (parent == linkDir)
        {
            foreach (var entry in layers.Values)
                if (entry.Link == name) return entry.Info.ChainId;
            return null;
        }
        if (name == "diff" && Path.GetDirectoryName(parent) == dir && Digest.TryParse("sha256:" + Path.GetFileName(parent), out var chainId)
            && layers.ContainsKey(chainId))
            return chainId;
        return null;
    }

    public bool TryGet(Digest chainId, out LayerInfo info)
    {
        if (layers.TryGetValue(chainId, out var entry))
        {
            info = entry.Info;
            return true;
        }
        info = null!;
        return false;
    }

    public IReadOnlyCollection<LayerInfo> List() => layers.Values.Select(e => e.Info).ToList();

    /// <summary>
    /// Returns the layer, unpacking it first if needed. Concurrent calls for one chain ID share a
    /// single unpack, which is cancelled only when every caller waiting for it has cancelled.
    /// <paramref name="openLayer"/> returns the (compressed) layer blob; its uncompressed content must
    /// hash to <paramref name="diffId"/>, else <see cref="LayerDigestMismatchException"/>. On any
    /// failure nothing is left behind.
    /// </summary>
    public async Task<LayerInfo> EnsureAsync(Digest chainId, Digest? parent, Digest diffId,
        Func<CancellationToken, Task<Stream>> openLayer, CancellationToken ct)
    {
        var expected = parent is { } p ? Digest.Sha256($"{p} {diffId}") : diffId;
        if (expected != chainId)
            throw new ArgumentException($"chain ID {chainId} does not follow from parent {parent?.ToString() ?? "(none)"} and diff ID {diffId} (expected {expected})", nameof(chainId));

        if (layers.TryGetValue(chainId, out var existing)) return existing.Info;
        return await unpacks.RunAsync(chainId, token => CreateAsync(chainId, parent, diffId, openLayer, token), ct).ConfigureAwait(false);
    }

    /// <summary>The layer's content directory (whether or not it exists yet).</summary>
    public string DiffDir(Digest chainId) => Path.Combine(dir, chainId.Hex, "diff");

    /// <summary>The short link to the layer's content, for overlay lowerdir lists.</summary>
    public string ShortDiffDir(Digest chainId) =>
        layers.TryGetValue(chainId, out var entry)
            ? Path.Combine(linkDir, entry.Link)
            : throw new KeyNotFoundException($"layer {chainId} is not in the store");

    /// <summary>
    /// Deletes a layer (its link, metadata and files, whiteout devices included). The caller makes
    /// sure no image or mounted container still uses it. False when it was not there.
    /// </summary>
    public Task<bool> RemoveAsync(Digest chainId, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        if (!layers.TryRemove(chainId, out var entry)) return Task.FromResult(false);
        // Renaming into tmp/ makes the removal atomic; the slow delete can then be interrupted safely.
        string doomed = Path.Combine(tmpDir, $"rm-{chainId.Hex[..12]}-{RandomSuffix()}");
        Files.Rename(Path.Combine(dir, chainId.Hex), doomed);
        Files.RemoveTree(Path.Combine(linkDir, entry.Link));
        Files.FsyncDirectory(dir);
        return Task.Run(() =>
        {
            Files.RemoveTree(doomed);
            logger.LogInformation("removed layer {ChainId}", chainId);
            return true;
        }, CancellationToken.None);
    }

    /// <summary>The OCI chain IDs of all layers: ChainID(L0) = DiffID(L0),
    /// ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).</summary>
    public static IReadOnlyList<Digest> ChainIds(IReadOnlyList<Digest> diffIds)
    {
        // Each chain ID extends the one before: one hash per layer, not one walk from the bottom per layer.
        var chainIds = new List<Digest>(diffIds.Count);
        for (int i = 0; i < diffIds.Count; i++)
            chainIds.Add(i == 0 ? diffIds[0] : Digest.Sha256($"{chainIds[i - 1]} {diffIds[i]}"));
        return chainIds;
    }

    /// <summary>The OCI chain ID of layer <paramref name="index"/> alone (<see cref="ChainIds"/> for all of them).</summary>
    public static Digest ChainId(IReadOnlyList<Digest> diffIds, int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, diffIds.Count);
        var chain = diffIds[0];
        for (int i = 1; i <= index; i++) chain = Digest.Sha256($"{chain} {diffIds[i]}");
        return chain;
    }

    private async Task<LayerInfo> CreateAsync(Digest chainId, Digest? parent, Digest diffId,
        Func<CancellationToken, Task<Stream>> openLayer, CancellationToken token)
    {
        if (layers.TryGetValue(chainId, out var done)) return done.Info; // finished by a flight that just ended
        string tmp = Path.Combine(tmpDir, $"{chainId.Hex[..12]}-{RandomSuffix()}");
        string? linkPath = null;
        try
        {
            FileModes.CreateDirectory(tmp, FileModes.PrivateDirectory);
            string diff = Path.Combine(tmp, "diff");
            // A layer's "/" is 0755 unless the layer has a "./" entry saying otherwise (never the daemon's umask).
            FileModes.CreateDirectory(diff, FileModes.PublicDirectory);
            UnpackResult result;
            Digest actual;
            var started = DateTimeOffset.UtcNow;
            // Disposing the decompressed stream disposes the blob stream under it: it lives until both are read.
            await using (var compressed = await openLayer(token).ConfigureAwait(false))
            {
                using var hasher = diffId.CreateHasher();
                Stream? tar = null;
                try
                {
                    tar = await LayerDecompression.OpenDecompressedAsync(compressed, token).ConfigureAwait(false);
                    result = await unpacker.UnpackAsync(new HashingReadStream(tar, hasher), diff, token).ConfigureAwait(false);
                    // Let a verifying wrapper around the blob see its very last bytes too.
                    await compressed.CopyToAsync(Stream.Null, token).ConfigureAwait(false);
                }
                catch (Exception e) when (!token.IsCancellationRequested && e is not BlobVerificationException)
                {
                    // A blob damaged on the way usually breaks decompression or the tar format
                    // before its digest can be checked. Read it to the end first, so a verifying
                    // wrapper reports what really happened (a corrupt download) rather than its symptom.
                    await compressed.CopyToAsync(Stream.Null, token).ConfigureAwait(false);
                    if (e is LayerLimitExceededException)
                        throw new LayerLimitExceededException($"layer {diffId} (chain {chainId}) is refused: {e.Message}");
                    if (e is InvalidDataException or FormatException or EndOfStreamException or ZstdSharp.ZstdException)
                        throw new InvalidLayerException($"layer {diffId} is not a valid compressed tar archive: {e.Message}", e);
                    throw;
                }
                finally
                {
                    if (tar is not null) await tar.DisposeAsync().ConfigureAwait(false);
                }
                actual = diffId.WithHash(hasher.GetCurrentHash());
            }
            if (actual != diffId) throw new LayerDigestMismatchException(diffId, actual);
            token.ThrowIfCancellationRequested();

            // Contents must be on disk before the metadata says the layer is complete.
            Files.SyncFilesystem(diff);
            var info = new LayerInfo(chainId, diffId, parent, result.TotalBytes, result.Inodes, DateTimeOffset.UtcNow);
            string link = NewLinkId();
            var record = new LayerRecord(chainId.ToString(), diffId.ToString(), parent?.ToString(), info.Size, info.Inodes, info.CreatedAt, link);
            AtomicFile.WriteAllBytes(Path.Combine(tmp, MetadataFile), JsonSerializer.SerializeToUtf8Bytes(record, StorageJsonContext.Default.LayerRecord));
            linkPath = Path.Combine(linkDir, link);
            Files.Symlink($"../{chainId.Hex}/diff", linkPath);

            string final = Path.Combine(dir, chainId.Hex);
            try
            {
                Files.RenameNoReplace(tmp, final);
            }
            catch (NativeException e) when (e.Errno is Errno.EEXIST or Errno.ENOTEMPTY)
            {
                // Already on disk (not loaded, or another process): keep that copy.
                var other = TryReadEntry(final, chainId.Hex) ?? throw new IOException($"layer directory {final} exists but is not a valid layer", e);
                Cleanup(tmp, linkPath);
                if (Files.TryLstat(Path.Combine(linkDir, other.Link)) is null)
                    Files.Symlink($"../{chainId.Hex}/diff", Path.Combine(linkDir, other.Link));
                layers[chainId] = other;
                return other.Info;
            }
            Files.FsyncDirectory(dir);
            Files.FsyncDirectory(linkDir);
            layers[chainId] = new Entry(info, link);
            logger.LogInformation("unpacked layer {ChainId} ({Bytes} bytes, {Inodes} inodes) in {Elapsed}",
                chainId, info.Size, info.Inodes, DateTimeOffset.UtcNow - started);
            return info;
        }
        catch (Exception e)
        {
            Cleanup(tmp, linkPath);
            if (e is OperationCanceledException && !token.IsCancellationRequested)
            {
                // Not our cancellation (e.g. an HTTP timeout inside openLayer): a failure, which the
                // callers must not mistake for their own cancellation.
                throw new IOException($"unpacking layer {chainId} failed: {e.Message}", e);
            }
            throw;
        }
    }

    private void Cleanup(string tmp, string? linkPath)
    {
        try
        {
            if (linkPath is not null) Files.RemoveTree(linkPath);
            Files.RemoveTree(tmp);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // LoadAsync sweeps tmp/ at the next start.
            logger.LogWarning(e, "could not remove {Tmp}", tmp);
        }
    }

    private Entry? TryReadEntry(string path, string name) => ReadEntry(path, name) is { Entry: { } entry, Version: <= RecordSchema.Current } ? entry : null;

    /// <summary>The layer in <paramref name="path"/>; else null with its metadata's version (when readable) or what is wrong.</summary>
    private (Entry? Entry, int Version, string Problem) ReadEntry(string path, string name)
    {
        try
        {
            if (!Directory.Exists(Path.Combine(path, "diff"))) return (null, 0, "missing its diff directory");
            string metadata = Path.Combine(path, MetadataFile);
            if (!File.Exists(metadata)) return (null, 0, "missing");
            byte[] bytes = File.ReadAllBytes(metadata);
            int version = RecordSchema.ReadVersion(bytes, "schemaVersion");
            if (version > RecordSchema.Current) return (null, version, "newer");
            var record = JsonSerializer.Deserialize(bytes, StorageJsonContext.Default.LayerRecord);
            if (record is null || !Digest.TryParse(record.ChainId, out var chainId) || chainId.Hex != name) return (null, version, "invalid (chain id)");
            if (!Digest.TryParse(record.DiffId, out var diffId)) return (null, version, "invalid (diff id)");
            Digest? parent = null;
            if (record.Parent is not null)
            {
                if (!Digest.TryParse(record.Parent, out var p)) return (null, version, "invalid (parent)");
                parent = p;
            }
            if (record.Link is not { Length: 26 } link || !link.All(c => char.IsAsciiLetterUpper(c) || c is >= '2' and <= '7')) return (null, version, "invalid (link)");
            return (new Entry(new LayerInfo(chainId, diffId, parent, record.Size, record.Inodes, record.CreatedAt), link), version, "");
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            logger.LogDebug(e, "layer metadata in {Path} is unreadable", path);
            return (null, 0, $"unreadable ({e.Message})");
        }
    }

    // Base32 alphabet, like docker's overlay2 link names.
    private static string NewLinkId() => RandomNumberGenerator.GetString("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 26);

    private static string RandomSuffix() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    private sealed record Entry(LayerInfo Info, string Link);
}

/// <summary>A layer's metadata file; <c>schemaVersion</c> as in <see cref="RecordSchema"/> (absent means 1).</summary>
internal sealed record LayerRecord(
    string ChainId, string DiffId, string? Parent, long Size, long Inodes, DateTimeOffset CreatedAt, string Link, int SchemaVersion = RecordSchema.Current);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(LayerRecord))]
internal sealed partial class StorageJsonContext : JsonSerializerContext;

/// <summary>Feeds everything read through it to a hash.</summary>
internal sealed class HashingReadStream(Stream inner, IncrementalHash hash) : Stream
{
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int n = inner.Read(buffer);
        hash.AppendData(buffer[..n]);
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        hash.AppendData(buffer.Span[..n]);
        return n;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
