using System.Text;
using CriRuntime.Hosting.Http2;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Xunit;

namespace CriRuntime.Tests.Http2;

/// <summary>
/// The rewrite inside a real Kestrel on a temp unix socket: requests with the socket path as
/// :authority are served, and malformed input of every kind ends in a connection error (GOAWAY
/// or close) within a bounded time, after which the server still serves a fresh connection.
/// </summary>
public sealed class AuthorityRewriteKestrelTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private readonly string dir = Directory.CreateTempSubdirectory("criruntime-h2-").FullName;
    private string socketPath = "";
    private WebApplication? app;

    public async Task InitializeAsync()
    {
        socketPath = Path.Combine(dir, "kestrel.sock");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socketPath, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            listen.UseAuthorityRewrite();
        }));
        app = builder.Build();
        app.MapGet("/hello", (HttpContext c) => $"hello {c.Request.Host}");
        await app.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (app is not null) await app.DisposeAsync();
        Directory.Delete(dir, recursive: true);
    }

    private byte[] RequestBlock(TestHpackEncoder encoder, string path = "/hello") => encoder.EncodeGrpcGoStyle(
        [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", socketPath.TrimStart('/')), ("user-agent", "grpc-go/1.58.3")]);

    /// <summary>Two requests on one connection, the second indexing the first's fields: both answered 200.</summary>
    private async Task AssertServesAsync()
    {
        await using var c = await RawHttp2Connection.ConnectAsync(socketPath);
        var encoder = new TestHpackEncoder();
        for (int stream = 1; stream <= 3; stream += 2)
        {
            await c.WriteFrameAsync(Http2Frame.Headers, Http2Frame.EndHeaders | Http2Frame.EndStream, stream, RequestBlock(encoder));
            var response = await c.ReadResponseAsync(stream, Bound);
            Assert.Null(response.Reset);
            Assert.Contains((":status", "200"), response.HeaderBlocks[0]);
            Assert.Equal("hello localhost", Encoding.UTF8.GetString(response.Data));
        }
    }

    [Fact]
    public Task SocketPathAuthority_IsServed() => AssertServesAsync();

    public static TheoryData<string, string> MalformedInputs() => new()
    {
        { "bad HPACK index", Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 1, "ff7f") },
        { "HPACK index 0", Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 1, "80") },
        { "integer overflow", Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 1, "ffffffffffff7f") },
        { "string longer than the block", Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 1, "00647878") },
        { "invalid Huffman padding", Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 1, "0081000100") },
        { "table size update above the limit", Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 1, "3fe17f") },
        { "table size update after a field", Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 1, "8220") },
        { "CONTINUATION without HEADERS", Frame(Http2Frame.Continuation, Http2Frame.EndHeaders, 1, "82") },
        { "DATA inside a header block", Frame(Http2Frame.Headers, 0, 1, "82") + Frame(Http2Frame.Data, 0, 1, "00") },
        { "CONTINUATION of another stream", Frame(Http2Frame.Headers, 0, 1, "82") + Frame(Http2Frame.Continuation, Http2Frame.EndHeaders, 3, "86") },
        { "HEADERS on stream 0", Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 0, "82") },
        { "pad length beyond the frame", Frame(Http2Frame.Headers, Http2Frame.EndHeaders | Http2Frame.Padded, 1, "0982") },
        { "PADDED without a pad length", Frame(Http2Frame.Headers, Http2Frame.EndHeaders | Http2Frame.Padded, 1, "") },
        { "PRIORITY too short", Frame(Http2Frame.Headers, Http2Frame.EndHeaders | Http2Frame.Priority, 1, "000000") },
        { "HEADERS longer than the max frame size", Convert.ToHexString(RawHttp2Connection.Frame(Http2Frame.Headers, 0, 1, [], declaredLength: 0xFFFFFF)) },
        { "DATA longer than the max frame size", Convert.ToHexString(RawHttp2Connection.Frame(Http2Frame.Data, 0, 1, [], declaredLength: 0xFFFFFF)) },
        { "compressed header block too large", Frame(Http2Frame.Headers, 0, 1, new string('0', 2 * 16384)) + Frame(Http2Frame.Continuation, 0, 1, new string('0', 2 * 16384)) + Frame(Http2Frame.Continuation, 0, 1, new string('0', 2 * 16384)) + Frame(Http2Frame.Continuation, 0, 1, new string('0', 2 * 16384)) },
        // One 4000-octet entry, referenced ten times: 40 kB decoded from a few octets.
        { "decoded header list too large", Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 1, "40" + "01" + "78" + "7fa11e" + new string('7', 2 * 4000) + string.Concat(Enumerable.Repeat("be", 10))) },
    };

    private static string Frame(byte type, byte flags, int stream, string payloadHex) =>
        Convert.ToHexString(RawHttp2Connection.Frame(type, flags, stream, Convert.FromHexString(payloadHex)));

    [Theory]
    [MemberData(nameof(MalformedInputs))]
    public async Task MalformedInput_EndsInAConnectionError_AndTheServerServesOn(string what, string hex)
    {
        await using (var c = await RawHttp2Connection.ConnectAsync(socketPath))
        {
            await c.WriteAsync(Convert.FromHexString(hex));
            var goAway = await c.ReadUntilConnectionEndsAsync(Bound);
            Assert.True(goAway is not null, $"{what}: the connection closed without GOAWAY");
            Assert.NotEqual(0u, goAway!.GoAwayErrorCode);
        }
        await AssertServesAsync();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task RandomAndTruncatedInput_EndsTheConnection_AndTheServerServesOn(int seed)
    {
        var random = new Random(seed);
        var encoder = new TestHpackEncoder();
        for (int i = 0; i < 40; i++)
        {
            await using var c = await RawHttp2Connection.ConnectAsync(socketPath);
            byte[] valid = RawHttp2Connection.Frame(Http2Frame.Headers, Http2Frame.EndHeaders | Http2Frame.EndStream, 1, RequestBlock(encoder));
            byte[] garbage = (i % 4) switch
            {
                0 => RandomBytes(random, random.Next(1, 3000)),                       // random frames
                1 => valid[..random.Next(1, valid.Length)],                           // truncated HEADERS
                2 => Mutate(valid, random),                                           // flipped bytes in a real request
                _ => [.. RandomHeaderFrameHeader(random), .. RandomBytes(random, random.Next(0, 64))], // header frames with random lengths/flags
            };
            await c.WriteAsync(garbage);
            // The client stops sending: whatever the server waited for will never come.
            c.ShutdownSend();
            await c.ReadUntilConnectionEndsAsync(Bound);
            encoder = new TestHpackEncoder();
        }
        await AssertServesAsync();
    }

    private static byte[] RandomBytes(Random random, int n)
    {
        var b = new byte[n];
        random.NextBytes(b);
        return b;
    }

    private static byte[] Mutate(byte[] frame, Random random)
    {
        var copy = (byte[])frame.Clone();
        for (int k = 0; k < 3; k++) copy[random.Next(copy.Length)] = (byte)random.Next(256);
        return copy;
    }

    private static byte[] RandomHeaderFrameHeader(Random random)
    {
        byte type = random.Next(2) == 0 ? Http2Frame.Headers : Http2Frame.Continuation;
        return RawHttp2Connection.Frame(type, (byte)random.Next(256), random.Next(0, 4), [], declaredLength: random.Next(0, 70000));
    }
}
