using System.Security.Cryptography;
using Google.Protobuf;

namespace CriRuntime.Streaming;

/// <summary>What a streaming URL was issued for.</summary>
public enum StreamingKind
{
    Exec,
    Attach,
    PortForward,
}

/// <summary>A request the Exec, Attach or PortForward RPC accepted, waiting for its client to connect.</summary>
public sealed record StreamingRequest(StreamingKind Kind, IMessage Request);

/// <summary>
/// Single-use tokens for streaming URLs, as the kubelet's streaming request cache: each token is random, valid for
/// one minute and consumed by its first use; at most <c>maxInFlight</c> wait at once.
/// </summary>
public sealed class StreamingRequestCache(TimeProvider? time = null, int maxInFlight = 1000, TimeSpan? ttl = null)
{
    /// <summary>How long an unused token stays valid (the kubelet's CacheTTL).</summary>
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromMinutes(1);

    private readonly TimeProvider time = time ?? TimeProvider.System;
    private readonly TimeSpan ttl = ttl ?? DefaultTtl;
    private readonly object gate = new();
    private readonly Dictionary<string, (StreamingRequest Request, DateTimeOffset Expires)> tokens = new(StringComparer.Ordinal);

    /// <summary>Stores <paramref name="request"/> and returns its token (128 random bits, URL-safe).</summary>
    public string Insert(StreamingRequest request)
    {
        var token = Base64Url(RandomNumberGenerator.GetBytes(16));
        var now = time.GetUtcNow();
        lock (gate)
        {
            Purge(now);
            if (tokens.Count >= maxInFlight)
                throw new CriException(CriErrorKind.ResourceExhausted,
                    $"{tokens.Count} streaming requests are already waiting for their clients; retry once some are used or expire (after {ttl.TotalSeconds:0} s)");
            tokens[token] = (request, now + ttl);
        }
        return token;
    }

    /// <summary>The request of <paramref name="token"/> if it exists, is of <paramref name="kind"/> and has not expired; it is removed either way.</summary>
    public StreamingRequest? Consume(string token, StreamingKind kind)
    {
        lock (gate)
        {
            if (!tokens.Remove(token, out var entry)) return null;
            if (entry.Expires <= time.GetUtcNow() || entry.Request.Kind != kind) return null;
            return entry.Request;
        }
    }

    /// <summary>Tokens waiting now (expired ones not counted once purged).</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                Purge(time.GetUtcNow());
                return tokens.Count;
            }
        }
    }

    private void Purge(DateTimeOffset now)
    {
        List<string>? expired = null;
        foreach (var (token, entry) in tokens)
            if (entry.Expires <= now) (expired ??= []).Add(token);
        if (expired != null)
            foreach (var token in expired) tokens.Remove(token);
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
