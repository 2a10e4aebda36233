using System.Text.RegularExpressions;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace CriRuntime.FuzzTests;

/// <summary>
/// Judges every answer. Bad input must get a code that says so (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
/// ...). INTERNAL and UNKNOWN are wrong unless allow-listed below as a runtime-side failure, and a call that runs
/// into the client's deadline is a hang.
/// </summary>
public sealed class Findings(FuzzRun run)
{
    private readonly List<string> log = [];
    private readonly Dictionary<string, int> codes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> allowed = new(StringComparer.Ordinal);

    public List<string> Violations { get; } = [];

    /// <summary>
    /// Runtime-side failures: the request was well-formed and reached the OCI runtime, which failed for a reason
    /// of the host or the image, not of the request's shape. containerd and CRI-O answer these UNKNOWN too.
    /// </summary>
    private static readonly (string Rpc, StatusCode Code, Regex Message, string Why)[] RuntimeSide =
    [
        ("StartContainer", StatusCode.Unknown, new(@"(runc|crun|runtime)", RegexOptions.IgnoreCase),
            "the container's process could not be started (a command the image lacks): only the runtime can know, at start"),
        ("CreateContainer", StatusCode.Unknown, new(@"error during container init: mkdir \S+: not a directory"),
            "working_dir names a file in the container's view (the image's files under the mounts the runtime makes, such as /proc/self/status): only the runtime sees that view; containerd answers UNKNOWN too"),
        ("CreateContainer", StatusCode.Unknown, new(@"error during container init: can't (make \\?""\S+\\?"" read-only|mask \S+)"),
            "a readonly or masked path names something in the container's view the runtime cannot remount (such as /proc/self/fd/0): only the runtime sees that view; containerd answers UNKNOWN too"),
    ];

    /// <summary>The daemon's (and Kestrel's) default limit on one request.</summary>
    private const int MaxRequestBytes = 4 * 1024 * 1024;

    public void Judge(int index, MethodDescriptor method, IReadOnlyList<string> mutations, int requestBytes, CallOutcome outcome)
    {
        string key = $"{method.Name} {outcome.Code}";
        codes[key] = codes.GetValueOrDefault(key) + 1;
        string what = $"#{index} {method.Name}[{requestBytes} bytes]({string.Join("; ", mutations)}) -> {outcome.Code} in {outcome.Took.TotalMilliseconds:0} ms: {Cut(outcome.Detail)}";
        lock (log) log.Add(what);

        bool wrong = outcome.Code switch
        {
            StatusCode.Internal or StatusCode.Unknown or StatusCode.DataLoss or StatusCode.Cancelled => true,
            StatusCode.DeadlineExceeded => !DynamicCaller.IsEndless(method),
            // A registry that does not answer is Unavailable; nothing else should be (the daemon itself is there).
            StatusCode.Unavailable => method.Name != "PullImage" || outcome.Detail.Contains("headers length exceeded", StringComparison.Ordinal),
            // The server's limits answer RESOURCE_EXHAUSTED with a message of their own; the client's own
            // "exceeds the maximum" means an answer (an error echoing the request) too big for a default client.
            StatusCode.ResourceExhausted => requestBytes < MaxRequestBytes && outcome.Detail.Contains("exceeds the maximum", StringComparison.Ordinal),
            _ => false,
        };
        if (!wrong) return;

        foreach (var (rpc, code, message, why) in RuntimeSide)
            if (rpc == method.Name && code == outcome.Code && message.IsMatch(outcome.Detail))
            {
                allowed[why] = allowed.GetValueOrDefault(why) + 1;
                return;
            }
        Violations.Add(what);
    }

    /// <summary>A removal of something the run made that did not succeed.</summary>
    public void Cleanup(string rpc, string id, StatusCode code, string detail) =>
        Violations.Add($"clean-up {rpc}({HostileValues.Describe(id)}) -> {code}: {Cut(detail)}");

    public string Last(int count)
    {
        lock (log) return "last requests:\n" + string.Join('\n', log.TakeLast(count));
    }

    public string Summary()
    {
        var lines = new List<string> { $"answers by RPC and code (seed {run.Seed}): " + string.Join(", ", codes.OrderBy(c => c.Key).Select(c => $"{c.Key} {c.Value}")) };
        foreach (var (why, n) in allowed) lines.Add($"allowed runtime-side failures ({n}): {why}");
        return string.Join('\n', lines);
    }

    public static string Cut(string text) => text.Length <= 300 ? text : text[..300] + $"…({text.Length} chars)";
}
