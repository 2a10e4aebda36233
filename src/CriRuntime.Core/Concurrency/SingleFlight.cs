namespace CriRuntime.Concurrency;

/// <summary>
/// Runs at most one piece of work per key at a time; callers that ask for a key already in flight
/// await the same result. The shared work gets its own cancellation that fires only when every
/// caller waiting on it has cancelled, so one impatient caller cannot fail the others. The last
/// caller to leave waits for the work to finish cleaning up, so a cancelled call leaves nothing
/// behind; a caller arriving while a flight is being abandoned waits for it to end and starts a
/// fresh one instead of inheriting its cancellation.
/// </summary>
public sealed class SingleFlight<TKey, TResult> where TKey : notnull
{
    private readonly Dictionary<TKey, Flight> flights = new();
    private readonly Lock gate = new();

    /// <summary>Keys with work in flight right now.</summary>
    public IReadOnlyList<TKey> InFlight
    {
        get { lock (gate) return [.. flights.Keys]; }
    }

    public async Task<TResult> RunAsync(TKey key, Func<CancellationToken, Task<TResult>> work, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Flight? flight = null;
            Task? abandoned = null;
            lock (gate)
            {
                if (flights.TryGetValue(key, out var current) && current.Cancellation.IsCancellationRequested)
                {
                    abandoned = current.Task;
                }
                else
                {
                    if (current is null)
                    {
                        current = new Flight();
                        flights[key] = current;
                        current.Task = StartAsync(key, current, work);
                    }
                    current.Waiters++;
                    flight = current;
                }
            }
            if (abandoned is not null)
            {
                await Settled(abandoned).WaitAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            bool left = false;
            try
            {
                return await flight!.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                bool last;
                lock (gate)
                {
                    left = true;
                    last = --flight!.Waiters == 0 && !flight.Task.IsCompleted;
                    if (last) flight.Cancellation.Cancel();
                }
                // The last waiter to leave takes the shared work down and sees it cleaned up.
                if (last) await Settled(flight.Task).ConfigureAwait(false);
                throw;
            }
            finally
            {
                if (!left)
                    lock (gate) flight!.Waiters--;
            }
        }
    }

    private async Task<TResult> StartAsync(TKey key, Flight flight, Func<CancellationToken, Task<TResult>> work)
    {
        // Leave the caller's lock before running anything.
        await Task.Yield();
        try
        {
            return await work(flight.Cancellation.Token).ConfigureAwait(false);
        }
        finally
        {
            // The token source is not disposed: a late waiter may still cancel it, harmlessly.
            lock (gate)
            {
                if (flights.TryGetValue(key, out var current) && ReferenceEquals(current, flight)) flights.Remove(key);
            }
        }
    }

    /// <summary>Completes when <paramref name="task"/> does, whatever its outcome.</summary>
    private static Task Settled(Task task) =>
        task.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private sealed class Flight
    {
        public readonly CancellationTokenSource Cancellation = new();
        public Task<TResult> Task = null!;
        public int Waiters;
    }
}
