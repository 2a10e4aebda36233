namespace CriRuntime.Hosting;

/// <summary>
/// Gives memory back to the node once the daemon goes quiet. A burst of pod starts grows the GC heap,
/// and the GC keeps what it grew for the next burst; on a node that memory belongs to the pods. After
/// a few seconds without CRI calls (kubelet's once-a-second polls aside), one aggressive collection
/// compacts the heap and decommits the free space.
/// </summary>
internal sealed class IdleMemoryTrimmer : IHostedService, IDisposable
{
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(5);
    private static long lastActivityTicks = Environment.TickCount64;
    private static long callsSinceTrim = 1;

    // Allocations a call may make before it counts as work worth trimming after (polls stay cheap).
    private const long ActivityBytes = 4 * 1024 * 1024;

    private readonly ILogger<IdleMemoryTrimmer> logger;
    private Timer? timer;
    // Zero: the start-up work counts as activity, so its garbage is trimmed once too.
    private long allocatedAtLastTrim;

    public IdleMemoryTrimmer(ILogger<IdleMemoryTrimmer> logger) => this.logger = logger;

    /// <summary>Called for every CRI call.</summary>
    public static void NoteActivity()
    {
        Volatile.Write(ref lastActivityTicks, Environment.TickCount64);
        Interlocked.Increment(ref callsSinceTrim);
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // The first check comes a second after start-up, when the start-up garbage is all there is.
        timer = new Timer(_ => TrimIfIdle(), null, TimeSpan.FromSeconds(1), CheckInterval);
        return Task.CompletedTask;
    }

    private void TrimIfIdle()
    {
        if (Interlocked.Read(ref callsSinceTrim) == 0) return;
        if (allocatedAtLastTrim != 0 && Environment.TickCount64 - Volatile.Read(ref lastActivityTicks) < CheckInterval.TotalMilliseconds) return;
        Interlocked.Exchange(ref callsSinceTrim, 0);
        // Only after real work: the steady trickle of List and Status polls is not worth a full GC.
        if (GC.GetTotalAllocatedBytes() - allocatedAtLastTrim < ActivityBytes) return;
        long before = GC.GetGCMemoryInfo().HeapSizeBytes;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        allocatedAtLastTrim = GC.GetTotalAllocatedBytes();
        logger.LogDebug("Idle: compacted the GC heap from {Before} to {After} bytes", before, GC.GetGCMemoryInfo().HeapSizeBytes);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        timer?.Change(Timeout.Infinite, Timeout.Infinite);
        return Task.CompletedTask;
    }

    public void Dispose() => timer?.Dispose();
}
