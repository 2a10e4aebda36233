using CriRuntime.Native;
using CriRuntime.Content;

namespace CriRuntime.Storage;

/// <summary>
/// Content-addressed small blobs (manifests, indexes, configs) at <c>DIR/ALGORITHM/HEX</c>. Writes go
/// through <c>DIR/ingest</c> and are renamed into place, so a stored blob is always complete.
/// </summary>
public sealed class BlobStore
{
    private readonly string dir;
    private readonly string ingest;

    public BlobStore(string dir)
    {
        this.dir = Path.GetFullPath(dir);
        ingest = Path.Combine(this.dir, "ingest");
        FileModes.CreateDirectory(this.dir, FileModes.PrivateDirectory);
        FileModes.CreateDirectory(Path.Combine(this.dir, "sha256"), FileModes.PrivateDirectory);
        FileModes.CreateDirectory(ingest, FileModes.PrivateDirectory);
    }

    public string PathOf(Digest d)
    {
        if (d.IsEmpty || !Digest.TryParse(d.ToString(), out _))
            throw new ArgumentException($"'{d}' is not a valid digest", nameof(d));
        return Path.Combine(dir, d.Algorithm, d.Hex);
    }

    public bool Exists(Digest d) => File.Exists(PathOf(d));

    /// <summary>Stores <paramref name="data"/> after checking it hashes to <paramref name="expected"/>; a
    /// blob already present (same size) is left alone.</summary>
    public async Task PutAsync(Digest expected, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        var actual = Hash(expected, data.Span);
        if (actual != expected)
            throw new DigestMismatchException(expected, actual, $"blob content does not match its digest: expected {expected}, got {actual}");
        string path = PathOf(expected);
        var existing = new FileInfo(path);
        if (existing.Exists && existing.Length == data.Length) return;
        FileModes.CreateDirectory(Path.GetDirectoryName(path)!, FileModes.PrivateDirectory);
        await AtomicFile.WriteAllBytesAsync(path, data, ingest, ct).ConfigureAwait(false);
    }

    /// <summary>Reads a blob and re-verifies it, so disk corruption is reported rather than parsed.</summary>
    public async Task<byte[]> ReadAsync(Digest d, CancellationToken ct)
    {
        string path = PathOf(d);
        byte[] data;
        try { data = await File.ReadAllBytesAsync(path, ct).ConfigureAwait(false); }
        catch (FileNotFoundException e) { throw new FileNotFoundException($"blob {d} is not in the store", path, e); }
        var actual = Hash(d, data);
        if (actual != d)
            throw new DigestMismatchException(d, actual, $"stored blob {d} is corrupt: its content hashes to {actual} ({path})");
        return data;
    }

    public bool Delete(Digest d)
    {
        string path = PathOf(d);
        if (!File.Exists(path)) return false;
        File.Delete(path);
        return true;
    }

    public IEnumerable<Digest> List()
    {
        foreach (var algorithmDir in Directory.EnumerateDirectories(dir))
        {
            string algorithm = Path.GetFileName(algorithmDir);
            if (algorithm == "ingest") continue;
            foreach (var file in Directory.EnumerateFiles(algorithmDir))
                if (Digest.TryParse($"{algorithm}:{Path.GetFileName(file)}", out var d))
                    yield return d;
        }
    }

    /// <summary>Deletes temp files left by writes that were interrupted (call at daemon start, before any write).</summary>
    public void CleanupIngest()
    {
        foreach (var entry in new DirectoryInfo(ingest).EnumerateFileSystemInfos())
        {
            if (entry is DirectoryInfo d) d.Delete(recursive: true);
            else entry.Delete();
        }
    }

    private static Digest Hash(Digest like, ReadOnlySpan<byte> data)
    {
        using var hasher = like.CreateHasher();
        hasher.AppendData(data);
        return like.WithHash(hasher.GetHashAndReset());
    }
}
