using System.Text.Json;
using System.Threading.Channels;
using CriRuntime.Oci;
using CriRuntime.Streaming.Spdy;

namespace CriRuntime.Streaming;

/// <summary>
/// The resize stream of an exec or attach with a tty (v3 and v4 channel protocols over SPDY, channel 4 over
/// WebSocket): the client writes one JSON
/// object per window size, <c>{"Width":W,"Height":H}</c>, back to back (client-go's json.Encoder, so usually
/// newline-separated), and the kubelet reads them with a json.Decoder until it fails. The same here: each object
/// is bounded, names are matched without regard to case (as Go's decoder does), and anything that is not such an
/// object ends the stream's handling. Only the latest sizes matter, so a slow consumer loses the oldest.
/// </summary>
internal static class TerminalResize
{
    /// <summary>Sizes waiting for the terminal; older ones are dropped when it falls behind.</summary>
    private const int Pending = 8;

    /// <summary>Starts reading <paramref name="stream"/> (null: no resize stream) into a channel that completes when the stream ends.</summary>
    public static ChannelReader<TerminalSize>? Start(SpdyStream? stream, ILogger logger, CancellationToken cancellationToken) =>
        stream == null ? null : Start((buffer, ct) => stream.ReadAsync(buffer, ct), logger, cancellationToken);

    /// <summary>
    /// The same for any byte source (a WebSocket's resize channel): <paramref name="read"/> returns 0 when the
    /// client is done sending sizes.
    /// </summary>
    public static ChannelReader<TerminalSize> Start(Func<Memory<byte>, CancellationToken, ValueTask<int>> read, ILogger logger, CancellationToken cancellationToken)
    {
        var channel = Channel.CreateBounded<TerminalSize>(new BoundedChannelOptions(Pending) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true, SingleWriter = true });
        _ = PumpAsync(read, channel.Writer, logger, cancellationToken);
        return channel.Reader;
    }

    private static async Task PumpAsync(Func<Memory<byte>, CancellationToken, ValueTask<int>> read, ChannelWriter<TerminalSize> sizes, ILogger logger,
        CancellationToken cancellationToken)
    {
        var decoder = new TerminalSizeDecoder();
        var buffer = new byte[1024];
        try
        {
            int n;
            while ((n = await read(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                foreach (var size in decoder.Feed(buffer.AsSpan(0, n)))
                    sizes.TryWrite(size);
                if (decoder.Failure is { } failure)
                {
                    logger.LogDebug("Resize stream ignored from here on: {Failure}", failure);
                    return;
                }
            }
        }
        catch (Exception e)
        {
            // The connection ended (or its token went with it): no more sizes. Nothing waits on this task.
            logger.LogDebug("Resize stream ended: {Message}", e.Message);
        }
        finally
        {
            sizes.TryComplete();
        }
    }
}

/// <summary>Splits a byte stream into TerminalSize JSON objects; pure, so it is tested on its own.</summary>
internal sealed class TerminalSizeDecoder
{
    /// <summary>No window size object is anywhere near this long; a longer one is refused rather than buffered.</summary>
    public const int MaxObjectBytes = 4096;

    private readonly List<byte> pending = [];
    private int depth;
    private bool inString, escaped;

    /// <summary>Why decoding stopped, or null while it goes on. After a failure nothing more is decoded.</summary>
    public string? Failure { get; private set; }

    public List<TerminalSize> Feed(ReadOnlySpan<byte> data)
    {
        var sizes = new List<TerminalSize>();
        foreach (byte b in data)
        {
            if (Failure != null) break;
            if (depth == 0)
            {
                if (b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t') continue;
                if (b != (byte)'{')
                {
                    Failure = $"expected a JSON object, got byte 0x{b:x2}";
                    break;
                }
            }
            pending.Add(b);
            if (pending.Count > MaxObjectBytes)
            {
                Failure = $"a window size object is over {MaxObjectBytes} bytes";
                break;
            }
            if (inString)
            {
                if (escaped) escaped = false;
                else if (b == (byte)'\\') escaped = true;
                else if (b == (byte)'"') inString = false;
                continue;
            }
            if (b == (byte)'"') inString = true;
            else if (b == (byte)'{' || b == (byte)'[') depth++;
            else if (b == (byte)'}' || b == (byte)']')
            {
                depth--;
                if (depth == 0)
                {
                    if (Parse(pending.ToArray()) is { } size) sizes.Add(size);
                    pending.Clear();
                }
            }
        }
        return sizes;
    }

    private TerminalSize? Parse(byte[] json)
    {
        try
        {
            using var document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 4 });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                Failure = "a window size must be a JSON object";
                return null;
            }
            uint width = 0, height = 0;
            foreach (var property in document.RootElement.EnumerateObject())
            {
                bool isWidth = property.Name.Equals("width", StringComparison.OrdinalIgnoreCase);
                bool isHeight = property.Name.Equals("height", StringComparison.OrdinalIgnoreCase);
                if (!isWidth && !isHeight) continue;
                if (property.Value.ValueKind != JsonValueKind.Number || !property.Value.TryGetUInt16(out ushort value))
                {
                    Failure = $"{property.Name} must be a number from 0 to 65535";
                    return null;
                }
                if (isWidth) width = value;
                else height = value;
            }
            return new TerminalSize((ushort)width, (ushort)height);
        }
        catch (JsonException e)
        {
            Failure = $"invalid JSON: {e.Message}";
            return null;
        }
    }
}
