using CriRuntime.Bench;
using Grpc.Core;

// criruntime-bench: the same CRI workloads against every --endpoint, side by side (issue #4).
BenchOptions options;
try
{
    if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
    {
        Console.WriteLine(BenchOptions.Usage);
        return args.Length == 0 ? 2 : 0;
    }
    options = BenchOptions.Parse(args);
}
catch (UsageException e)
{
    Console.Error.WriteLine($"error: {e.Message}\n\n{BenchOptions.Usage}");
    return 2;
}

// Ctrl-C / SIGTERM cancel the workload; the finally blocks still remove the pods and stop started daemons.
using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
{
    ctx.Cancel = true;
    cts.Cancel();
});

string workDir = options.WorkDir ?? Directory.CreateTempSubdirectory("criruntime-bench-").FullName;
Directory.CreateDirectory(workDir);

if (options.Command == "cleanup")
{
    int failed = 0;
    foreach (var e in options.Endpoints)
    {
        await using var t = new CriRuntime.Bench.Target(e, workDir, "/criruntime-bench");
        try
        {
            await t.ConnectAsync(cts.Token);
            int removed = await t.RemoveAllBenchPodsAsync(cts.Token);
            Console.Error.WriteLine($"{e.Endpoint}: removed {removed} bench pod(s)");
        }
        catch (Exception ex) when (ex is RpcException or InvalidOperationException)
        {
            Console.Error.WriteLine($"{e.Endpoint}: cleanup failed: {ex.Message}");
            failed++;
        }
    }
    return failed == 0 ? 0 : 1;
}

var targets = options.Endpoints.Select(e => new CriRuntime.Bench.Target(e, workDir, options.CgroupParent)).ToList();
var results = new Results(targets.Select(t => t.Name).ToList());
foreach (var (key, value) in options.Info) results.Info[key] = value;
results.Info["loadavgAtStart"] = File.ReadAllText("/proc/loadavg").Trim();
var workloads = new Workloads(options, targets, results);
int exitCode = 0;
try
{
    await workloads.StartupAsync(cts.Token);
    await workloads.PrepareAsync(cts.Token);
    if (options.Runs("podstart")) await workloads.PodStartAndTeardownAsync(cts.Token);
    if (options.Runs("load")) await workloads.LoadAsync(cts.Token);
    if (options.Runs("memory") || options.Runs("list")) await workloads.MemoryAndListAsync(cts.Token);
    if (options.Runs("pull")) await workloads.PullAsync(cts.Token);
    if (options.Runs("floor")) await workloads.FloorAsync(workDir, cts.Token);
    if (options.Runs("exec")) await workloads.ExecAsync(cts.Token);
}
catch (Exception e) when (e is RpcException or InvalidOperationException or TimeoutException or OperationCanceledException or IOException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine("the figures measured so far are in the table and JSON below");
    results.Info["error"] = e.Message;
    exitCode = 1;
}
finally
{
    results.Info["loadavgAtEnd"] = File.ReadAllText("/proc/loadavg").Trim();
    foreach (var t in targets) await t.DisposeAsync();
}

Console.WriteLine();
Console.WriteLine(results.Table());
await results.WriteJsonAsync(options.Out, CancellationToken.None);
Console.WriteLine($"results: {Path.GetFullPath(options.Out)}");
return exitCode;
