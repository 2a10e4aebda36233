using CriRuntime.Memory;

namespace CriRuntime.Hosting;

/// <summary>
/// Gives memory back to the node once the daemon goes quiet. A burst of pod starts grows the GC heap,
/// and the GC keeps what it grew for the next burst; on a node that memory belongs to the pods. Half a
/// second after the last call, if the burst is over (see <see cref="IdleTrimPolicy"/>), one aggressive
/// collection compacts the heap and decommits the free space. Nothing wakes up while no calls come.
/// </summary>
internal sealed class IdleMemoryTrimmer : IHostedService, IDisposable
{
    private static readonly TimeSpan SettleTime = TimeSpan.FromMilliseconds(500);

    // Work worth trimming after: a few pod starts or a pull. Quiet: what one poll allocates, with plenty of room.
    private static readonly IdleTrimPolicy Policy = new(activityBytes: 4 * 1024 * 1024, quietBytes: 512 * 1024);
    private static Timer? timer;
    // Start-up checks left: a start-up that never settles (or allocated too little to matter) stops being retried.
    private static int startupChecksLeft = 10;

    private readonly ILogger<IdleMemoryTrimmer> logger;

    public IdleMemoryTrimmer(ILogger<IdleMemoryTrimmer> logger) => this.logger = logger;

    /// <summary>Called when a CRI call starts and when it ends: the check comes once calls stop.</summary>
    public static void NoteActivity()
    {
        Policy.Activity(GC.GetTotalAllocatedBytes());
        timer?.Change(SettleTime, Timeout.InfiniteTimeSpan);
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Start-up itself allocates well over the activity threshold, so its garbage is trimmed once it settles:
        // checked every second until it has been (a few times at most); calls re-arm the check themselves.
        Policy.Activity(GC.GetTotalAllocatedBytes());
        timer = new Timer(_ => TrimIfIdle(), null, TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);
        return Task.CompletedTask;
    }

    private void TrimIfIdle()
    {
        if (!Policy.ShouldTrim(GC.GetTotalAllocatedBytes()))
        {
            if (Interlocked.Decrement(ref startupChecksLeft) > 0)
            {
                Policy.Activity(GC.GetTotalAllocatedBytes());
                timer?.Change(TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);
            }
            return;
        }
        Volatile.Write(ref startupChecksLeft, 0);
        long before = GC.GetGCMemoryInfo().HeapSizeBytes;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Policy.Trimmed(GC.GetTotalAllocatedBytes());
        logger.LogDebug("Idle: compacted the GC heap from {Before} to {After} bytes", before, GC.GetGCMemoryInfo().HeapSizeBytes);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        timer?.Change(Timeout.Infinite, Timeout.Infinite);
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        timer?.Dispose();
        timer = null;
    }
}
