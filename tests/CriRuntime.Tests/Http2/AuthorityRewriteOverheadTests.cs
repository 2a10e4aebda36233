using System.Buffers;
using System.Diagnostics;
using CriRuntime.Hosting.Http2;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.Tests.Http2;

/// <summary>
/// What the rewrite costs (figures for BENCHMARKS.md, written to the test output): per grpc-go
/// header block, per pass-through frame (which must not allocate), and sequential requests per
/// second through Kestrel with and without the middleware. Bounds are loose so a 2-core CI machine
/// under load passes, but a regression by an order of magnitude (or any allocation per DATA frame) fails.
/// </summary>
public sealed class AuthorityRewriteOverheadTests(ITestOutputHelper output)
{
    [Fact]
    public void HeaderBlocksAndPassThroughFrames_AreCheap()
    {
        var limits = new Http2RewriterLimits(4096, 16384, 32 * 1024);
        using var rewriter = new Http2AuthorityRewriter(limits);
        var encoder = new TestHpackEncoder();
        const int Blocks = 100_000;
        // grpc-go's steady state: the fixed fields indexed, grpc-timeout a new literal each call.
        var frames = new List<byte[]>();
        for (int i = 0; i < 64; i++)
        {
            byte[] block = encoder.EncodeGrpcGoStyle(
            [
                (":method", "POST"), (":scheme", "http"), (":path", "/runtime.v1.RuntimeService/Version"),
                (":authority", "run/criruntime/criruntime.sock"), ("content-type", "application/grpc"),
                ("user-agent", "grpc-go/1.51.0"), ("te", "trailers"), ("grpc-timeout", $"{1_000_000 + i}u"),
            ]);
            frames.Add(RawHttp2Connection.Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 2 * i + 1, block));
        }
        var output1 = new ArrayBufferWriter<byte>(1 << 20);
        rewriter.Process(new ReadOnlySequence<byte>(RawHttp2Connection.Preface), output1);
        foreach (var f in frames) rewriter.Process(new ReadOnlySequence<byte>(f), output1); // warm up; grows the table to steady state

        // Keep replaying the last frame: all its fields are indexed by now except nothing new is added.
        var steady = RawHttp2Connection.Frame(Http2Frame.Headers, Http2Frame.EndHeaders, 1,
            encoder.EncodeGrpcGoStyle([(":method", "POST"), (":scheme", "http"), (":path", "/runtime.v1.RuntimeService/Version"),
                (":authority", "run/criruntime/criruntime.sock"), ("content-type", "application/grpc"), ("user-agent", "grpc-go/1.51.0"),
                ("te", "trailers"), ("grpc-timeout", "1000063u")]));
        var steadyInput = new ReadOnlySequence<byte>(steady);
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < Blocks; i++)
        {
            output1.ResetWrittenCount();
            // Not Assert.Equal inside the measured loop: xunit's comparer allocates on every call.
            if (rewriter.Process(steadyInput, output1) != RewriteStatus.NeedMoreInput) Assert.Fail(rewriter.Error);
        }
        sw.Stop();
        long headerAllocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        double nsPerBlock = sw.Elapsed.TotalNanoseconds / Blocks;

        var data = new ReadOnlySequence<byte>(RawHttp2Connection.Frame(Http2Frame.Data, 0, 1, new byte[1024]));
        const int DataFrames = 1_000_000;
        allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        sw.Restart();
        for (int i = 0; i < DataFrames; i++)
        {
            output1.ResetWrittenCount();
            rewriter.Process(data, output1);
        }
        sw.Stop();
        long dataAllocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        double nsPerData = sw.Elapsed.TotalNanoseconds / DataFrames;

        output.WriteLine($"grpc-go header block ({steady.Length} octets in, {HeaderOut(rewriter, steadyInput)} out): decode+rewrite+encode {nsPerBlock:F0} ns/block, {headerAllocated / (double)Blocks:F1} B allocated/block");
        output.WriteLine($"1 KiB DATA frame pass-through: {nsPerData:F0} ns/frame, {dataAllocated} B allocated over {DataFrames} frames");
        Assert.Equal(0, dataAllocated);
        Assert.True(nsPerBlock < 50_000, $"{nsPerBlock:F0} ns per header block");
        Assert.True(headerAllocated / Blocks < 256, $"{headerAllocated / Blocks} B allocated per steady-state header block");
    }

    private static int HeaderOut(Http2AuthorityRewriter rewriter, ReadOnlySequence<byte> input)
    {
        var o = new ArrayBufferWriter<byte>();
        rewriter.Process(input, o);
        return o.WrittenCount;
    }

    [Fact]
    public async Task SequentialRequests_WithAndWithoutTheMiddleware()
    {
        string dir = Directory.CreateTempSubdirectory("criruntime-h2bench-").FullName;
        try
        {
            double without = await RequestsPerSecondAsync(Path.Combine(dir, "plain.sock"), rewrite: false);
            double with = await RequestsPerSecondAsync(Path.Combine(dir, "rewrite.sock"), rewrite: true);
            double withoutAgain = await RequestsPerSecondAsync(Path.Combine(dir, "plain2.sock"), rewrite: false);
            output.WriteLine($"sequential GET requests on one connection: without {without:F0}/s, with {with:F0}/s, without again {withoutAgain:F0}/s");
            Assert.True(with > 0.5 * Math.Max(without, withoutAgain), "the middleware halves request throughput");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<double> RequestsPerSecondAsync(string socketPath, bool rewrite)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socketPath, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            if (rewrite) listen.UseAuthorityRewrite();
        }));
        await using var app = builder.Build();
        app.MapGet("/v", () => "ok");
        await app.StartAsync();
        await using var c = await RawHttp2Connection.ConnectAsync(socketPath);
        var encoder = new TestHpackEncoder();
        const int Warmup = 500, Requests = 5000;
        var sw = new Stopwatch();
        for (int i = 0; i < Warmup + Requests; i++)
        {
            if (i == Warmup) sw.Start();
            int stream = 2 * i + 1;
            // A valid authority, so that Kestrel without the middleware serves it too.
            await c.WriteFrameAsync(Http2Frame.Headers, Http2Frame.EndHeaders | Http2Frame.EndStream, stream,
                encoder.EncodeGrpcGoStyle([(":method", "GET"), (":scheme", "http"), (":path", "/v"), (":authority", "localhost"), ("user-agent", "grpc-go/1.51.0")]));
            var response = await c.ReadResponseAsync(stream, TimeSpan.FromSeconds(30));
            Assert.Null(response.Reset);
        }
        return Requests / sw.Elapsed.TotalSeconds;
    }
}
