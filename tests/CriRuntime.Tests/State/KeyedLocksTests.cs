using CriRuntime.State;
using Xunit;

namespace CriRuntime.Tests.State;

public class KeyedLocksTests
{
    [Fact]
    public async Task Same_key_is_exclusive_other_keys_are_not_blocked()
    {
        var locks = new KeyedLocks();
        var first = await locks.AcquireAsync("a", CancellationToken.None);
        var second = locks.AcquireAsync("a", CancellationToken.None);
        Assert.False(second.IsCompleted);

        // Another key proceeds while "a" is held.
        using (await locks.AcquireAsync("b", CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5))) { }

        first.Dispose();
        (await second.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }

    [Fact]
    public async Task Cancelled_waiter_does_not_take_or_break_the_lock()
    {
        var locks = new KeyedLocks();
        var held = await locks.AcquireAsync("a", CancellationToken.None);
        using var cts = new CancellationTokenSource();
        var waiter = locks.AcquireAsync("a", cts.Token);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiter);
        held.Dispose();
        (await locks.AcquireAsync("a", CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }

    [Fact]
    public async Task Many_concurrent_users_of_one_key_never_overlap()
    {
        var locks = new KeyedLocks();
        int inside = 0, maxInside = 0, total = 0;
        await Task.WhenAll(Enumerable.Range(0, 200).Select(i => Task.Run(async () =>
        {
            using var _ = await locks.AcquireAsync(i % 2 == 0 ? "x" : "x", CancellationToken.None);
            int now = Interlocked.Increment(ref inside);
            InterlockedMax(ref maxInside, now);
            await Task.Yield();
            Interlocked.Increment(ref total);
            Interlocked.Decrement(ref inside);
        })));
        Assert.Equal(1, maxInside);
        Assert.Equal(200, total);
    }

    [Fact]
    public async Task Dispose_twice_releases_once()
    {
        var locks = new KeyedLocks();
        var held = await locks.AcquireAsync("a", CancellationToken.None);
        held.Dispose();
        held.Dispose();
        var again = locks.AcquireAsync("a", CancellationToken.None);
        Assert.True(again.IsCompletedSuccessfully);
        var blocked = locks.AcquireAsync("a", CancellationToken.None);
        Assert.False(blocked.IsCompleted);
        (await again).Dispose();
        (await blocked.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current) { }
    }
}
