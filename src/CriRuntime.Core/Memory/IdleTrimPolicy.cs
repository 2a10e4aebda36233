namespace CriRuntime.Memory;

/// <summary>
/// When to give the GC heap back after a burst of work: once the daemon has allocated a fair amount since the last
/// trim, and has then gone quiet, allocating little since the last call. Quiet is measured in bytes, not in time
/// without calls, because the kubelet polls List and Status every second for as long as the node lives: those polls
/// allocate a few kilobytes each and must not keep the daemon from ever counting as idle.
/// </summary>
public sealed class IdleTrimPolicy(long activityBytes, long quietBytes)
{
    private long allocatedAtLastActivity;
    private long allocatedAtLastTrim;

    /// <summary>A call began or ended; <paramref name="totalAllocated"/> is the process's allocation count now.</summary>
    public void Activity(long totalAllocated) => Volatile.Write(ref allocatedAtLastActivity, totalAllocated);

    /// <summary>Asked a moment after the last activity: true means trim now.</summary>
    public bool ShouldTrim(long totalAllocated) =>
        totalAllocated - Volatile.Read(ref allocatedAtLastActivity) < quietBytes
        && totalAllocated - Interlocked.Read(ref allocatedAtLastTrim) >= activityBytes;

    /// <summary>Records the allocation count right after a trim, so the next one waits for new work.</summary>
    public void Trimmed(long totalAllocated) => Interlocked.Exchange(ref allocatedAtLastTrim, totalAllocated);
}
