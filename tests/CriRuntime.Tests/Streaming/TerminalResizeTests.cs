using System.Text;
using CriRuntime.Oci;
using CriRuntime.Streaming;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace CriRuntime.Tests.Streaming;

/// <summary>Window sizes read from any byte source, as a WebSocket's resize channel (channel 4) is read.</summary>
public class TerminalResizeTests
{
    [Fact]
    public async Task ReadsSizesFromAReader_SplitAcrossReads_AndCompletesWhenTheReaderEnds()
    {
        var chunks = new Queue<byte[]>(new[] { "{\"Width\":100,", "\"Height\":40}\n{\"Wid", "th\":132,\"Height\":50}\n" }.Select(Encoding.ASCII.GetBytes));
        var sizes = TerminalResize.Start((buffer, _) =>
        {
            if (!chunks.TryDequeue(out var chunk)) return ValueTask.FromResult(0);
            chunk.CopyTo(buffer);
            return ValueTask.FromResult(chunk.Length);
        }, NullLogger.Instance, CancellationToken.None);

        var seen = new List<TerminalSize>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await foreach (var size in sizes.ReadAllAsync(timeout.Token)) seen.Add(size);
        Assert.Equal([new TerminalSize(100, 40), new TerminalSize(132, 50)], seen);
    }

    [Fact]
    public async Task StopsAtTheFirstObjectThatIsNotASize_KeepingTheOnesBefore()
    {
        var data = Encoding.ASCII.GetBytes("{\"Width\":80,\"Height\":24}\nnot json {\"Width\":1,\"Height\":1}");
        bool given = false;
        var sizes = TerminalResize.Start((buffer, _) =>
        {
            if (given) throw new InvalidOperationException("read again after the stream was found bad");
            given = true;
            data.CopyTo(buffer);
            return ValueTask.FromResult(data.Length);
        }, NullLogger.Instance, CancellationToken.None);

        var seen = new List<TerminalSize>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await foreach (var size in sizes.ReadAllAsync(timeout.Token)) seen.Add(size);
        Assert.Equal([new TerminalSize(80, 24)], seen);
    }
}
