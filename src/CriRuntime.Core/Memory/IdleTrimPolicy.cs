namespace CriRuntime.Memory;

/// <summary>
/// When to give the GC heap back after a burst of work: once the daemon has allocated a fair amount since the last
/// trim, and then went quiet, allocating little over the last check interval. Quiet is measured in bytes, not
/// calls, because the kubelet polls List and Status every second for as long as the node lives: those polls
/// allocate a few kilobytes each and must not keep the daemon from ever counting as idle.
/// </summary>
public sealed class IdleTrimPolicy(long activityBytes, long quietBytesPerCheck)
{
    private long allocatedAtLastCheck = -1;
    private long allocatedAtLastTrim;

    /// <summary>Called once per check interval with the process's total allocated bytes; true means trim now.</summary>
    public bool ShouldTrim(long totalAllocated)
    {
        long sinceLastCheck = allocatedAtLastCheck < 0 ? long.MaxValue : totalAllocated - allocatedAtLastCheck;
        allocatedAtLastCheck = totalAllocated;
        return sinceLastCheck < quietBytesPerCheck && totalAllocated - allocatedAtLastTrim >= activityBytes;
    }

    /// <summary>Records the allocation count right after a trim, so the next one waits for new work.</summary>
    public void Trimmed(long totalAllocated)
    {
        allocatedAtLastTrim = totalAllocated;
        allocatedAtLastCheck = totalAllocated;
    }
}
