using System.Globalization;

namespace CriRuntime.Bench;

/// <summary>One runtime under test: its socket and how to find and (optionally) start its processes.</summary>
public sealed record EndpointOptions(
    string Name,
    string Endpoint,
    string? StartCommand,
    int? DaemonPid,
    IReadOnlyList<string> Helpers,
    string? HelperMatch,
    IReadOnlyList<string> Infra,
    string? ContentDir);

public sealed class UsageException(string message) : Exception(message);

/// <summary>The command line of <c>criruntime-bench</c>.</summary>
public sealed class BenchOptions
{
    public const string Usage = """
        Usage: criruntime-bench [run] --endpoint unix:///PATH --name NAME [--endpoint ... --name ...] [options]
               criruntime-bench cleanup --endpoint unix:///PATH [--endpoint ...]

        Runs the same CRI workloads against every endpoint and prints them side by side (the ratio is the
        first endpoint over the second). "cleanup" stops and removes every pod this tool labelled.

        Per endpoint (give each option once per --endpoint, in the same order, or not at all):
          --name NAME                  label in the table and JSON (required)
          --start-command CMD          /bin/sh command (use exec) that starts the daemon: the tool measures
                                       start to first answered Version (--startup-runs times), keeps the last
                                       one running, and stops it (SIGTERM) at the end
          --daemon-pid PID             the running daemon, when there is no --start-command
          --helpers a,b                process names of per-pod helpers (conmon / containerd-shim-runc-v2)
          --helper-match TEXT          a helper counts only if its command line contains TEXT (or its parent
                                       is a counted helper or the daemon)
          --infra a,b                  process names of pod infra processes (children of helpers), reported apart
          --content-dir DIR            the daemon's root: the cold pull waits until it shrinks back after RemoveImage

        Workload:
          --image REF                  busybox image with sleep (pods run `sleep 3600`)       (required)
          --large-image REF            >= 100 MiB multi-layer image for the cold pull          (required)
          --shared-image REF           image sharing --large-image's layers plus one more      (required)
          --out FILE                   JSON results                                             (required)
          --work-dir DIR               pod log directories go here (default: a temp dir)
          --cgroup-parent PATH         pods' cgroup parents are PATH/pod<uid>  (default /criruntime-bench)
          --pods N                     sequential pod starts (30)
          --load-pods N                pods per concurrent run (60)
          --concurrency A,B            concurrent pod starts (4,8)
          --load-runs N                runs per concurrency (3)
          --memory-pods N              pods running for the memory figure (50); each gets a second container
                                       for the list latency (2N containers)
          --list-calls N               ListContainers / ListPodSandbox calls (200)
          --pull-runs N                cold pulls (3)
          --startup-runs N             daemon starts (5)
          --floor-bundle DIR           an OCI bundle for `runc run -d` with no daemon (skipped if absent)
          --floor-runs N               (20)
          --runc PATH                  (/usr/sbin/runc)
          --crictl PATH                crictl for the exec figures (`crictl exec CID true`; skipped if not given)
          --exec-runs N                timed crictl execs of each kind (20)
          --skip LIST                  workloads to skip: startup,podstart,load,memory,list,pull,floor,exec
          --info KEY=VALUE             recorded under "info" in the JSON (machine, versions); repeatable
        """;

    public string Command { get; private set; } = "run";
    public List<EndpointOptions> Endpoints { get; } = [];
    public string Image { get; private set; } = "";
    public string LargeImage { get; private set; } = "";
    public string SharedImage { get; private set; } = "";
    public string Out { get; private set; } = "";
    public string? WorkDir { get; private set; }
    public string CgroupParent { get; private set; } = "/criruntime-bench";
    public int Pods { get; private set; } = 30;
    public int LoadPods { get; private set; } = 60;
    public IReadOnlyList<int> Concurrency { get; private set; } = [4, 8];
    public int LoadRuns { get; private set; } = 3;
    public int MemoryPods { get; private set; } = 50;
    public int ListCalls { get; private set; } = 200;
    public int PullRuns { get; private set; } = 3;
    public int StartupRuns { get; private set; } = 5;
    public string? FloorBundle { get; private set; }
    public int FloorRuns { get; private set; } = 20;
    public string Runc { get; private set; } = "/usr/sbin/runc";
    public string? Crictl { get; private set; }
    public int ExecRuns { get; private set; } = 20;
    public HashSet<string> Skip { get; } = new(StringComparer.Ordinal);
    public List<KeyValuePair<string, string>> Info { get; } = [];

    private static readonly string[] Workloads = ["startup", "podstart", "load", "memory", "list", "pull", "floor", "exec"];

    public bool Runs(string workload) => !Skip.Contains(workload);

    public static BenchOptions Parse(string[] args)
    {
        var o = new BenchOptions();
        var endpoints = new List<string>();
        var names = new List<string>();
        var starts = new List<string>();
        var pids = new List<string>();
        var helpers = new List<string>();
        var matches = new List<string>();
        var infra = new List<string>();
        var contentDirs = new List<string>();
        int i = 0;
        if (args.Length > 0 && !args[0].StartsWith('-'))
        {
            o.Command = args[0] is "run" or "cleanup" ? args[0] : throw new UsageException($"unknown command '{args[0]}'");
            i = 1;
        }
        for (; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new UsageException($"{args[i]} needs a value");
            int Positive()
            {
                string name = args[i];
                return int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0
                    ? n : throw new UsageException($"{name} needs a whole number > 0");
            }
            switch (args[i])
            {
                case "--endpoint": endpoints.Add(Value()); break;
                case "--name": names.Add(Value()); break;
                case "--start-command": starts.Add(Value()); break;
                case "--daemon-pid": pids.Add(Value()); break;
                case "--helpers": helpers.Add(Value()); break;
                case "--helper-match": matches.Add(Value()); break;
                case "--infra": infra.Add(Value()); break;
                case "--content-dir": contentDirs.Add(Value()); break;
                case "--image": o.Image = Value(); break;
                case "--large-image": o.LargeImage = Value(); break;
                case "--shared-image": o.SharedImage = Value(); break;
                case "--out": o.Out = Value(); break;
                case "--work-dir": o.WorkDir = Value(); break;
                case "--cgroup-parent":
                    o.CgroupParent = Value().TrimEnd('/');
                    if (!o.CgroupParent.StartsWith('/') || o.CgroupParent.Length < 2)
                        throw new UsageException("--cgroup-parent must be an absolute cgroup path below the root, e.g. /criruntime-bench");
                    break;
                case "--pods": o.Pods = Positive(); break;
                case "--load-pods": o.LoadPods = Positive(); break;
                case "--concurrency":
                    string list = Value();
                    o.Concurrency = list.Split(',').Select(s => int.TryParse(s, out int n) && n > 0
                        ? n : throw new UsageException($"--concurrency: '{s}' is not a whole number > 0")).ToArray();
                    break;
                case "--load-runs": o.LoadRuns = Positive(); break;
                case "--memory-pods": o.MemoryPods = Positive(); break;
                case "--list-calls": o.ListCalls = Positive(); break;
                case "--pull-runs": o.PullRuns = Positive(); break;
                case "--startup-runs": o.StartupRuns = Positive(); break;
                case "--floor-bundle": o.FloorBundle = Value(); break;
                case "--floor-runs": o.FloorRuns = Positive(); break;
                case "--crictl": o.Crictl = Value(); break;
                case "--exec-runs": o.ExecRuns = Positive(); break;
                case "--runc": o.Runc = Value(); break;
                case "--skip":
                    foreach (var w in Value().Split(',', StringSplitOptions.RemoveEmptyEntries))
                        o.Skip.Add(Workloads.Contains(w) ? w : throw new UsageException($"--skip: unknown workload '{w}' (known: {string.Join(",", Workloads)})"));
                    break;
                case "--info":
                    string kv = Value();
                    int eq = kv.IndexOf('=');
                    if (eq <= 0) throw new UsageException($"--info '{kv}' is not KEY=VALUE");
                    o.Info.Add(new(kv[..eq], kv[(eq + 1)..]));
                    break;
                default: throw new UsageException($"unknown option '{args[i]}'");
            }
        }

        if (endpoints.Count == 0) throw new UsageException("give at least one --endpoint");
        if (o.Command == "cleanup")
        {
            foreach (var e in endpoints) o.Endpoints.Add(new EndpointOptions(e, e, null, null, [], null, [], null));
            return o;
        }
        if (names.Count != endpoints.Count) throw new UsageException($"give one --name per --endpoint ({endpoints.Count} endpoints, {names.Count} names)");
        if (names.Distinct().Count() != names.Count) throw new UsageException("--name values must differ");
        void SameCount(List<string> l, string option)
        {
            if (l.Count != 0 && l.Count != endpoints.Count)
                throw new UsageException($"give {option} once per --endpoint ({endpoints.Count}) or not at all; got {l.Count}");
        }
        SameCount(starts, "--start-command");
        SameCount(pids, "--daemon-pid");
        SameCount(helpers, "--helpers");
        SameCount(matches, "--helper-match");
        SameCount(infra, "--infra");
        SameCount(contentDirs, "--content-dir");
        if (o.Image.Length == 0) throw new UsageException("--image is required");
        if (o.Runs("pull") && (o.LargeImage.Length == 0 || o.SharedImage.Length == 0))
            throw new UsageException("--large-image and --shared-image are required (or --skip pull)");
        if (o.Out.Length == 0) throw new UsageException("--out is required");

        static IReadOnlyList<string> Names(List<string> l, int k) =>
            l.Count == 0 ? [] : l[k].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        static string? At(List<string> l, int k) => l.Count == 0 || l[k].Length == 0 ? null : l[k];
        for (int k = 0; k < endpoints.Count; k++)
        {
            int? pid = null;
            if (At(pids, k) is { } p)
                pid = int.TryParse(p, out int n) && n > 0 ? n : throw new UsageException($"--daemon-pid '{p}' is not a pid");
            o.Endpoints.Add(new EndpointOptions(names[k], endpoints[k], At(starts, k), pid, Names(helpers, k), At(matches, k),
                Names(infra, k), At(contentDirs, k)));
        }
        return o;
    }
}
