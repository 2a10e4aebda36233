using CriRuntime.Native;

namespace CriRuntime.Containers;

/// <summary>The signal StopContainer sends first, from an image's StopSignal ("SIGTERM", "TERM", "15", "SIGRTMIN+3").</summary>
public static class StopSignals
{
    /// <summary>The signal number, or null for an empty name; an unknown name is an ArgumentException naming <paramref name="what"/>.</summary>
    public static int? Parse(string? name, string what)
    {
        if (string.IsNullOrWhiteSpace(name)) return null;
        return Signals.TryParse(name, out int signal)
            ? signal
            : throw new InvalidArgumentException($"{what} '{name}' is not a known signal (such as SIGTERM, SIGINT, SIGQUIT, or a number 1-64)");
    }
}
