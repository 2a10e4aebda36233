using CriRuntime.Native;
using Runtime.V1;

namespace CriRuntime.Containers;

/// <summary>
/// The signal StopContainer sends first: ContainerConfig.stop_signal when set, else the image's StopSignal ("SIGTERM",
/// "TERM", "15", "SIGRTMIN+3"), else SIGTERM; and the CRI Signal enum ContainerStatus reports it as.
/// </summary>
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

    /// <summary>The signal a container is stopped with: the CRI config's stop_signal over the image's StopSignal over SIGTERM.</summary>
    public static int Effective(Signal configured, string? imageStopSignal) =>
        FromCri(configured) ?? Parse(imageStopSignal, "the image's StopSignal") ?? Signals.SIGTERM;

    /// <summary>The number of a CRI Signal; null for RUNTIME_DEFAULT; a value the enum does not define is InvalidArgument.</summary>
    public static int? FromCri(Signal signal)
    {
        if (signal == Signal.RuntimeDefault) return null;
        return ByCri.TryGetValue(signal, out int number)
            ? number
            : throw new InvalidArgumentException($"config.stop_signal {(int)signal} is not a value of the CRI Signal enum; use one of SIGTERM, SIGINT, SIGQUIT, ... or leave it RUNTIME_DEFAULT for the image's", "config.stop_signal");
    }

    /// <summary>The CRI Signal of a signal number (the first enum name for it: SIGABRT rather than SIGIOT); RUNTIME_DEFAULT when none names it.</summary>
    public static Signal ToCri(int number) => ByNumber.GetValueOrDefault(number, Signal.RuntimeDefault);

    // The enum's names (SIGRTMINPLUS3, SIGRTMAXMINUS2) read as Signals.TryParse reads an image's (SIGRTMIN+3, SIGRTMAX-2).
    private static readonly Dictionary<Signal, int> ByCri = ApiReflection.Descriptor.EnumTypes.Single(e => e.Name == nameof(Signal)).Values
        .Where(v => v.Number != 0)
        .Select(v => (Signal: (Signal)v.Number, Ok: Signals.TryParse(v.Name.Replace("PLUS", "+").Replace("MINUS", "-"), out int n), Number: n))
        .Where(v => v.Ok)
        .ToDictionary(v => v.Signal, v => v.Number);

    private static readonly Dictionary<int, Signal> ByNumber = ByCri.OrderBy(p => (int)p.Key).GroupBy(p => p.Value).ToDictionary(g => g.Key, g => g.First().Key);
}
