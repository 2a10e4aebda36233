using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using CriRuntime.Config;
using CriRuntime.Hosting;
using CriRuntime.Streaming;
using CriRuntime.Streaming.Spdy;
using CriRuntime.TestSupport;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Streaming;

/// <summary>The streaming server in-process on loopback: tokens, the HTTP upgrade, subprotocols, TLS, then SPDY through it.</summary>
public class StreamingServerTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.UtcNow;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    /// <summary>Stands in for exec: waits for stdin, stdout and error streams, echoes stdin to stdout, then names the protocol on error.</summary>
    private sealed class EchoHandler : IStreamingHandler
    {
        public async Task ServeAsync(StreamingConnection connection, CancellationToken cancellationToken)
        {
            var byType = new Dictionary<string, SpdyStream>();
            using var creation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            creation.CancelAfter(connection.StreamCreationTimeout);
            while (byType.Count < 3)
            {
                var stream = await connection.Session.AcceptStreamAsync(creation.Token) ?? throw new IOException("connection ended");
                await stream.ReplyAsync(cancellationToken: cancellationToken);
                byType[stream.Header("streamtype")!] = stream;
            }
            var input = await byType["stdin"].ReadToEndAsync(cancellationToken);
            await byType["stdout"].WriteAsync(input, cancellationToken);
            await byType["stdout"].CloseWriteAsync(cancellationToken);
            var exec = (ExecRequest)connection.Request.Request;
            await byType["error"].WriteAsync(Encoding.UTF8.GetBytes($"{connection.Protocol} {exec.ContainerId}"), cancellationToken);
            await byType["error"].CloseWriteAsync(cancellationToken);
            await connection.Session.Completion.WaitAsync(cancellationToken);
        }
    }

    private static async Task<(StreamingServer Server, StreamingRequestCache Cache, ManualTime Time)> StartAsync(
        StreamingSection? config = null, bool withHandlers = true)
    {
        var time = new ManualTime();
        var cache = new StreamingRequestCache(time);
        var handlers = new Dictionary<StreamingKind, IStreamingHandler>();
        if (withHandlers) handlers[StreamingKind.Exec] = new EchoHandler();
        var server = await StreamingServer.StartAsync(config ?? new StreamingSection(), cache, handlers, NullLoggerFactory.Instance, CancellationToken.None);
        return (server, cache, time);
    }

    private static string ExecToken(StreamingRequestCache cache, string container = "c1") =>
        cache.Insert(new StreamingRequest(StreamingKind.Exec, new ExecRequest { ContainerId = container, Cmd = { "sh" }, Stdin = true, Stdout = true }));

    private static async Task RunEchoAsync(StreamingServer server, string url, string expectedProtocol, string container)
    {
        using var timeout = new CancellationTokenSource(Wait);
        var result = await SpdyStreamingClient.ConnectAsync(url, ["v5.channel.k8s.io", expectedProtocol, "channel.k8s.io"], timeout.Token);
        Assert.Equal(101, result.StatusCode);
        Assert.Equal(expectedProtocol, result.Protocol);
        Assert.Equal("SPDY/3.1", result.Header("Upgrade"));
        await using var session = result.Session!;
        // The order client-go opens them in: error first, then stdin and stdout.
        var error = await session.OpenAsync("error", timeout.Token);
        var stdin = await session.OpenAsync("stdin", timeout.Token);
        var stdout = await session.OpenAsync("stdout", timeout.Token);
        var payload = new byte[200_000];
        Random.Shared.NextBytes(payload);
        await stdin.WriteAsync(payload, timeout.Token);
        await stdin.CloseWriteAsync(timeout.Token);
        Assert.Equal(payload, await stdout.ReadToEndAsync(timeout.Token));
        Assert.Equal($"{expectedProtocol} {container}", Encoding.UTF8.GetString(await error.ReadToEndAsync(timeout.Token)));
    }

    [Fact]
    public async Task A_token_upgrades_once_to_spdy_with_the_clients_first_common_protocol()
    {
        var (server, cache, _) = await StartAsync();
        await using var _server = server;
        Assert.Equal("http", server.BaseUrl.Scheme);
        Assert.Equal("127.0.0.1", server.BaseUrl.Host);
        Assert.NotEqual(0, server.BaseUrl.Port);
        var url = server.UrlFor(StreamingKind.Exec, ExecToken(cache, "abc"));
        Assert.StartsWith($"http://127.0.0.1:{server.BaseUrl.Port}/exec/", url);
        await RunEchoAsync(server, url, "v4.channel.k8s.io", "abc");

        // Used: the same URL again is 404.
        var again = await SpdyStreamingClient.ConnectAsync(url, ["v4.channel.k8s.io"], CancellationToken.None);
        Assert.Equal(404, again.StatusCode);
        Assert.Contains("already used", again.Body);
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public async Task Unknown_expired_and_wrong_kind_tokens_are_404()
    {
        var (server, cache, time) = await StartAsync();
        await using var _server = server;
        var unknown = await SpdyStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.Exec, "nosuchtoken"), ["v4.channel.k8s.io"], CancellationToken.None);
        Assert.Equal(404, unknown.StatusCode);

        var token = ExecToken(cache);
        time.Now += TimeSpan.FromSeconds(61);
        var expired = await SpdyStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.Exec, token), ["v4.channel.k8s.io"], CancellationToken.None);
        Assert.Equal(404, expired.StatusCode);

        var execToken = ExecToken(cache);
        var wrongKind = await SpdyStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.Attach, execToken), ["v4.channel.k8s.io"], CancellationToken.None);
        Assert.Equal(404, wrongKind.StatusCode);

        var notAKind = await SpdyStreamingClient.ConnectAsync(new Uri(server.BaseUrl, "shell/x").ToString(), ["v4.channel.k8s.io"], CancellationToken.None);
        Assert.Equal(404, notAKind.StatusCode);

        // Within the minute a token still works.
        var fresh = ExecToken(cache);
        time.Now += TimeSpan.FromSeconds(59);
        await RunEchoAsync(server, server.UrlFor(StreamingKind.Exec, fresh), "v3.channel.k8s.io", "c1");
    }

    [Fact]
    public async Task Bad_upgrades_get_400_or_403_with_the_accepted_protocols()
    {
        var (server, cache, _) = await StartAsync();
        await using var _server = server;

        var noUpgrade = await SpdyStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.Exec, ExecToken(cache)), ["v4.channel.k8s.io"], CancellationToken.None, upgradeHeaders: false);
        Assert.Equal(400, noUpgrade.StatusCode);
        Assert.Contains("Upgrade: SPDY/3.1", noUpgrade.Body);

        var noProtocol = await SpdyStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.Exec, ExecToken(cache)), [], CancellationToken.None);
        Assert.Equal(400, noProtocol.StatusCode);
        Assert.Contains("X-Stream-Protocol-Version", noProtocol.Body);

        var unknownProtocol = await SpdyStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.Exec, ExecToken(cache)), ["v9.channel.k8s.io, portforward.k8s.io"], CancellationToken.None);
        Assert.Equal(403, unknownProtocol.StatusCode);
        var accepted = string.Join(",", unknownProtocol.Headers["X-Accepted-Stream-Protocol-Versions"]);
        foreach (var p in StreamingServer.RemoteCommandProtocols) Assert.Contains(p, accepted);
        Assert.Contains("v9.channel.k8s.io", unknownProtocol.Body);

        // Port forward speaks only portforward.k8s.io; its handler is not there yet.
        var pf = cache.Insert(new StreamingRequest(StreamingKind.PortForward, new PortForwardRequest { PodSandboxId = "p", Port = { 80 } }));
        var pfWrong = await SpdyStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.PortForward, pf), ["v4.channel.k8s.io"], CancellationToken.None);
        Assert.Equal(403, pfWrong.StatusCode);
        var pf2 = cache.Insert(new StreamingRequest(StreamingKind.PortForward, new PortForwardRequest { PodSandboxId = "p", Port = { 80 } }));
        var pfNotServed = await SpdyStreamingClient.ConnectAsync(server.UrlFor(StreamingKind.PortForward, pf2), ["portforward.k8s.io"], CancellationToken.None);
        Assert.Equal(501, pfNotServed.StatusCode);
    }

    [Theory]
    [InlineData(new[] { "v4.channel.k8s.io" }, "v4.channel.k8s.io")]
    [InlineData(new[] { "channel.k8s.io", "v4.channel.k8s.io" }, "channel.k8s.io")]
    [InlineData(new[] { " v2.channel.k8s.io , v3.channel.k8s.io" }, "v2.channel.k8s.io")]
    [InlineData(new[] { "v5.channel.k8s.io" }, null)]
    public void Negotiation_takes_the_clients_first_protocol_the_server_speaks(string[] header, string? expected)
    {
        var (protocol, problem) = StreamingServer.Negotiate(header, StreamingServer.RemoteCommandProtocols);
        Assert.Equal(expected, protocol);
        Assert.Null(problem);
    }

    [Fact]
    public async Task Tls_serves_https_when_both_files_are_set_and_one_alone_stops_startup()
    {
        var dir = Directory.CreateTempSubdirectory("criruntime-tls-");
        try
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
            using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
            var certFile = Path.Combine(dir.FullName, "tls.crt");
            var keyFile = Path.Combine(dir.FullName, "tls.key");
            await File.WriteAllTextAsync(certFile, cert.ExportCertificatePem());
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());

            var (server, cache, _) = await StartAsync(new StreamingSection { TlsCertFile = certFile, TlsKeyFile = keyFile });
            await using (server)
            {
                Assert.Equal("https", server.BaseUrl.Scheme);
                await RunEchoAsync(server, server.UrlFor(StreamingKind.Exec, ExecToken(cache, "tls")), "v4.channel.k8s.io", "tls");
            }

            var e = await Assert.ThrowsAsync<StartupException>(() => StartAsync(new StreamingSection { TlsCertFile = certFile }));
            Assert.Contains("tls_key_file", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Tokens_are_random_url_safe_and_bounded_in_number()
    {
        var cache = new StreamingRequestCache(maxInFlight: 3);
        var request = new StreamingRequest(StreamingKind.Exec, new ExecRequest());
        var tokens = Enumerable.Range(0, 3).Select(_ => cache.Insert(request)).ToList();
        Assert.Equal(3, tokens.Distinct().Count());
        Assert.All(tokens, t => Assert.Matches("^[A-Za-z0-9_-]{22}$", t));
        var e = Assert.Throws<CriException>(() => cache.Insert(request));
        Assert.Equal(CriErrorKind.ResourceExhausted, e.ErrorKind);
        Assert.NotNull(cache.Consume(tokens[0], StreamingKind.Exec));
        Assert.Null(cache.Consume(tokens[0], StreamingKind.Exec));
        cache.Insert(request);
    }
}
