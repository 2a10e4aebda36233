using CriRuntime.Native;
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
    // Ids whose record file exists (or existed) but is not loaded: written by a newer daemon, held back with
    // such a record, or quarantined. Their directories belong to someone, so leftover sweeps must spare them.
    private readonly ConcurrentDictionary<string, string> notLoaded = new(StringComparer.Ordinal);

    /// <summary>The JSON property that carries a record's schema version (see <see cref="RecordSchema"/>).</summary>
    public const string VersionProperty = "schema_version";

    private readonly Action<T>? validate;

    /// <param name="validate">Throws when a loaded record is unusable (e.g. its embedded protobuf does not parse), so
    /// that it is quarantined at load instead of failing every later use.</param>
    public RecordStore(string dir, JsonTypeInfo<T> typeInfo, ILogger logger, Action<T>? validate = null)
    {
        this.dir = dir;
        this.typeInfo = typeInfo;
        this.logger = logger;
        this.validate = validate;
        FileModes.CreateDirectory(dir, FileModes.PrivateDirectory);
    }

    /// <summary>True when a record with this id exists on disk (or in quarantine) but was not loaded; why, in <paramref name="why"/>.</summary>
    public bool IsNotLoaded(string id, out string why) => notLoaded.TryGetValue(id, out why!);

    /// <summary>Ids of records that exist on disk but were not loaded, with the reason.</summary>
    public IReadOnlyDictionary<string, string> NotLoaded => notLoaded;

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

    /// <summary>
    /// Reads every record file. An unreadable one is moved into quarantine/ (never deleted); one written by a
    /// newer daemon (schema version above <see cref="RecordSchema.Current"/>) is left untouched and not loaded.
    /// Neither is fatal; both are returned for the log and Status.
    /// </summary>
    public StoreLoadReport Load()
    {
        var report = new StoreLoadReport();
        // Records set aside at an earlier start-up still own their directories: sweeps must spare those too.
        string quarantineDir = Path.Combine(dir, Quarantine.DirectoryName);
        if (Directory.Exists(quarantineDir))
        {
            foreach (var file in Directory.EnumerateFiles(quarantineDir))
            {
                string name = Path.GetFileName(file);
                int end = name.IndexOf(".json.", StringComparison.Ordinal);
                if (end > 0) notLoaded.TryAdd(name[..end], $"quarantined earlier as {file}");
            }
        }
        foreach (var file in Directory.EnumerateFiles(dir, "*.json").Order(StringComparer.Ordinal))
        {
            string id = Path.GetFileNameWithoutExtension(file);
            try
            {
                byte[] bytes = File.ReadAllBytes(file);
                int version = RecordSchema.ReadVersion(bytes, VersionProperty);
                if (version > RecordSchema.Current)
                {
                    logger.LogWarning("{File} has schema version {Version}, newer than the {Supported} this daemon knows: left untouched and not loaded (a newer criruntime wrote it)",
                        file, version, RecordSchema.Current);
                    notLoaded[id] = $"schema version {version} is newer than {RecordSchema.Current}";
                    report.Newer.Add(new NewerRecord(file, version, RecordSchema.Current));
                    continue;
                }
                var record = JsonSerializer.Deserialize(bytes, typeInfo) ?? throw new JsonException("empty record");
                if (record.Id != id) throw new JsonException($"its id '{record.Id}' is not its file name");
                validate?.Invoke(record);
                records[record.Id] = record;
            }
            catch (Exception e) when (e is JsonException or IOException or NotSupportedException or InvalidOperationException or UnauthorizedAccessException
                                      or Google.Protobuf.InvalidProtocolBufferException)
            {
                var item = Quarantine.MoveAside(file, $"unreadable record: {e.Message}", DateTimeOffset.UtcNow);
                logger.LogError("Cannot read {File}: {Error}; moved it to {Aside}", file, e.Message, item.MovedTo);
                notLoaded[id] = $"quarantined: {e.Message}";
                report.Quarantined.Add(item);
            }
        }
        return report;
    }

    /// <summary>Drops a loaded record from memory without touching its file (it is held back with another); sweeps spare it.</summary>
    public void Unload(string id, string why)
    {
        records.TryRemove(id, out _);
        notLoaded[id] = why;
    }

    /// <summary>Moves a record's file into quarantine/ and drops it from memory; returns what was set aside.</summary>
    public QuarantinedItem? MoveToQuarantine(string id, string reason)
    {
        records.TryRemove(id, out _);
        string file = PathOf(id);
        if (!File.Exists(file)) return null;
        var item = Quarantine.MoveAside(file, reason, DateTimeOffset.UtcNow);
        notLoaded[id] = $"quarantined: {reason}";
        return item;
    }

    /// <summary>The file a record with this id is (or would be) kept in.</summary>
    public string PathOf(string id) => Path.Combine(dir, id + ".json");
}
