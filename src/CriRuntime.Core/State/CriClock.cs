namespace CriRuntime.State;

/// <summary>Time as CRI reports it: nanoseconds since the Unix epoch.</summary>
public static class CriClock
{
    public static long NowNanos() => (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100;
}
