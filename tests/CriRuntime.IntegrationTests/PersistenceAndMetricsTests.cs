using System.Text.RegularExpressions;
using CriRuntime.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>Images survive a crash (SIGKILL) and restart; /metrics counts CRI calls.</summary>
[Collection(RegistryCollection.Name)]
public sealed class PersistenceAndMetricsTests(RegistryFixture registry, ITestOutputHelper output) : DaemonTest(output)
{
    [Fact]
    public async Task ImagesSurviveSigkillAndRestart_AndCanBeRemovedAfterwards()
    {
        var d = await StartDaemonAsync();
        await PullAsync(d, registry.Ref("busybox:latest"));
        await PullAsync(d, registry.Ref("multilayer:latest"));
        await PullAsync(d, registry.Ref("busybox:nonroot"));
        var before = (await ListAsync(d)).OrderBy(i => i.Id, StringComparer.Ordinal).ToList();
        Assert.Equal(3, before.Count);

        await d.KillAsync();
        var again = await RestartDaemonAsync(d);

        var after = (await ListAsync(again)).OrderBy(i => i.Id, StringComparer.Ordinal).ToList();
        Assert.Equal(before.Select(i => i.Id), after.Select(i => i.Id));
        for (int i = 0; i < before.Count; i++)
        {
            Assert.Equal(before[i].RepoTags.Order(), after[i].RepoTags.Order());
            Assert.Equal(before[i].RepoDigests.Order(), after[i].RepoDigests.Order());
            Assert.Equal(before[i].Size, after[i].Size);
            Assert.Equal(before[i].Uid?.Value, after[i].Uid?.Value);
        }
        Assert.Equal(registry.MultiLayer.ImageId, (await RequireStatusAsync(again, registry.Ref("multilayer:latest"))).Id);
        Assert.Equal(
            OnDisk.ChainIds(registry.Busybox).Concat(OnDisk.ChainIds(registry.MultiLayer)).Concat(OnDisk.ChainIds(registry.BusyboxNonRoot))
                .Select(OnDisk.Hex).Distinct().Order(StringComparer.Ordinal),
            OnDisk.LayerDirNames(again.Root));

        await RemoveAsync(again, registry.Ref("multilayer:latest"));
        var left = await ListAsync(again);
        Assert.Equal(new[] { registry.Busybox.ImageId, registry.BusyboxNonRoot.ImageId }.Order(StringComparer.Ordinal),
            left.Select(i => i.Id).Order(StringComparer.Ordinal));
        Assert.Equal(registry.MultiLayer.ImageId, await PullAsync(again, registry.Ref("multilayer:latest")));

        // And a clean stop and start keep the same set too.
        Assert.Equal(0, await again.StopAsync(TimeSpan.FromSeconds(10)));
        var third = await RestartDaemonAsync(again);
        Assert.Equal(3, (await ListAsync(third)).Count);
    }

    [Fact]
    public async Task Metrics_CountPullImageCalls()
    {
        var d = await StartDaemonAsync();
        string? url = null;
        var pattern = new Regex(@"metrics (http://127\.0\.0\.1:\d+/metrics)");
        bool logged = await EventuallyAsync(() => (url = pattern.Match(d.LogTail(400)) is { Success: true } m ? m.Groups[1].Value : null) is not null,
            TimeSpan.FromSeconds(10));
        Assert.True(logged, $"no 'metrics http://127.0.0.1:PORT/metrics' in the daemon log\n{d.LogTail()}");

        await PullAsync(d, registry.Ref("busybox:latest"));
        await PullAsync(d, registry.Ref("busybox:latest"));
        await ExpectPullErrorAsync(d, Grpc.Core.StatusCode.NotFound, registry.Ref("busybox:no-such-tag"));

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        string text = await http.GetStringAsync(url);

        var calls = text.Split('\n')
            .Where(l => l.StartsWith("criruntime_grpc_requests_total{", StringComparison.Ordinal) && l.Contains("method=\"PullImage\"", StringComparison.Ordinal))
            .ToList();
        Assert.True(calls.Count > 0, "no criruntime_grpc_requests_total{method=\"PullImage\"} in /metrics:\n" + string.Join('\n', text.Split('\n').Where(l => l.StartsWith("criruntime", StringComparison.Ordinal))));
        double ok = calls.Where(l => l.Contains("code=\"OK\"", StringComparison.Ordinal)).Sum(Value);
        double notFound = calls.Where(l => l.Contains("code=\"NotFound\"", StringComparison.Ordinal)).Sum(Value);
        Assert.True(ok == 2, $"PullImage OK count {ok}, expected 2:\n{string.Join('\n', calls)}");
        Assert.True(notFound == 1, $"PullImage NotFound count {notFound}, expected 1:\n{string.Join('\n', calls)}");
    }

    private static double Value(string sampleLine) =>
        double.Parse(sampleLine[(sampleLine.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
}
