using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using CriRuntime.Streaming.Spdy;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// PortForward through the streaming server to servers in real runc pods: our SPDY client speaking
/// portforward.k8s.io as client-go does (error and data stream pairs per request id), and stock crictl v1.26.1.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class PortForwardTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);
    private int nextRequestId;

    [Fact]
    public async Task PortForward_ReachesThePodsOwnLocalhost_ManyRequestsAtOnce_ErrorsOnTheirErrorStreams_ConnectionStaysUp()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("pf");
        // Servers bound to the pod's loopback only: nothing outside the pod's network namespace can reach them.
        string web = await CreateAndStartAsync(pod, "web", Sh("echo hi-from-pod > /tmp/index.html; exec /bin/busybox httpd -f -p 127.0.0.1:80 -h /tmp"));
        await CreateAndStartAsync(pod, "web6", Sh("echo hi-over-ipv6 > /tmp/index.html; exec /bin/busybox httpd -f -p '[::1]:8081' -h /tmp"));
        await CreateAndStartAsync(pod, "echo", Sh("exec /bin/busybox nc -ll -p 9000 -e /bin/cat"));
        await WaitListeningAsync(web, ":80 ", ":8081 ", ":9000 ");
        using var timeout = new CancellationTokenSource(Bound);

        var response = await Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = pod.Id, Port = { 80 } });
        Assert.Matches("^http://127\\.0\\.0\\.1:[0-9]+/portforward/[A-Za-z0-9_-]+$", response.Url);
        var upgrade = await SpdyStreamingClient.ConnectAsync(response.Url, ["portforward.k8s.io"], timeout.Token);
        Assert.Equal(101, upgrade.StatusCode);
        Assert.Equal("portforward.k8s.io", upgrade.Protocol);
        await using var session = upgrade.Session!;

        var first = await GetAsync(session, "80", timeout.Token);
        Assert.Equal("", first.Error);
        AssertPage("hi-from-pod\n", first.Data);

        // Many requests at once on the one connection, each its own TCP connection in the pod.
        var many = await Task.WhenAll(Enumerable.Range(0, 24).Select(_ => GetAsync(session, "80", timeout.Token)));
        foreach (var one in many)
        {
            Assert.Equal("", one.Error);
            AssertPage("hi-from-pod\n", one.Data);
        }

        // Nothing on 127.0.0.1:8081, something on [::1]:8081: IPv4 is tried first, then IPv6.
        var v6 = await GetAsync(session, "8081", timeout.Token);
        Assert.Equal("", v6.Error);
        AssertPage("hi-over-ipv6\n", v6.Data);

        // More than a SPDY window each way, through a half-close: the client's FIN reaches cat as EOF.
        var payload = new byte[1 << 20];
        Random.Shared.NextBytes(payload);
        var (echoed, echoError) = await ExchangeAsync(session, "9000", payload, timeout.Token);
        Assert.Equal("", echoError);
        Assert.True(payload.AsSpan().SequenceEqual(echoed), $"1 MiB through nc -e cat came back as {echoed.Length} bytes, not the same");

        // A refused port is reported on that request's error stream, as the kubelet's JSON.
        var refused = await GetAsync(session, "81", timeout.Token);
        Output.WriteLine($"refused port 81: {refused.Error}");
        Assert.Equal("", refused.Data);
        using (var json = JsonDocument.Parse(refused.Error))
        {
            Assert.True(json.RootElement.GetProperty("closeConnection").GetBoolean());
            var message = json.RootElement.GetProperty("message").GetString()!;
            Assert.Contains($"error forwarding port 81 to pod {pod.Id}", message);
            Assert.Contains("IPv4: dial tcp4 127.0.0.1:81: connect: connection refused", message);
            Assert.Contains("IPv6: dial tcp6 [::1]:81", message);
        }

        // So are bad port headers.
        foreach (var bad in new[] { "http", "0", "65536", "-1", "" })
        {
            var answer = await GetAsync(session, bad, timeout.Token);
            Output.WriteLine($"port header '{bad}': {answer.Error}");
            Assert.Equal("", answer.Data);
            using var json = JsonDocument.Parse(answer.Error);
            Assert.Contains(bad.Length == 0 ? "\"port\" header is required" : $"unable to parse \"{bad}\" as a port",
                json.RootElement.GetProperty("message").GetString());
        }

        // A stream that is neither error nor data is refused; the connection carries on.
        var stray = await session.OpenStreamAsync([new("streamtype", "stdin"), new("port", "80"), new("requestid", "stray")], cancellationToken: timeout.Token);
        await Assert.ThrowsAsync<SpdyStreamClosedException>(() => stray.Reply.WaitAsync(timeout.Token));

        var after = await GetAsync(session, "80", timeout.Token);
        Assert.Equal("", after.Error);
        AssertPage("hi-from-pod\n", after.Data);

        // The URL was for one use.
        var again = await SpdyStreamingClient.ConnectAsync(response.Url, ["portforward.k8s.io"], timeout.Token);
        Assert.Equal(404, again.StatusCode);
    }

    [Fact]
    public async Task PortForward_ToAHostNetworkPod_DialsTheNodesLocalhost()
    {
        await StartPodDaemonAsync();
        int port = FreeLoopbackPort();
        var pod = await RunPodAsync("pf-hostnet", c => c.Linux.SecurityContext.NamespaceOptions.Network = NamespaceMode.Node);
        string web = await CreateAndStartAsync(pod, "web",
            Sh($"mkdir -p /tmp/www; echo hi-from-host-network > /tmp/www/index.html; exec /bin/busybox httpd -f -p 127.0.0.1:{port} -h /tmp/www"));
        await WaitListeningAsync(web, $":{port} ");
        using var timeout = new CancellationTokenSource(Bound);

        var response = await Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = pod.Id });
        var upgrade = await SpdyStreamingClient.ConnectAsync(response.Url, ["portforward.k8s.io"], timeout.Token);
        await using var session = upgrade.Session!;
        var page = await GetAsync(session, port.ToString(CultureInfo.InvariantCulture), timeout.Token);
        Assert.Equal("", page.Error);
        AssertPage("hi-from-host-network\n", page.Data);

        int closed = FreeLoopbackPort();
        var refused = await GetAsync(session, closed.ToString(CultureInfo.InvariantCulture), timeout.Token);
        using var json = JsonDocument.Parse(refused.Error);
        var message = json.RootElement.GetProperty("message").GetString()!;
        Assert.Contains("in network namespace \"host\"", message);
        Assert.Contains($"127.0.0.1:{closed}: connect: connection refused", message);
    }

    [Fact]
    public async Task PortForward_Rpc_ChecksThePodAndThePorts_AndALonePairTimesOut()
    {
        await StartPodDaemonAsync("\n[streaming]\nstream_creation_timeout = \"2s\"\n");
        var pod = await RunPodAsync("pf-rpc");

        await ExpectErrorAsync(StatusCode.InvalidArgument, "PortForward without a pod id",
            dl => Runtime.PortForwardAsync(new PortForwardRequest { Port = { 80 } }, deadline: dl));
        await ExpectErrorAsync(StatusCode.NotFound, "PortForward to a pod that does not exist",
            dl => Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = "0123456789abcdef", Port = { 80 } }, deadline: dl));
        foreach (var port in new[] { 0, -1, 65536 })
        {
            var bad = await ExpectErrorAsync(StatusCode.InvalidArgument, $"PortForward to port {port}",
                dl => Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = pod.Id, Port = { 80, port } }, deadline: dl));
            Assert.Contains($"port {port}", bad.Status.Detail);
        }

        var many = await ExpectErrorAsync(StatusCode.InvalidArgument, "PortForward of 1025 ports",
            dl => Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = pod.Id, Port = { Enumerable.Range(1, 1025) } }, deadline: dl));
        Assert.Contains("at most 1024", many.Status.Detail);

        // A pair whose data stream never comes is told so on its error stream once the stream creation timeout passes.
        using (var lonely = new CancellationTokenSource(Bound))
        {
            var url = (await Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = pod.Id })).Url;
            await using var alone = (await SpdyStreamingClient.ConnectAsync(url, ["portforward.k8s.io"], lonely.Token)).Session!;
            var error = await alone.OpenAsync("error", lonely.Token, new("port", "80"), new("requestid", "lone"));
            await error.CloseWriteAsync(lonely.Token);
            var waited = Stopwatch.StartNew();
            using var json = JsonDocument.Parse(await error.ReadToEndAsync(lonely.Token));
            Assert.Contains("timed out waiting for streams of request lone", json.RootElement.GetProperty("message").GetString());
            Assert.InRange(waited.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(30));
        }

        // A token issued while the pod ran is refused on its error stream once the pod has stopped.
        var early = await Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = pod.Id[..12], Port = { 80 } });
        await StopPodAsync(pod.Id);
        await ExpectErrorAsync(StatusCode.FailedPrecondition, "PortForward to a stopped pod",
            dl => Runtime.PortForwardAsync(new PortForwardRequest { PodSandboxId = pod.Id, Port = { 80 } }, deadline: dl));
        using var timeout = new CancellationTokenSource(Bound);
        var upgrade = await SpdyStreamingClient.ConnectAsync(early.Url, ["portforward.k8s.io"], timeout.Token);
        await using var session = upgrade.Session!;
        var answer = await GetAsync(session, "80", timeout.Token);
        Output.WriteLine($"after stop: {answer.Error}");
        Assert.Contains("is not ready", answer.Error);
    }

    [Fact]
    public async Task StockCrictl_PortForward_CarriesHttp()
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("pf-crictl");
        string web = await CreateAndStartAsync(pod, "web", Sh("echo hi-via-crictl > /tmp/index.html; exec /bin/busybox httpd -f -p 80 -h /tmp"));
        await WaitListeningAsync(web, ":80 ");
        int local = FreeLoopbackPort();

        var start = new ProcessStartInfo(StockCriTools.Crictl)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--runtime-endpoint", $"unix://{Daemon.Socket}", "--timeout", "60s", "port-forward", pod.Id, $"{local}:80" })
            start.ArgumentList.Add(a);
        using var crictl = Process.Start(start)!;
        var stdout = crictl.StandardOutput.ReadToEndAsync();
        var stderr = crictl.StandardError.ReadToEndAsync();
        try
        {
            // crictl listens once its upgrade succeeded; HttpGetAsync retries until then.
            Assert.Equal("hi-via-crictl\n", await HttpGetAsync($"http://127.0.0.1:{local}/index.html"));
            Assert.Equal("hi-via-crictl\n", await HttpGetAsync($"http://127.0.0.1:{local}/index.html"));
            Assert.False(crictl.HasExited, "crictl port-forward exited while forwarding");
        }
        finally
        {
            if (!crictl.HasExited) crictl.Kill(entireProcessTree: true);
            await crictl.WaitForExitAsync();
            Output.WriteLine($"crictl port-forward output:\n{await stdout}\nstderr: {await stderr}");
        }
        Assert.Contains($"Forwarding from 127.0.0.1:{local} -> 80", await stdout);
    }

    /// <summary>One HTTP/1.0 GET of /index.html through a new request pair; the port header is passed as given.</summary>
    private async Task<(string Data, string Error)> GetAsync(SpdySession session, string port, CancellationToken cancellationToken)
    {
        var (data, error) = await ExchangeAsync(session, port, Encoding.ASCII.GetBytes("GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n"), cancellationToken);
        return (Encoding.UTF8.GetString(data), error);
    }

    /// <summary>
    /// One request pair as client-go makes it: the error stream first (finished at once: the client never writes
    /// on it), then the data stream; sends <paramref name="payload"/>, finishes the data stream, reads the answer
    /// to its end, then reads the error stream to its end.
    /// </summary>
    private async Task<(byte[] Data, string Error)> ExchangeAsync(SpdySession session, string port, byte[] payload, CancellationToken cancellationToken)
    {
        var id = Interlocked.Increment(ref nextRequestId).ToString(CultureInfo.InvariantCulture);
        var error = await session.OpenAsync("error", cancellationToken, new("port", port), new("requestid", id));
        await error.CloseWriteAsync(cancellationToken);
        var errorText = error.ReadToEndAsync(cancellationToken);
        var data = await session.OpenAsync("data", cancellationToken, new("port", port), new("requestid", id));
        var answer = data.ReadToEndAsync(cancellationToken);
        try
        {
            await data.WriteAsync(payload, cancellationToken);
            await data.CloseWriteAsync(cancellationToken);
        }
        catch (SpdyStreamClosedException)
        {
            // The server may finish (and forget) a failed request's data stream before the client has written.
        }
        var received = await answer;
        return (received, Encoding.UTF8.GetString(await errorText));
    }

    private static void AssertPage(string body, string response)
    {
        Assert.StartsWith("HTTP/1.", response);
        Assert.Contains(" 200 OK", response);
        Assert.EndsWith("\r\n\r\n" + body, response);
    }

    /// <summary>Waits until every one of <paramref name="ports"/> (":PORT ") shows as a listening TCP socket in the container's network namespace.</summary>
    private async Task WaitListeningAsync(string containerId, params string[] ports)
    {
        string table = "";
        bool listening = await EventuallyAsync(async () =>
        {
            // /proc/net/tcp{,6} as netstat prints them; busybox netstat is not among the image's applets.
            var r = await ExecSyncAsync(containerId, ["busybox", "netstat", "-ltn"], timeoutSeconds: 10);
            table = r.Stdout.ToStringUtf8();
            return r.ExitCode == 0 && ports.All(p => table.Contains(p, StringComparison.Ordinal));
        }, TimeSpan.FromSeconds(20));
        Assert.True(listening, $"{string.Join(", ", ports)} not listening in the pod:\n{table}");
    }

    private static int FreeLoopbackPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
