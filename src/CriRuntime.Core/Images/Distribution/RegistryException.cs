using System.Net;
using System.Text.Json;

namespace CriRuntime.Images.Distribution;

public enum RegistryErrorKind
{
    NotFound,
    Unauthorized,
    Denied,
    TooManyRequests,
    Unavailable,
    Invalid,
    Other,
}

/// <summary>A registry said no (or could not be reached). The message says what was asked, where, the answer, and what to do.</summary>
public sealed class RegistryException(RegistryErrorKind kind, string message, Exception? inner = null)
    : CriException(ToErrorKind(kind), message, inner)
{
    private static CriErrorKind ToErrorKind(RegistryErrorKind kind) => kind switch
    {
        RegistryErrorKind.NotFound => CriErrorKind.NotFound,
        RegistryErrorKind.Unauthorized => CriErrorKind.Unauthenticated,
        RegistryErrorKind.Denied => CriErrorKind.PermissionDenied,
        RegistryErrorKind.TooManyRequests => CriErrorKind.ResourceExhausted,
        RegistryErrorKind.Unavailable => CriErrorKind.Unavailable,
        RegistryErrorKind.Invalid => CriErrorKind.FailedPrecondition,
        _ => CriErrorKind.Unknown,
    };

    public RegistryErrorKind Kind { get; } = kind;

    /// <summary>The endpoint that answered (null for a summary of several endpoints).</summary>
    public Uri? Endpoint { get; init; }

    public HttpStatusCode? StatusCode { get; init; }

    /// <summary>The first distribution error code the registry sent, such as MANIFEST_UNKNOWN.</summary>
    public string? ErrorCode { get; init; }

    /// <summary>One failure per endpoint tried, when every endpoint failed.</summary>
    public IReadOnlyList<RegistryException> Attempts { get; init; } = [];

    /// <summary>What the registry said, without the advice around it.</summary>
    public string? Detail { get; init; }

    /// <summary>Turns a non-success response into an exception; reads at most 64 KiB of its body.</summary>
    internal static async Task<RegistryException> FromResponseAsync(HttpResponseMessage response, string what, Uri endpoint, CancellationToken ct)
    {
        string body = "";
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            var buffer = new byte[64 * 1024];
            int total = 0, n;
            while (total < buffer.Length && (n = await stream.ReadAsync(buffer.AsMemory(total), ct).ConfigureAwait(false)) > 0) total += n;
            body = System.Text.Encoding.UTF8.GetString(buffer, 0, total);
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            // The status alone still says enough.
        }
        return FromStatus(response.StatusCode, body, what, endpoint);
    }

    /// <summary>Classifies a status and a distribution error body (<c>{"errors":[{"code":…,"message":…}]}</c>).</summary>
    public static RegistryException FromStatus(HttpStatusCode status, string body, string what, Uri endpoint)
    {
        var (code, said) = ParseErrors(body);
        var kind = code switch
        {
            "MANIFEST_UNKNOWN" or "BLOB_UNKNOWN" or "NAME_UNKNOWN" => RegistryErrorKind.NotFound,
            "UNAUTHORIZED" => RegistryErrorKind.Unauthorized,
            "DENIED" => RegistryErrorKind.Denied,
            "TOOMANYREQUESTS" => RegistryErrorKind.TooManyRequests,
            "UNSUPPORTED" or "MANIFEST_INVALID" or "MANIFEST_UNVERIFIED" or "DIGEST_INVALID" or "NAME_INVALID"
                or "TAG_INVALID" or "SIZE_INVALID" or "BLOB_UPLOAD_INVALID" or "PAGINATION_NUMBER_INVALID" => RegistryErrorKind.Invalid,
            _ => status switch
            {
                HttpStatusCode.NotFound => RegistryErrorKind.NotFound,
                HttpStatusCode.Unauthorized => RegistryErrorKind.Unauthorized,
                HttpStatusCode.Forbidden => RegistryErrorKind.Denied,
                HttpStatusCode.TooManyRequests => RegistryErrorKind.TooManyRequests,
                HttpStatusCode.RequestTimeout => RegistryErrorKind.Unavailable,
                >= HttpStatusCode.InternalServerError => RegistryErrorKind.Unavailable,
                HttpStatusCode.BadRequest => RegistryErrorKind.Invalid,
                _ => RegistryErrorKind.Other,
            },
        };
        if (string.IsNullOrWhiteSpace(said))
            said = $"HTTP {(int)status} {status}";
        else
            said = $"{said} (HTTP {(int)status})";
        return new RegistryException(kind, Describe(kind, what, endpoint, said)) { Endpoint = endpoint, StatusCode = status, ErrorCode = code, Detail = said };
    }

    /// <summary>"&lt;what&gt; &lt;verb&gt; on &lt;endpoint&gt;: &lt;what it said&gt;; &lt;advice&gt;".</summary>
    internal static string Describe(RegistryErrorKind kind, string what, Uri endpoint, string said) => kind switch
    {
        RegistryErrorKind.NotFound => $"{what} not found on {endpoint}: {said}; check the name and the tag or digest",
        RegistryErrorKind.Unauthorized =>
            $"unauthorized: {what} on {endpoint}: {said}; pull access denied, the repository does not exist or requires credentials " +
            "(check the name, and that the pod's imagePullSecrets are right)",
        RegistryErrorKind.Denied => $"access denied to {what} on {endpoint}: {said}; the credentials given are not allowed to pull it",
        RegistryErrorKind.TooManyRequests =>
            $"too many requests for {what} on {endpoint}: {said}; the registry is rate limiting, pull with credentials, use a mirror, or try later",
        RegistryErrorKind.Unavailable => $"{what}: {endpoint} is unavailable: {said}; try again later",
        RegistryErrorKind.Invalid => $"{what}: {endpoint} rejected the request or sent invalid content: {said}",
        _ => $"{what}: {endpoint} answered {said}",
    };

    private static (string? Code, string? Message) ParseErrors(string body)
    {
        if (string.IsNullOrWhiteSpace(body) || body.TrimStart()[0] != '{') return (null, Shorten(body));
        try
        {
            var dto = JsonSerializer.Deserialize(body, ManifestJsonContext.Default.RegistryErrorsDto);
            var first = dto?.Errors?.FirstOrDefault();
            if (first is null) return (null, Shorten(body));
            string message = string.Join("; ", dto!.Errors!.Select(e =>
                string.IsNullOrEmpty(e.Message) ? (e.Code ?? "").ToLowerInvariant().Replace('_', ' ') : e.Message));
            return (first.Code?.ToUpperInvariant(), message);
        }
        catch (JsonException)
        {
            return (null, Shorten(body));
        }
    }

    // An HTML error page is noise in a kubelet event; keep a short prefix only.
    private static string? Shorten(string body)
    {
        body = body.Trim();
        if (body.Length == 0 || body.StartsWith('<')) return null;
        return body.Length > 200 ? body[..200] + "…" : body;
    }
}
