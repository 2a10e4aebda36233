using System.Globalization;
using System.Text.RegularExpressions;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>The CRI log file format and ReopenContainerLog (the kubelet's log rotation).</summary>
[Collection(RegistryCollection.Name)]
public sealed partial class ContainerLogTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    // "<RFC 3339 time with nanoseconds> <stream> <F(ull)|P(artial)> <content>", as the kubelet parses it.
    [GeneratedRegex(@"^(?<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d)) (?<stream>stdout|stderr) (?<tag>F|P) (?<content>.*)$")]
    private static partial Regex CriLogLine();

    [GeneratedRegex(@"^tick (\d+)$")]
    private static partial Regex Tick();

    [Fact]
    public async Task LogFile_HasCriFormat_AndReopenAfterRenameStartsANewFile()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("logs");
        string id = await CreateAndStartAsync(pod, "logger",
            Sh("echo hello; echo err >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"));
        string path = Path.Combine(pod.LogDirectory, "logger", "0.log");
        Assert.Equal(path, (await ContainerStatusAsync(id)).Status.LogPath);

        var lines = ParseLines(await WaitForLogAsync(path, "tick 3\n"), path);
        Assert.Contains(lines, l => l is { Stream: "stdout", Tag: "F", Content: "hello" });
        Assert.Contains(lines, l => l is { Stream: "stderr", Tag: "F", Content: "err" });
        Assert.DoesNotContain(lines, l => l is { Stream: "stdout", Content: "err" } or { Stream: "stderr", Content: "hello" });
        foreach (var line in lines)
        {
            var time = DateTimeOffset.Parse(line.Time, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
            Assert.True(time.UtcDateTime >= TestStart.AddSeconds(-5) && time.UtcDateTime <= DateTime.UtcNow.AddSeconds(5),
                $"log time {line.Time} is not during the test (started {TestStart:O})");
        }

        // The kubelet rotates by renaming the file and asking the runtime to reopen it.
        string rotated = path + ".20250101-000000";
        File.Move(path, rotated);
        await CallAsync($"ReopenContainerLog({id})",
            dl => Runtime.ReopenContainerLogAsync(new ReopenContainerLogRequest { ContainerId = id }, deadline: dl));
        Assert.True(await EventuallyAsync(() => File.Exists(path), TimeSpan.FromSeconds(5)),
            $"ReopenContainerLog returned but {path} was not created");

        string fresh = await WaitForLogAsync(path, "tick ");
        var freshLines = ParseLines(await WaitForLogAsync(path, $"tick {LastTick(ParseLines(fresh, path)) + 2}\n"), path);
        // The old file stops growing once reopened; everything after goes to the new one.
        long oldSize = new FileInfo(rotated).Length;
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.True(new FileInfo(rotated).Length == oldSize, $"{rotated} still grows after ReopenContainerLog");
        int lastOld = LastTick(ParseLines(await ReadLogAsync(rotated), rotated));
        int firstNew = freshLines.Select(l => Tick().Match(l.Content)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).First();
        Assert.True(firstNew == lastOld + 1, $"the rotated log ends at tick {lastOld} but the new one starts at tick {firstNew}: lines lost or repeated");

        // A stopped container: ReopenContainerLog may succeed with a fresh file, or fail without creating one.
        await StopContainerAsync(id, 0);
        File.Move(path, path + ".stopped");
        try
        {
            await Runtime.ReopenContainerLogAsync(new ReopenContainerLogRequest { ContainerId = id }, deadline: Deadline());
            Assert.True(File.Exists(path), $"ReopenContainerLog of a stopped container succeeded but did not create {path}");
        }
        catch (RpcException e)
        {
            Assert.False(File.Exists(path), $"ReopenContainerLog of a stopped container failed ({e.StatusCode}: {e.Status.Detail}) but created {path}");
        }
    }

    private sealed record LogLine(string Time, string Stream, string Tag, string Content);

    /// <summary>The complete lines of a CRI log (a trailing partial write is ignored); fails on any malformed line.</summary>
    private List<LogLine> ParseLines(string content, string path)
    {
        var complete = content.Split('\n').SkipLast(1).ToList();
        var parsed = new List<LogLine>();
        foreach (var line in complete)
        {
            var m = CriLogLine().Match(line);
            if (!m.Success) throw Failure($"line of {path} is not in CRI log format: \"{line}\"\nwhole file:\n{content}");
            parsed.Add(new LogLine(m.Groups["time"].Value, m.Groups["stream"].Value, m.Groups["tag"].Value, m.Groups["content"].Value));
        }
        return parsed;
    }

    private static int LastTick(List<LogLine> lines) =>
        lines.Select(l => Tick().Match(l.Content)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();
}
