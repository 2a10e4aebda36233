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
/// second through Kestrel with and without the middleware. Only what is deterministic is asserted
/// (no allocation per DATA frame, a bounded allocation per header block, every request served): speed
/// is judged from the printed figures and hack/bench.sh, never by a timed assertion.
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
        // CPU time as well as wall time: on a shared, loaded machine the wall clock also counts waiting for a core.
        var cpuBefore = ThreadCpuTime();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < Blocks; i++)
        {
            output1.ResetWrittenCount();
            // Not Assert.Equal inside the measured loop: xunit's comparer allocates on every call.
            if (rewriter.Process(steadyInput, output1) != RewriteStatus.NeedMoreInput) Assert.Fail(rewriter.Error);
        }
        sw.Stop();
        long headerAllocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        double cpuNsPerBlock = (ThreadCpuTime() - cpuBefore).TotalNanoseconds / Blocks;
        double nsPerBlock = sw.Elapsed.TotalNanoseconds / Blocks;

        var data = new ReadOnlySequence<byte>(RawHttp2Connection.Frame(Http2Frame.Data, 0, 1, new byte[1024]));
        const int DataFrames = 1_000_000;
        allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        cpuBefore = ThreadCpuTime();
        sw.Restart();
        for (int i = 0; i < DataFrames; i++)
        {
            output1.ResetWrittenCount();
            rewriter.Process(data, output1);
        }
        sw.Stop();
        long dataAllocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        double cpuNsPerData = (ThreadCpuTime() - cpuBefore).TotalNanoseconds / DataFrames;
        double nsPerData = sw.Elapsed.TotalNanoseconds / DataFrames;

        output.WriteLine($"grpc-go header block ({steady.Length} octets in, {HeaderOut(rewriter, steadyInput)} out): decode+rewrite+encode {nsPerBlock:F0} ns/block wall, {cpuNsPerBlock:F0} ns CPU, {headerAllocated / (double)Blocks:F1} B allocated/block");
        output.WriteLine($"1 KiB DATA frame pass-through: {nsPerData:F0} ns/frame wall, {cpuNsPerData:F0} ns CPU, {dataAllocated} B allocated over {DataFrames} frames");
        Assert.Equal(0, dataAllocated);
        Assert.True(headerAllocated / Blocks < 256, $"{headerAllocated / Blocks} B allocated per steady-state header block");
    }

    // This thread's CPU time: xunit runs other test classes in parallel in this process.
    private static unsafe TimeSpan ThreadCpuTime()
    {
        Timespec t;
        if (clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, &t) != 0) throw new InvalidOperationException("clock_gettime failed");
        return TimeSpan.FromTicks(t.Seconds * TimeSpan.TicksPerSecond + t.Nanoseconds / 100);
    }

    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern unsafe int clock_gettime(int clock, Timespec* time);

    private static int HeaderOut(Http2AuthorityRewriter rewriter, ReadOnlySequence<byte> input)
    {
        var o = new ArrayBufferWriter<byte>();
        rewriter.Process(input, o);
        return o.WrittenCount;
    }

    [Fact]
    public async Task SequentialRequests_AreAllServed_WithAndWithoutTheMiddleware()
    {
        string dir = Directory.CreateTempSubdirectory("criruntime-h2bench-").FullName;
        try
        {
            await using var plain = await StartAsync(Path.Combine(dir, "plain.sock"), rewrite: false);
            await using var rewritten = await StartAsync(Path.Combine(dir, "rewrite.sock"), rewrite: true);
            await using var plainClient = await RawHttp2Connection.ConnectAsync(Path.Combine(dir, "plain.sock"));
            await using var rewrittenClient = await RawHttp2Connection.ConnectAsync(Path.Combine(dir, "rewrite.sock"));
            var plainEncoder = new TestHpackEncoder();
            var rewrittenEncoder = new TestHpackEncoder();
            int plainStream = 1, rewrittenStream = 1;
            await RoundAsync(plainClient, plainEncoder, () => (plainStream += 2) - 2, 300);
            await RoundAsync(rewrittenClient, rewrittenEncoder, () => (rewrittenStream += 2) - 2, 300);
            // Rounds alternate so that the load other processes put on the machine hits both alike.
            var without = new List<double>();
            var with = new List<double>();
            for (int round = 0; round < 8; round++)
            {
                without.Add(await RoundAsync(plainClient, plainEncoder, () => (plainStream += 2) - 2, 1000));
                with.Add(await RoundAsync(rewrittenClient, rewrittenEncoder, () => (rewrittenStream += 2) - 2, 1000));
            }
            without.Sort();
            with.Sort();
            double withoutMedian = without[without.Count / 2], withMedian = with[with.Count / 2];
            output.WriteLine($"load average at the end: {File.ReadAllText("/proc/loadavg").Trim()}");
            output.WriteLine($"sequential GET requests on one connection, median of 8 alternating rounds of 1000: without {withoutMedian:F0}/s, with {withMedian:F0}/s");
            output.WriteLine($"  rounds without: {string.Join(", ", without.Select(x => x.ToString("F0")))}; with: {string.Join(", ", with.Select(x => x.ToString("F0")))}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<WebApplication> StartAsync(string socketPath, bool rewrite)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(socketPath, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            if (rewrite) listen.UseAuthorityRewrite();
        }));
        var app = builder.Build();
        app.MapGet("/v", () => "ok");
        await app.StartAsync();
        return app;
    }

    private static async Task<double> RoundAsync(RawHttp2Connection c, TestHpackEncoder encoder, Func<int> nextStream, int requests)
    {
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < requests; i++)
        {
            int stream = nextStream();
            // A valid authority, so that Kestrel without the middleware serves it too.
            await c.WriteFrameAsync(Http2Frame.Headers, Http2Frame.EndHeaders | Http2Frame.EndStream, stream,
                encoder.EncodeGrpcGoStyle([(":method", "GET"), (":scheme", "http"), (":path", "/v"), (":authority", "localhost"), ("user-agent", "grpc-go/1.51.0")]));
            var response = await c.ReadResponseAsync(stream, TimeSpan.FromSeconds(30));
            Assert.Null(response.Reset);
        }
        return requests / sw.Elapsed.TotalSeconds;
    }
}
