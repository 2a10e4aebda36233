using CriRuntime.Memory;
using Xunit;

namespace CriRuntime.Tests.Memory;

public sealed class IdleTrimPolicyTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public void Trims_once_a_burst_has_settled_and_not_again_until_new_work()
    {
        var policy = new IdleTrimPolicy(activityBytes: 4 * MiB, quietBytes: MiB / 2);
        long allocated = 30 * MiB;           // start-up, noted when the trimmer starts
        policy.Activity(allocated);
        allocated += 100 * 1024;
        Assert.True(policy.ShouldTrim(allocated));
        policy.Trimmed(allocated);

        // A burst of pod starts; asked while a call still allocates, it is not quiet.
        for (int call = 0; call < 20; call++)
        {
            policy.Activity(allocated);
            allocated += MiB / 2;
            policy.Activity(allocated);
        }
        allocated += MiB;                      // the last call's tail, after it noted its start
        policy.Activity(allocated - MiB);
        Assert.False(policy.ShouldTrim(allocated));

        // Half a second after the last call ended: quiet.
        policy.Activity(allocated);
        allocated += 10 * 1024;
        Assert.True(policy.ShouldTrim(allocated));
        policy.Trimmed(allocated);
        long trimmedAt = allocated;

        // Polls alone are quiet; their garbage is collected once it reaches the activity threshold.
        bool trimmed = false;
        for (int poll = 0; poll < 1000 && !trimmed; poll++)
        {
            policy.Activity(allocated);
            allocated += 20 * 1024;
            policy.Activity(allocated);
            trimmed = policy.ShouldTrim(allocated);
        }
        Assert.True(trimmed);
        Assert.InRange(allocated - trimmedAt, 4 * MiB, 4 * MiB + 20 * 1024);
    }

    [Fact]
    public void Needs_both_enough_work_since_the_last_trim_and_quiet_since_the_last_call()
    {
        var policy = new IdleTrimPolicy(activityBytes: 4 * MiB, quietBytes: MiB / 2);
        policy.Trimmed(100 * MiB);
        policy.Activity(103 * MiB);
        Assert.False(policy.ShouldTrim(103 * MiB + 100 * 1024)); // quiet, but only 3.1 MiB of work
        policy.Activity(104 * MiB);
        Assert.True(policy.ShouldTrim(104 * MiB + 100 * 1024));  // quiet, and 4.1 MiB of work
        Assert.False(policy.ShouldTrim(104 * MiB + MiB));        // 1 MiB since the last call: still busy
    }
}
