using CriRuntime.Memory;
using Xunit;

namespace CriRuntime.Tests.Memory;

public sealed class IdleTrimPolicyTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public void Trims_once_a_burst_has_settled_and_not_again_until_new_work()
    {
        var policy = new IdleTrimPolicy(activityBytes: 4 * MiB, quietBytesPerCheck: MiB / 2);
        long allocated = 30 * MiB; // start-up
        Assert.False(policy.ShouldTrim(allocated)); // the first check has nothing to compare with
        allocated += 10 * MiB;                       // a burst of pod starts
        Assert.False(policy.ShouldTrim(allocated));  // still busy
        allocated += 20 * 1024;                      // then only polls
        Assert.True(policy.ShouldTrim(allocated));
        policy.Trimmed(allocated);
        long trimmedAt = allocated;

        // Polls alone are quiet; their garbage is collected once it reaches the activity threshold.
        bool trimmed = false;
        for (int second = 0; second < 1000 && !trimmed; second++)
        {
            allocated += 20 * 1024;
            trimmed = policy.ShouldTrim(allocated);
        }
        Assert.True(trimmed);
        Assert.InRange(allocated - trimmedAt, 4 * MiB, 4 * MiB + 20 * 1024);
    }

    [Fact]
    public void Steady_polling_does_not_count_as_busy()
    {
        var policy = new IdleTrimPolicy(activityBytes: 4 * MiB, quietBytesPerCheck: MiB / 2);
        long allocated = 0;
        policy.ShouldTrim(allocated);
        allocated += 8 * MiB;
        policy.ShouldTrim(allocated);
        // A kubelet polling every second keeps allocating a little; the burst is still trimmed right after.
        allocated += 100 * 1024;
        Assert.True(policy.ShouldTrim(allocated));
    }
}
