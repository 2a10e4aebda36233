using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using CriRuntime.Storage;
using Microsoft.Extensions.Logging;

namespace CriRuntime.State;

/// <summary>A persisted object with an id; records are immutable and replaced whole on change.</summary>
public interface IRecord
{
    string Id { get; }
}

/// <summary>
/// Records kept in memory for lock-free reads (kubelet lists every second) and persisted one file
/// per record, each written atomically and durably, so a crash leaves every record either as it was
/// or as it became. Callers serialise changes to one record with its own lock (see <see cref="KeyedLocks"/>).
/// </summary>
public sealed class RecordStore<T> where T : class, IRecord
{
    private readonly string dir;
    private readonly JsonTypeInfo<T> typeInfo;
    private readonly ILogger logger;
    private readonly ConcurrentDictionary<string, T> records = new(StringComparer.Ordinal);

    public RecordStore(string dir, JsonTypeInfo<T> typeInfo, ILogger logger)
    {
        this.dir = dir;
        this.typeInfo = typeInfo;
        this.logger = logger;
        Directory.CreateDirectory(dir);
    }

    public int Count => records.Count;

    /// <summary>Called after each put or delete with the record before and after (null for none); loading calls nothing.</summary>
    public Action<T?, T?>? Changed { get; set; }

    public IEnumerable<T> All => records.Values;

    /// <summary>The record with exactly this id, or null. (Managers' Get throws NotFound; Find never throws.)</summary>
    public T? Find(string id) => records.TryGetValue(id, out var record) ? record : null;

    /// <summary>
    /// The record whose id is <paramref name="idOrPrefix"/> or starts with it (as crictl accepts
    /// truncated ids). Null when none or when the prefix is ambiguous.
    /// </summary>
    public T? FindByIdOrPrefix(string idOrPrefix)
    {
        if (string.IsNullOrEmpty(idOrPrefix)) return null;
        if (records.TryGetValue(idOrPrefix, out var exact)) return exact;
        T? found = null;
        foreach (var (id, record) in records)
        {
            if (!id.StartsWith(idOrPrefix, StringComparison.Ordinal)) continue;
            if (found is not null) return null;
            found = record;
        }
        return found;
    }

    /// <summary>Writes the record durably, then makes it visible.</summary>
    public async Task PutAsync(T record, CancellationToken cancellationToken)
    {
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(record, typeInfo);
        await AtomicFile.WriteAllBytesAsync(PathOf(record.Id), json, cancellationToken).ConfigureAwait(false);
        records.TryGetValue(record.Id, out var before);
        records[record.Id] = record;
        Changed?.Invoke(before, record);
    }

    public void Delete(string id)
    {
        if (records.TryRemove(id, out var before)) Changed?.Invoke(before, null);
        try
        {
            File.Delete(PathOf(id));
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    /// <summary>Reads every record file; an unreadable one is logged and set aside, not fatal.</summary>
    public void Load()
    {
        foreach (var file in Directory.EnumerateFiles(dir, "*.json"))
        {
            try
            {
                var record = JsonSerializer.Deserialize(File.ReadAllBytes(file), typeInfo)
                    ?? throw new JsonException("empty record");
                records[record.Id] = record;
            }
            catch (Exception e) when (e is JsonException or IOException or NotSupportedException)
            {
                string aside = file + ".corrupt";
                logger.LogError("Cannot read {File}: {Error}; moved it to {Aside}", file, e.Message, aside);
                File.Move(file, aside, overwrite: true);
            }
        }
    }

    private string PathOf(string id) => Path.Combine(dir, id + ".json");
}
