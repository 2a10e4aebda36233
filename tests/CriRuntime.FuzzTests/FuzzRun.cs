using System.Globalization;

namespace CriRuntime.FuzzTests;

/// <summary>
/// The knobs of a fuzz run, from the environment so a CI failure can be rerun exactly:
/// <c>CRIRUNTIME_FUZZ_SEED</c> (default: a fresh one, printed), <c>CRIRUNTIME_FUZZ_SECONDS</c> (time budget for
/// sending requests, default 75) and <c>CRIRUNTIME_FUZZ_REQUESTS</c> (an upper bound on their number, default 100,000).
/// </summary>
public sealed record FuzzRun(int Seed, TimeSpan Budget, int MaxRequests)
{
    public const string SeedVariable = "CRIRUNTIME_FUZZ_SEED";
    public const string SecondsVariable = "CRIRUNTIME_FUZZ_SECONDS";
    public const string RequestsVariable = "CRIRUNTIME_FUZZ_REQUESTS";

    public static FuzzRun FromEnvironment(int defaultSeconds = 75)
    {
        int seed = Read(SeedVariable) is { } s ? (int)s : Random.Shared.Next();
        double seconds = Read(SecondsVariable) ?? defaultSeconds;
        int requests = Read(RequestsVariable) is { } r ? (int)r : 100_000;
        return new FuzzRun(seed, TimeSpan.FromSeconds(seconds), requests);
    }

    private static long? Read(string name)
    {
        string? text = Environment.GetEnvironmentVariable(name);
        if (string.IsNullOrWhiteSpace(text)) return null;
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v)
            ? v
            : throw new InvalidOperationException($"{name}=\"{text}\" is not an integer");
    }

    /// <summary>The marker in every made-up path and map key of this run.</summary>
    public string Token => $"fz{Seed:x8}";

    public string RerunHint => $"{SeedVariable}={Seed} {SecondsVariable}={(int)Budget.TotalSeconds}";
}
