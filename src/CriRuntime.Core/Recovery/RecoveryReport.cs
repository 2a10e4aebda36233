using CriRuntime.Storage;

namespace CriRuntime.Recovery;

/// <summary>A record loaded fine but not used, because what it belongs to was not loaded.</summary>
public sealed record HeldBackRecord(string Path, string Reason);

/// <summary>
/// What start-up recovery set aside (quarantine), left alone because a newer daemon wrote it, or held back with
/// such a record. Filled once before the socket is served; Status(verbose) shows it, so an operator sees it
/// without reading the log.
/// </summary>
public sealed class RecoveryReport
{
    private readonly Lock gate = new();
    private readonly List<QuarantinedItem> quarantined = [];
    private readonly List<NewerRecord> newer = [];
    private readonly List<HeldBackRecord> heldBack = [];

    public IReadOnlyList<QuarantinedItem> Quarantined { get { lock (gate) return [.. quarantined]; } }
    public IReadOnlyList<NewerRecord> Newer { get { lock (gate) return [.. newer]; } }
    public IReadOnlyList<HeldBackRecord> HeldBack { get { lock (gate) return [.. heldBack]; } }

    public void Add(StoreLoadReport load)
    {
        lock (gate)
        {
            quarantined.AddRange(load.Quarantined);
            newer.AddRange(load.Newer);
        }
    }

    public void Add(QuarantinedItem? item)
    {
        if (item is null) return;
        lock (gate) quarantined.Add(item);
    }

    public void Add(HeldBackRecord record)
    {
        lock (gate) heldBack.Add(record);
    }
}
