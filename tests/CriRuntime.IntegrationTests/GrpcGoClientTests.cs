using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using CriRuntime.TestSupport;
using CriRuntime.Tests.Http2;
using Google.Protobuf;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>
/// Clients built on grpc-go as the kubelet, crictl and critest were up to Kubernetes 1.30 send the
/// socket path as HTTP/2 :authority. The daemon must serve them: raw frames shaped as grpc-go sends
/// them, and the stock crictl v1.26.1.
/// </summary>
public sealed class GrpcGoClientTests(ITestOutputHelper output) : DaemonTest(output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task RawVersionRequests_WithTheSocketPathAsAuthority_AreAnswered()
    {
        var d = await StartDaemonAsync();
        await using var c = await RawHttp2Connection.ConnectAsync(d.Socket);
        // grpc-go: literal with incremental indexing, Huffman when shorter; the second request's
        // fields are all in the dynamic table already and go out as one-octet indexes.
        var encoder = new TestHpackEncoder();
        for (int stream = 1; stream <= 3; stream += 2)
        {
            byte[] block = encoder.EncodeGrpcGoStyle(
            [
                (":method", "POST"), (":scheme", "http"), (":path", "/runtime.v1.RuntimeService/Version"),
                (":authority", d.Socket.TrimStart('/')), ("content-type", "application/grpc"),
                ("user-agent", "grpc-go/1.51.0"), ("te", "trailers"),
            ]);
            if (stream == 3) Assert.True(block.All(b => b >= 0x80), "the second request is not all indexed fields");
            await c.WriteFrameAsync(Http2Frame.Headers, Http2Frame.EndHeaders, stream, block);
            await c.WriteFrameAsync(Http2Frame.Data, Http2Frame.EndStream, stream, GrpcMessage(new VersionRequest { Version = "0.1.0" }));

            var response = await c.ReadResponseAsync(stream, Bound);
            Assert.True(response.Reset is null, $"stream {stream} reset with error code {response.Reset?.RstStreamErrorCode}");
            Assert.Contains((":status", "200"), response.HeaderBlocks[0]);
            var trailers = response.HeaderBlocks[^1];
            Assert.True(trailers.Contains(("grpc-status", "0")), "trailers: " + string.Join(", ", trailers));
            var version = VersionResponse.Parser.ParseFrom(response.Data.AsSpan(5));
            Assert.Equal("criruntime", version.RuntimeName);
            Assert.Equal("v1", version.RuntimeApiVersion);
        }
    }

    [Fact]
    public async Task StockCrictl_VersionAndInfo_NameCriruntime()
    {
        var d = await StartDaemonAsync();
        string version = await CrictlAsync(d, "version");
        Assert.Contains("RuntimeName:  criruntime", version);
        string info = await CrictlAsync(d, "info");
        Assert.Contains("\"RuntimeReady\"", info);
    }

    private static byte[] GrpcMessage(IMessage message)
    {
        byte[] body = message.ToByteArray();
        var framed = new byte[5 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)body.Length);
        body.CopyTo(framed, 5);
        return framed;
    }

    private async Task<string> CrictlAsync(DaemonProcess d, string command)
    {
        string crictl = StockCriTools.Crictl;
        var psi = new ProcessStartInfo(crictl) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--runtime-endpoint", "unix://" + d.Socket, "--image-endpoint", "unix://" + d.Socket, "--timeout", "20s", command })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(Bound);
        await p.WaitForExitAsync(cts.Token);
        Output.WriteLine($"crictl {command}: exit {p.ExitCode}\n{await stdout}\n{await stderr}");
        Assert.True(p.ExitCode == 0, $"crictl {command} failed ({p.ExitCode}): {await stderr}");
        return await stdout;
    }
}
