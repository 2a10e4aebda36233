using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using CriRuntime.Streaming.Spdy;

namespace CriRuntime.TestSupport;

/// <summary>What the streaming server answered to an upgrade request.</summary>
public sealed record SpdyUpgradeResult(int StatusCode, IReadOnlyDictionary<string, IReadOnlyList<string>> Headers, string Body, SpdySession? Session)
{
    /// <summary>The first value of response header <paramref name="name"/> (case-insensitive), or null.</summary>
    public string? Header(string name) => Headers.TryGetValue(name, out var values) ? values[0] : null;

    /// <summary>The subprotocol the server chose (X-Stream-Protocol-Version).</summary>
    public string? Protocol => Header("X-Stream-Protocol-Version");
}

/// <summary>
/// A client of the streaming server as the kubelet's clients are (client-go's SPDY round tripper over
/// moby/spdystream): an HTTP/1.1 POST with <c>Connection: Upgrade</c>, <c>Upgrade: SPDY/3.1</c> and one
/// <c>X-Stream-Protocol-Version</c> header per protocol, then a SPDY session in the client role on the same
/// connection. Like spdystream it does no flow control unless asked (<paramref name="announceFlowControl"/>).
/// </summary>
public static class SpdyStreamingClient
{
    private const int MaxResponseHead = 64 * 1024;

    public static async Task<SpdyUpgradeResult> ConnectAsync(string url, IReadOnlyList<string> protocols, CancellationToken cancellationToken,
        bool announceFlowControl = false, string method = "POST", bool upgradeHeaders = true)
    {
        var uri = new Uri(url);
        var client = new TcpClient();
        Stream stream;
        try
        {
            await client.ConnectAsync(uri.Host, uri.Port, cancellationToken);
            client.NoDelay = true;
            stream = client.GetStream();
            if (uri.Scheme == "https")
            {
                // Test servers use throwaway certificates.
                var tls = new SslStream(stream, leaveInnerStreamOpen: false, (_, _, _, _) => true);
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = uri.Host }, cancellationToken);
                stream = tls;
            }
        }
        catch
        {
            client.Dispose();
            throw;
        }

        var request = new StringBuilder();
        request.Append($"{method} {uri.PathAndQuery} HTTP/1.1\r\nHost: {uri.Authority}\r\nUser-Agent: criruntime-tests\r\nContent-Length: 0\r\n");
        if (upgradeHeaders) request.Append("Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n");
        foreach (var p in protocols) request.Append($"X-Stream-Protocol-Version: {p}\r\n");
        request.Append("\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request.ToString()), cancellationToken);
        await stream.FlushAsync(cancellationToken);

        // Byte by byte up to the blank line, so nothing of the SPDY stream after it is read here.
        var head = new List<byte>();
        var one = new byte[1];
        while (!EndsWithBlankLine(head))
        {
            if (head.Count > MaxResponseHead) throw new InvalidDataException("the response head is over 64 KiB");
            if (await stream.ReadAsync(one, cancellationToken) == 0) throw new EndOfStreamException("the server closed the connection before answering");
            head.Add(one[0]);
        }
        var lines = Encoding.ASCII.GetString(head.ToArray()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var status = int.Parse(lines[0].Split(' ')[1]);
        var headers = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            var name = line[..colon].Trim();
            if (!headers.TryGetValue(name, out var list)) headers[name] = list = [];
            list.Add(line[(colon + 1)..].Trim());
        }
        var readOnly = headers.ToDictionary(h => h.Key, h => (IReadOnlyList<string>)h.Value, StringComparer.OrdinalIgnoreCase);
        if (status == 101)
        {
            var session = new SpdySession(stream, SpdyRole.Client, new SpdySessionOptions { AnnounceFlowControl = announceFlowControl });
            session.Start();
            return new SpdyUpgradeResult(status, readOnly, "", session);
        }
        var body = "";
        if (headers.TryGetValue("Content-Length", out var lengths) && int.TryParse(lengths[0], out var length) && length > 0)
        {
            var bytes = new byte[Math.Min(length, 1 << 20)];
            await stream.ReadExactlyAsync(bytes, cancellationToken);
            body = Encoding.UTF8.GetString(bytes);
        }
        else if (headers.TryGetValue("Transfer-Encoding", out var te) && te[0].Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            body = await ReadChunkedAsync(stream, cancellationToken);
        }
        client.Dispose();
        return new SpdyUpgradeResult(status, readOnly, body, null);
    }

    private static bool EndsWithBlankLine(List<byte> b) =>
        b.Count >= 4 && b[^4] == '\r' && b[^3] == '\n' && b[^2] == '\r' && b[^1] == '\n';

    private static async Task<string> ReadChunkedAsync(Stream stream, CancellationToken cancellationToken)
    {
        var body = new MemoryStream();
        while (true)
        {
            var sizeLine = await ReadLineAsync(stream, cancellationToken);
            var size = Convert.ToInt32(sizeLine.Split(';')[0].Trim(), 16);
            if (size == 0) break;
            var chunk = new byte[size];
            await stream.ReadExactlyAsync(chunk, cancellationToken);
            body.Write(chunk);
            await ReadLineAsync(stream, cancellationToken);
            if (body.Length > 1 << 20) break;
        }
        return Encoding.UTF8.GetString(body.ToArray());
    }

    private static async Task<string> ReadLineAsync(Stream stream, CancellationToken cancellationToken)
    {
        var line = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            if (await stream.ReadAsync(one, cancellationToken) == 0) throw new EndOfStreamException();
            if (one[0] == '\n') break;
            if (one[0] != '\r') line.Add(one[0]);
            if (line.Count > 1024) throw new InvalidDataException("chunk size line too long");
        }
        return Encoding.ASCII.GetString(line.ToArray());
    }

    /// <summary>Opens a stream with <c>streamtype</c> (and any more headers) and waits for the server's reply.</summary>
    public static async Task<SpdyStream> OpenAsync(this SpdySession session, string streamType, CancellationToken cancellationToken, params SpdyHeader[] more)
    {
        var stream = await session.OpenStreamAsync([new("streamtype", streamType), .. more], cancellationToken: cancellationToken);
        await stream.Reply.WaitAsync(cancellationToken);
        return stream;
    }

    /// <summary>Everything the server sends on <paramref name="stream"/> until it finishes it.</summary>
    public static async Task<byte[]> ReadToEndAsync(this SpdyStream stream, CancellationToken cancellationToken)
    {
        var all = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0) all.Write(buffer, 0, n);
        return all.ToArray();
    }
}
