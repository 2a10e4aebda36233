using CriRuntime.Concurrency;
using Xunit;

namespace CriRuntime.Tests.Concurrency;

public class SingleFlightTests
{
    [Fact]
    public async Task Concurrent_callers_share_one_run()
    {
        var flight = new SingleFlight<string, int>();
        int runs = 0;
        var gate = new TaskCompletionSource();
        var callers = Enumerable.Range(0, 10).Select(_ => flight.RunAsync("k", async ct =>
        {
            Interlocked.Increment(ref runs);
            await gate.Task;
            return 42;
        }, CancellationToken.None)).ToList();
        gate.SetResult();
        Assert.All(await Task.WhenAll(callers), r => Assert.Equal(42, r));
        Assert.Equal(1, runs);
        Assert.Empty(flight.InFlight);
    }

    [Fact]
    public async Task One_caller_cancelling_leaves_the_work_running_for_the_others()
    {
        var flight = new SingleFlight<string, int>();
        var gate = new TaskCompletionSource();
        CancellationToken workToken = default;
        using var impatient = new CancellationTokenSource();
        var a = flight.RunAsync("k", async ct => { workToken = ct; await gate.Task; return 1; }, impatient.Token);
        var b = flight.RunAsync("k", _ => Task.FromResult(2), CancellationToken.None);
        impatient.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a);
        Assert.False(workToken.IsCancellationRequested);
        gate.SetResult();
        Assert.Equal(1, await b);
    }

    [Fact]
    public async Task Last_caller_cancelling_cancels_the_work_and_waits_for_its_cleanup()
    {
        var flight = new SingleFlight<string, int>();
        bool cleanedUp = false;
        using var cts = new CancellationTokenSource();
        var call = flight.RunAsync("k", async ct =>
        {
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
                return 0;
            }
            finally
            {
                await Task.Delay(100, CancellationToken.None);
                cleanedUp = true;
            }
        }, cts.Token);
        await Task.Delay(50);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        Assert.True(cleanedUp, "the cancelled caller returned before the shared work finished cleaning up");
    }

    [Fact]
    public async Task A_caller_arriving_after_abandonment_starts_fresh_work()
    {
        var flight = new SingleFlight<string, int>();
        var cleanupGate = new TaskCompletionSource();
        var cleanupStarted = new TaskCompletionSource();
        using var cts = new CancellationTokenSource();
        var first = flight.RunAsync("k", async ct =>
        {
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
                return 0;
            }
            finally
            {
                cleanupStarted.SetResult();
                await cleanupGate.Task;
            }
        }, cts.Token);
        await Task.Delay(50);
        cts.Cancel();
        await cleanupStarted.Task.WaitAsync(TimeSpan.FromSeconds(5));
        // The abandoned flight is still cleaning up; a new caller must not inherit its cancellation.
        var second = flight.RunAsync("k", _ => Task.FromResult(7), CancellationToken.None);
        cleanupGate.SetResult();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        Assert.Equal(7, await second.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Failure_reaches_every_caller_and_the_next_call_runs_again()
    {
        var flight = new SingleFlight<string, int>();
        int runs = 0;
        var gate = new TaskCompletionSource();
        Func<CancellationToken, Task<int>> failing = async _ => { Interlocked.Increment(ref runs); await gate.Task; throw new InvalidOperationException("boom"); };
        var a = flight.RunAsync("k", failing, CancellationToken.None);
        var b = flight.RunAsync("k", failing, CancellationToken.None);
        gate.SetResult();
        await Assert.ThrowsAsync<InvalidOperationException>(() => a);
        await Assert.ThrowsAsync<InvalidOperationException>(() => b);
        Assert.Equal(1, runs);
        Assert.Equal(5, await flight.RunAsync("k", _ => Task.FromResult(5), CancellationToken.None));
    }
}
