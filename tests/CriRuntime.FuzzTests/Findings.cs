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
    private readonly Dictionary<string, List<string>> known = new(StringComparer.Ordinal);
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
    ];

    /// <summary>
    /// TEMPORARY: wrong codes the suite finds that other branches of issue #13 fix right now. Fixed on another
    /// branch, remove at merge: each entry names the branch; after the merge this list must be empty.
    /// </summary>
    private static readonly (string Rpc, Regex Mutation, StatusCode Code, Regex Message, string Branch)[] FixedElsewhere =
    [
        // Issue #13 item 8: container values runc refuses (negative or huge cpu/memory values, hugepage sizes that are
        // not page sizes, unified on cgroup v1, gids over 2^31-1, ...) reach `runc create` and come back UNKNOWN.
        ("CreateContainer", new(@"resources|hugepage|unified|supplemental_groups|run_as|oom_score_adj|cpu|memory|sysctls|capabilities|working_dir|envs|namespace_options|overhead"),
            StatusCode.Unknown, new(@"runc create failed|crun"), "wip/ctrvalidation: container values validated before runc (#13 item 8)"),
        // The same values (and malformed cpusets) in UpdateContainerResources reach `runc update`.
        ("UpdateContainerResources", new(@"."), StatusCode.Unknown, new(@"runc update|crun update"),
            "wip/ctrvalidation: UpdateContainerResources values validated before runc (#13 item 8)"),
        // Issue #13 item 6: a device host_path that does not exist (here "" from an empty device) is realpath's ENOENT.
        ("CreateContainer", new(@"devices"), StatusCode.Internal, new(@"realpath"), "wip/ctrvalidation: device host_path NotFound/InvalidArgument (#13 item 6)"),
        // Issue #13 item 6: log_path values the daemon cannot use ("/" has no parent: ArgumentNullException).
        ("CreateContainer", new(@"log_path"), StatusCode.Internal, new(@"."), "wip/ctrvalidation: log_path validated (#13 item 6)"),
        // The same: a log_path conmon cannot open ("\uFFFF") makes conmon exit before it reports a pid: UNKNOWN.
        ("CreateContainer", new(@"log_path"), StatusCode.Unknown, new(@"conmon"), "wip/ctrvalidation: log_path validated (#13 item 6)"),
        // Pod-level cgroup values the kernel refuses (memory limits below the usage, swap on a host without swap accounting).
        ("RunPodSandbox", new(@"resources|overhead"), StatusCode.Internal, new(@"/sys/fs/cgroup/"), "wip/podvalidation: pod-side values validated before the pod cgroup is written (#13 items 7/8)"),
        // Issue #13 item 4: pod metadata (name, namespace, uid) reaches CNI's CNI_ARGS unchecked ("K8S_POD_UID==").
        ("RunPodSandbox", new(@"metadata"), StatusCode.Unknown, new(@"CNI"), "wip/podvalidation: pod metadata validated (#13 item 4)"),
        // Issue #13 item 9: a 1 MiB value echoed in the error's grpc-message header; the client refuses the answer.
        ("*", new(@"1048576 chars|1048577 chars"), StatusCode.Unavailable, new(@"HTTP headers length exceeded"), "wip/podvalidation: echoed values cut (#13 item 9)"),
        ("*", new(@"1048576 chars|1048577 chars"), StatusCode.ResourceExhausted, new(@"exceeds the maximum"), "wip/podvalidation: echoed values cut (#13 item 9)"),
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
        string mutationText = string.Join("; ", mutations);
        foreach (var (rpc, mutation, code, message, branch) in FixedElsewhere)
            if ((rpc == "*" || rpc == method.Name) && code == outcome.Code && mutation.IsMatch(mutationText) && message.IsMatch(outcome.Detail))
            {
                if (!known.TryGetValue(branch, out var list)) known[branch] = list = [];
                list.Add(what);
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
        foreach (var (branch, list) in known)
        {
            lines.Add($"FIXED ON ANOTHER BRANCH ({branch}), {list.Count} hits, e.g.:");
            lines.AddRange(list.Take(3).Select(l => "  " + l));
        }
        return string.Join('\n', lines);
    }

    public static string Cut(string text) => text.Length <= 300 ? text : text[..300] + $"…({text.Length} chars)";
}
