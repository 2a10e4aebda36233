using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// The kubernetes.io/ingress-bandwidth and egress-bandwidth annotations through Debian's CNI bandwidth plugin, on
/// this test's own network (its conflist gains a bandwidth plugin; the shared /etc/cni/net.d is not touched): the
/// pod's host-side veth gets a token bucket at the ingress rate, and the plugin's ifb device one at the egress rate.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class PodBandwidthTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private const string BandwidthPlugin = "/usr/lib/cni/bandwidth";

    [Fact]
    public async Task Bandwidth_annotations_shape_the_pods_veth_through_the_bandwidth_plugin()
    {
        Assert.True(File.Exists(BandwidthPlugin), $"{BandwidthPlugin} is missing: install containernetworking-plugins (hack/install-deps.sh does)");
        Assert.True(File.Exists("/usr/sbin/tc"), "/usr/sbin/tc is missing: install iproute2");
        var conflist = JsonNode.Parse(await File.ReadAllTextAsync(Network.ConflistPath))!.AsObject();
        conflist["plugins"]!.AsArray().Add(new JsonObject { ["type"] = "bandwidth", ["capabilities"] = new JsonObject { ["bandwidth"] = true } });
        await File.WriteAllTextAsync(Network.ConflistPath, conflist.ToJsonString());
        await StartPodDaemonAsync();

        var pod = await RunPodAsync("shaped", c =>
        {
            c.Annotations.Add("kubernetes.io/ingress-bandwidth", "10M");
            c.Annotations.Add("kubernetes.io/egress-bandwidth", "2M");
        });

        // The bridge's ports are the pods' host-side veths; this network has only this pod.
        string links = await RunAsync("ip", "-o", "link", "show", "master", Network.BridgeName);
        string veth = links.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(':')[1].Trim().Split('@')[0]).Single();
        string vethQdiscs = await RunAsync("tc", "qdisc", "show", "dev", veth);
        Output.WriteLine(vethQdiscs);
        Assert.Matches(@"tbf .*rate 10Mbit", vethQdiscs);
        string allQdiscs = await RunAsync("tc", "qdisc", "show");
        Assert.Matches(@"qdisc tbf .* dev bwp\S+ .*rate 2Mbit", allQdiscs);

        // A value that is no quantity is refused before anything is made.
        var bad = NewPodConfig("badrate");
        bad.Annotations.Add("kubernetes.io/egress-bandwidth", "fast");
        var e = await ExpectErrorAsync(Grpc.Core.StatusCode.InvalidArgument, "RunPodSandbox(egress-bandwidth=fast)",
            dl => Runtime.RunPodSandboxAsync(new Runtime.V1.RunPodSandboxRequest { Config = bad }, deadline: dl));
        Assert.Contains("kubernetes.io/egress-bandwidth", e.Status.Detail);

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        Assert.DoesNotMatch(@"dev bwp\S+ .*rate 2Mbit", await RunAsync("tc", "qdisc", "show"));
    }

    private static async Task<string> RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        string stdout = await process.StandardOutput.ReadToEndAsync();
        string stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"{file} {string.Join(' ', args)} exited {process.ExitCode}: {stderr}");
        return stdout;
    }
}
