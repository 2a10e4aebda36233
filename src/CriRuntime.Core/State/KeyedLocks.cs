using System.Collections.Concurrent;

namespace CriRuntime.State;

/// <summary>
/// One async lock per object id, so work on one pod or container never waits for another's.
/// Entries are reference counted and dropped when unused, so ids that come and go do not pile up.
/// </summary>
public sealed class KeyedLocks
{
    private readonly ConcurrentDictionary<string, Entry> entries = new(StringComparer.Ordinal);

    public async Task<IDisposable> AcquireAsync(string id, CancellationToken cancellationToken)
    {
        Entry entry;
        while (true)
        {
            entry = entries.GetOrAdd(id, static _ => new Entry());
            lock (entry)
            {
                if (!entry.Retired)
                {
                    entry.Users++;
                    break;
                }
            }
        }
        try
        {
            await entry.Semaphore.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Leave(id, entry);
            throw;
        }
        return new Releaser(this, id, entry);
    }

    private void Leave(string id, Entry entry)
    {
        lock (entry)
        {
            if (--entry.Users > 0) return;
            entry.Retired = true;
        }
        entries.TryRemove(new KeyValuePair<string, Entry>(id, entry));
    }

    private sealed class Entry
    {
        public readonly SemaphoreSlim Semaphore = new(1, 1);
        public int Users;
        public bool Retired;
    }

    private sealed class Releaser(KeyedLocks owner, string id, Entry entry) : IDisposable
    {
        private int disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) != 0) return;
            entry.Semaphore.Release();
            owner.Leave(id, entry);
        }
    }
}
