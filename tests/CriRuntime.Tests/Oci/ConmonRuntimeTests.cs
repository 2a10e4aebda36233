using System.Text;
using System.Text.RegularExpressions;
using CriRuntime.Native;
using CriRuntime.Oci;
using Xunit;

namespace CriRuntime.Tests.Oci;

/// <summary>Real conmon driving real runc and crun (root, real kernel).</summary>
public sealed class ConmonRuntimeTests
{
    public static TheoryData<string> Runtimes => new() { "runc", "crun" };

    private static readonly Regex LogLine = new(@"^(?<time>\S+) (?<stream>stdout|stderr) (?<tag>[FP]) (?<msg>.*)$");

    [Theory, MemberData(nameof(Runtimes))]
    public async Task Logs_in_cri_format_and_exit_code_in_the_exit_file(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("log");
        var created = await ctx.CreateAsync(id, "sh", "-c", "echo hello; echo oops >&2; printf partial; exit 3");
        Assert.True(created.ContainerPid > 0);
        Assert.Equal("created", (await ctx.Runtime.StateAsync(id, default))!.Status);

        await ctx.Runtime.StartAsync(id, default);
        Assert.Equal(3, await ctx.WaitForExitAsync(id));
        Assert.True(ExitFiles.TryRead(ctx.ExitDir, id, out _, out var finished));
        Assert.InRange(finished, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddSeconds(1));

        string log = await RuntimeTestContext.WaitForLogAsync(ctx.LogPath(id), t => t.Contains("partial"));
        var lines = log.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => LogLine.Match(l)).ToList();
        Assert.All(lines, m => Assert.True(m.Success));
        Assert.All(lines, m => DateTimeOffset.Parse(m.Groups["time"].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains(lines, m => m.Groups["stream"].Value == "stdout" && m.Groups["tag"].Value == "F" && m.Groups["msg"].Value == "hello");
        Assert.Contains(lines, m => m.Groups["stream"].Value == "stderr" && m.Groups["tag"].Value == "F" && m.Groups["msg"].Value == "oops");
        Assert.Contains(lines, m => m.Groups["stream"].Value == "stdout" && m.Groups["tag"].Value == "P" && m.Groups["msg"].Value == "partial");
        Assert.Equal("stopped", (await ctx.Runtime.StateAsync(id, default))!.Status);
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task Sigterm_stops_a_container_that_handles_it(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("term");
        await ctx.RunAsync(id, "sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done");
        await RuntimeTestContext.WaitForLogAsync(ctx.LogPath(id), t => t.Contains("ready"));
        await ctx.Runtime.KillAsync(id, Signals.SIGTERM, all: false, default);
        Assert.Equal(7, await ctx.WaitForExitAsync(id));
        // Killing or deleting what is already stopped is not an error; neither is a second delete.
        await ctx.Runtime.KillAsync(id, Signals.SIGKILL, all: false, default);
        await ctx.Runtime.DeleteAsync(id, force: false, default);
        await ctx.Runtime.DeleteAsync(id, force: false, default);
        Assert.Null(await ctx.Runtime.StateAsync(id, default));
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task A_process_ignoring_sigterm_needs_sigkill(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("ignore");
        await ctx.RunAsync(id, "sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done");
        await RuntimeTestContext.WaitForLogAsync(ctx.LogPath(id), t => t.Contains("ready"));
        await ctx.Runtime.KillAsync(id, Signals.SIGTERM, all: false, default);
        await Task.Delay(700);
        Assert.Equal("running", (await ctx.Runtime.StateAsync(id, default))!.Status);
        Assert.False(ExitFiles.TryRead(ctx.ExitDir, id, out _, out _));
        await ctx.Runtime.KillAsync(id, Signals.SIGKILL, all: true, default);
        Assert.Equal(128 + Signals.SIGKILL, await ctx.WaitForExitAsync(id));
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task ExecSync_returns_output_and_exit_code(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("exec");
        await ctx.RunAsync(id, "sleep", "100000");
        var result = await ctx.Runtime.ExecSyncAsync(id, ["sh", "-c", "echo out; echo err >&2; exit 5"], TimeSpan.FromSeconds(20), default);
        Assert.Equal("out\n", Encoding.UTF8.GetString(result.Stdout));
        Assert.Equal("err\n", Encoding.UTF8.GetString(result.Stderr));
        Assert.Equal(5, result.ExitCode);
        // Options of the command must reach the command, not the runtime.
        var echo = await ctx.Runtime.ExecSyncAsync(id, ["echo", "-n", "--help", "x"], TimeSpan.Zero, default);
        Assert.Equal("--help x", Encoding.UTF8.GetString(echo.Stdout));
        Assert.Equal(0, echo.ExitCode);
        // The container's environment applies to exec'd processes.
        var env = await ctx.Runtime.ExecSyncAsync(id, ["sh", "-c", "echo $HOSTNAME"], TimeSpan.Zero, default);
        Assert.Equal("test-host\n", Encoding.UTF8.GetString(env.Stdout));
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task ExecSync_of_a_missing_executable_fails_naming_it_while_a_command_exiting_255_is_a_result(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("execmissing");
        await ctx.RunAsync(id, "sleep", "100000");

        // Before: exit code 255 and the runtime's text in stderr, as if the command had run.
        var byName = await Assert.ThrowsAsync<NotFoundException>(() => ctx.Runtime.ExecSyncAsync(id, ["no-such-command", "x"], TimeSpan.FromSeconds(20), default));
        Assert.Contains("'no-such-command'", byName.Message);
        var byPath = await Assert.ThrowsAsync<NotFoundException>(() => ctx.Runtime.ExecSyncAsync(id, ["/bin/no-such-command"], TimeSpan.FromSeconds(20), default));
        Assert.Contains("'/bin/no-such-command'", byPath.Message);
        var directory = await Assert.ThrowsAsync<FailedPreconditionException>(() => ctx.Runtime.ExecSyncAsync(id, ["/"], TimeSpan.FromSeconds(20), default));
        Assert.Contains("cannot be executed", directory.Message);

        // A command that exits 255 and prints what the runtime would print is still the command's result.
        var spoof = await ctx.Runtime.ExecSyncAsync(id,
            ["sh", "-c", "echo 'exec failed: unable to start container process: exec: \"x\": executable file not found in $PATH' >&2; exit 255"],
            TimeSpan.FromSeconds(20), default);
        Assert.Equal(255, spoof.ExitCode);
        Assert.Contains("executable file not found", Encoding.UTF8.GetString(spoof.Stderr));
        Assert.Empty(Directory.EnumerateFiles(Path.GetTempPath(), $"criruntime-exec-{id[..Math.Min(12, id.Length)]}-*"));
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task ExecSync_timeout_kills_the_process_and_its_children(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("exectimeout");
        var created = await ctx.RunAsync(id, "sleep", "100000");
        Assert.Equal([created.ContainerPid], ctx.CgroupPids(id));
        var started = DateTime.UtcNow;
        await Assert.ThrowsAsync<TimeoutException>(() =>
            ctx.Runtime.ExecSyncAsync(id, ["sh", "-c", "sleep 100 & sleep 101"], TimeSpan.FromSeconds(1), default));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15));
        // Only the container's init is left: the exec'd shell and both sleeps are gone.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (ctx.CgroupPids(id).Count > 1 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal([created.ContainerPid], ctx.CgroupPids(id));
        Assert.Equal("running", (await ctx.Runtime.StateAsync(id, default))!.Status);
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task ExecSync_timeout_also_bounds_output_held_open_by_a_background_child(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("execdrain");
        await ctx.RunAsync(id, "sleep", "100000");
        var started = DateTime.UtcNow;
        // The shell exits at once; the sleep it leaves behind keeps stdout and stderr open.
        await Assert.ThrowsAsync<TimeoutException>(() =>
            ctx.Runtime.ExecSyncAsync(id, ["sh", "-c", "sleep 60 &"], TimeSpan.FromSeconds(1), default));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15), "the call waited for the background child");
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task ReopenLog_writes_to_a_new_file_after_rotation(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("reopen");
        await ctx.RunAsync(id, "sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done");
        string log = ctx.LogPath(id);
        await RuntimeTestContext.WaitForLogAsync(log, t => t.Contains("line1\n"));
        File.Move(log, log + ".1");
        Assert.False(File.Exists(log));
        await ctx.Conmon.ReopenLogAsync(ctx.Bundle(id), log, default);
        Assert.True(File.Exists(log));
        string fresh = await RuntimeTestContext.WaitForLogAsync(log, t => Regex.Matches(t, "stdout F line").Count >= 3);
        // The new file continues where the old one stopped: no line is in both.
        var oldLines = File.ReadAllLines(log + ".1").Select(l => l.Split(' ').Last()).ToHashSet();
        var newLines = fresh.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ').Last()).ToList();
        Assert.DoesNotContain(newLines, oldLines.Contains);
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task Conmon_is_daemonized_and_not_our_child(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("daemon");
        var created = await ctx.RunAsync(id, "sleep", "100000");
        string status = File.ReadAllText($"/proc/{created.ConmonPid}/status");
        int ppid = int.Parse(Regex.Match(status, @"PPid:\s+(\d+)").Groups[1].Value);
        Assert.NotEqual(Environment.ProcessId, ppid);
        // Its own session: a signal to our process group or session does not reach it.
        string stat = File.ReadAllText($"/proc/{created.ConmonPid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        string ourStat = File.ReadAllText($"/proc/{Environment.ProcessId}/stat");
        var ourFields = ourStat[(ourStat.LastIndexOf(')') + 2)..].Split(' ');
        Assert.NotEqual(ourFields[3], fields[3]); // session id
        // The container process is conmon's child (conmon reaps it and writes the exit file).
        string containerStatus = File.ReadAllText($"/proc/{created.ContainerPid}/status");
        Assert.Equal(created.ConmonPid.ToString(), Regex.Match(containerStatus, @"PPid:\s+(\d+)").Groups[1].Value);
        Assert.Equal(created.ContainerPid, (await ctx.Runtime.StateAsync(id, default))!.Pid);
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task Failed_create_reports_the_runtime_error_and_leaves_nothing(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("bad");
        // A process that names no executable is the caller's mistake, told apart from other runtime failures.
        var e = await Assert.ThrowsAsync<NotFoundException>(() => ctx.CreateAsync(id, "/no-such-binary-here", "arg"));
        Assert.Contains("no-such-binary-here", e.Message);
        Assert.Null(await ctx.Runtime.StateAsync(id, default));
        var list = await ctx.Runtime.RunAsync(["list", "--quiet"], null, default);
        Assert.DoesNotContain(id, OciRuntime.Text(list.Stdout));
        await Task.Delay(100);
        Assert.Empty(RuntimeTestContext.ConmonsFor(id));
        Assert.False(File.Exists(Path.Combine(ctx.Bundle(id), "ctl")));
        Assert.False(File.Exists(Path.Combine(ctx.Bundle(id), "conmon.pid")));
        Assert.False(File.Exists(Path.Combine(ctx.ExitDir, id)));
        // The same id can be created again afterwards.
        // Nothing stale blocks a second attempt with the same bundle (conmon would refuse an existing ctl FIFO).
        var retry = await Assert.ThrowsAsync<NotFoundException>(() => ctx.Conmon.CreateContainerAsync(new ConmonCreateRequest
        {
            Id = id, Runtime = ctx.Runtime, BundleDir = ctx.Bundle(id), LogPath = ctx.LogPath(id), ExitDir = ctx.ExitDir,
        }, default));
        Assert.Contains("no-such-binary-here", retry.Message);
        Assert.Null(await ctx.Runtime.StateAsync(id, default));
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task UpdateResources_changes_the_cgroup_limits(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("update");
        await ctx.RunAsync(id, "sleep", "100000");
        await ctx.Runtime.UpdateResourcesAsync(id, new global::Runtime.V1.LinuxContainerResources
        {
            CpuShares = 512, CpuQuota = 50000, CpuPeriod = 100000, MemoryLimitInBytes = 64 * 1024 * 1024,
        }, default);
        string cpu = $"/sys/fs/cgroup/cpu{ctx.CgroupParent}/{id}";
        Assert.Equal("512", File.ReadAllText(Path.Combine(cpu, "cpu.shares")).Trim());
        Assert.Equal("50000", File.ReadAllText(Path.Combine(cpu, "cpu.cfs_quota_us")).Trim());
        Assert.Equal((64 * 1024 * 1024).ToString(), File.ReadAllText($"/sys/fs/cgroup/memory{ctx.CgroupParent}/{id}/memory.limit_in_bytes").Trim());
    }

    [Theory, MemberData(nameof(Runtimes))]
    public async Task Unknown_ids_are_not_errors_for_state_kill_and_delete(string runtime)
    {
        await using var ctx = new RuntimeTestContext(runtime);
        string id = ctx.NewId("unknown");
        Assert.Null(await ctx.Runtime.StateAsync(id, default));
        await ctx.Runtime.KillAsync(id, Signals.SIGKILL, all: true, default);
        await ctx.Runtime.DeleteAsync(id, force: true, default);
        await Assert.ThrowsAsync<OciRuntimeException>(() => ctx.Runtime.StartAsync(id, default));
    }
}
