using CriRuntime.Memory;

namespace CriRuntime.Hosting;

/// <summary>
/// Gives memory back to the node once the daemon goes quiet. A burst of pod starts grows the GC heap,
/// and the GC keeps what it grew for the next burst; on a node that memory belongs to the pods. Once a
/// burst is over (see <see cref="IdleTrimPolicy"/>), one aggressive collection compacts the heap and
/// decommits the free space.
/// </summary>
internal sealed class IdleMemoryTrimmer : IHostedService, IDisposable
{
    private static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(1);

    // Work worth trimming after: a few pod starts or a pull. Quiet: what a second of kubelet polls allocates, with room.
    private readonly IdleTrimPolicy policy = new(activityBytes: 4 * 1024 * 1024, quietBytesPerCheck: 512 * 1024);
    private readonly ILogger<IdleMemoryTrimmer> logger;
    private Timer? timer;

    public IdleMemoryTrimmer(ILogger<IdleMemoryTrimmer> logger) => this.logger = logger;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Start-up itself allocates well over the activity threshold, so its garbage is trimmed once it settles.
        timer = new Timer(_ => TrimIfIdle(), null, CheckInterval, CheckInterval);
        return Task.CompletedTask;
    }

    private void TrimIfIdle()
    {
        if (!policy.ShouldTrim(GC.GetTotalAllocatedBytes())) return;
        long before = GC.GetGCMemoryInfo().HeapSizeBytes;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        policy.Trimmed(GC.GetTotalAllocatedBytes());
        logger.LogDebug("Idle: compacted the GC heap from {Before} to {After} bytes", before, GC.GetGCMemoryInfo().HeapSizeBytes);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        timer?.Change(Timeout.Infinite, Timeout.Infinite);
        return Task.CompletedTask;
    }

    public void Dispose() => timer?.Dispose();
}
