namespace CriRuntime.Streaming;

/// <summary>The running streaming server and its tokens, for the RPCs that hand out URLs (set once it has started).</summary>
internal sealed class StreamingEndpoint(StreamingRequestCache cache)
{
    public StreamingRequestCache Cache { get; } = cache;

    public StreamingServer? Server { get; set; }

    /// <summary>Stores <paramref name="request"/> under a new token and returns the URL its client must connect to.</summary>
    public string UrlFor(StreamingRequest request)
    {
        var server = Server ?? throw new CriException(CriErrorKind.Unavailable, "the streaming server is not started yet; retry in a moment");
        return server.UrlFor(request.Kind, Cache.Insert(request));
    }
}
