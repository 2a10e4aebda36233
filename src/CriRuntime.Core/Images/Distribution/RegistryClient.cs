using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using CriRuntime.Content;

namespace CriRuntime.Images.Distribution;

/// <summary>
/// Credentials for one pull, as CRI's AuthConfig carries them. <see cref="Auth"/> is base64
/// "user:password"; <see cref="IdentityToken"/> is an OAuth refresh token; <see cref="RegistryToken"/>
/// is a bearer token sent as is.
/// </summary>
public sealed record RegistryCredentials(string? Username, string? Password, string? IdentityToken, string? RegistryToken, string? Auth)
{
    /// <summary>The registry the credentials are for (AuthConfig.server_address); empty means the image's own registry.
    /// See <see cref="CredentialScope"/>.</summary>
    public string? ServerAddress { get; init; }

    /// <summary>Username and password, from the fields or else decoded from <see cref="Auth"/>.</summary>
    public (string User, string Password)? Basic
    {
        get
        {
            if (!string.IsNullOrEmpty(Username) && !string.IsNullOrEmpty(Password)) return (Username, Password);
            if (string.IsNullOrEmpty(Auth)) return null;
            string decoded;
            try
            {
                decoded = Encoding.UTF8.GetString(Convert.FromBase64String(Auth.Trim()));
            }
            catch (FormatException)
            {
                return null;
            }
            int colon = decoded.IndexOf(':');
            return colon > 0 ? (decoded[..colon], decoded[(colon + 1)..]) : null;
        }
    }

    /// <summary>Distinguishes tokens fetched with different credentials, without keeping the secrets in keys.</summary>
    internal string Fingerprint => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
        $"{Basic?.User}\0{Basic?.Password}\0{IdentityToken}\0{RegistryToken}")))[..16];

    // Keep secrets out of logs and exception messages.
    public override string ToString() => $"RegistryCredentials {{ Username = {Username ?? Basic?.User} }}";
}

/// <summary>What a reference resolved to on a registry, for one platform.</summary>
/// <param name="TopDigest">Digest of what the tag or digest points to (index or manifest): the RepoDigest.</param>
/// <param name="ManifestDigest">Digest of the platform's image manifest (equals TopDigest when there is no index).</param>
/// <param name="Endpoint">The endpoint that resolved it; blobs are fetched from it first.</param>
public sealed record ResolvedImage(
    ImageReference Reference,
    Digest TopDigest,
    string TopMediaType,
    byte[] TopBytes,
    Digest ManifestDigest,
    ImageManifest Manifest,
    byte[] ManifestBytes,
    RegistryEndpoint Endpoint);

/// <summary>
/// Pulls manifests and blobs from registries over the distribution API, as containerd's
/// remotes/docker does: mirrors first, token auth, verified content.
/// </summary>
public sealed class RegistryClient : IDisposable
{
    // A config or other blob read whole into memory; layers go through OpenBlobAsync instead.
    public const long MaxInMemoryBlobBytes = 32 * 1024 * 1024;
    private const int MaxRedirects = 10;
    private static readonly string UserAgent = $"criruntime/{typeof(RegistryClient).Assembly.GetName().Version?.ToString(3) ?? "0"}";

    private readonly RegistryHosts hosts;
    private readonly ILogger<RegistryClient> logger;
    private readonly TimeSpan requestTimeout;
    private readonly Func<RegistryEndpoint, HttpMessageHandler>? handlerFactory;
    private readonly TimeProvider time;

    // One client per TLS configuration: endpoints that share one share its connection pool.
    private readonly ConcurrentDictionary<string, HttpClient> clients = new();
    // The last challenge each endpoint (scheme://host:port) sent, so later requests authorize up front.
    private readonly ConcurrentDictionary<string, AuthChallenge> challenges = new();
    private readonly ConcurrentDictionary<string, Lazy<Task<CachedToken>>> tokens = new();
    private bool disposed;

    public RegistryClient(RegistryHosts hosts, ILogger<RegistryClient> logger, TimeSpan requestTimeout)
        : this(hosts, logger, requestTimeout, null, null)
    {
    }

    /// <summary>For tests: <paramref name="handlerFactory"/> replaces the network.</summary>
    internal RegistryClient(RegistryHosts hosts, ILogger<RegistryClient> logger, TimeSpan requestTimeout,
        Func<RegistryEndpoint, HttpMessageHandler>? handlerFactory, TimeProvider? time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(requestTimeout, TimeSpan.Zero);
        this.hosts = hosts;
        this.logger = logger;
        this.requestTimeout = requestTimeout;
        this.handlerFactory = handlerFactory;
        this.time = time ?? TimeProvider.System;
    }

    /// <summary>
    /// Resolves a tag or digest to the image manifest for <paramref name="platform"/>, verifying every
    /// manifest fetched: against the reference's digest, or for a tag against the registry's
    /// Docker-Content-Digest header when it sends one.
    /// </summary>
    public async Task<ResolvedImage> ResolveAsync(ImageReference reference, Platform platform, RegistryCredentials? credentials, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        string what = $"image {Format(reference)}";
        bool byDigest = reference.Digest is not null;
        string objectName = reference.Digest?.ToString() ?? reference.Tag ?? "latest";

        // Only endpoints trusted to resolve may say what a tag means; any pull endpoint can serve a digest.
        var endpoints = hosts.Resolve(reference.Registry).Where(e => e.CanPull && (byDigest || e.CanResolve)).ToList();
        if (endpoints.Count == 0)
            throw new RegistryException(RegistryErrorKind.Other,
                $"{what}: no endpoint configured for registry {reference.Registry} may {(byDigest ? "pull" : "resolve tags")} (see the capabilities in its hosts.toml)");

        var failures = new List<RegistryException>();
        foreach (var endpoint in endpoints)
        {
            try
            {
                var top = await FetchManifestAsync(endpoint, reference, objectName, reference.Digest, null, what, credentials, ct).ConfigureAwait(false);
                if (top.Document is ImageManifest single)
                {
                    CheckLayers(single, what, endpoint);
                    return new ResolvedImage(reference, top.Digest, top.MediaType, top.Bytes, top.Digest, single, top.Bytes, endpoint);
                }

                var index = (ImageIndex)top.Document;
                var chosen = PlatformMatcher.Choose(index, platform, Format(reference));
                if (!MediaTypes.IsManifest(chosen.MediaType))
                    throw new RegistryException(RegistryErrorKind.Invalid,
                        $"{what}: the index entry for {chosen.Platform} has media type {chosen.MediaType}, not an image manifest (nested indexes are not supported)")
                    { Endpoint = endpoint.BaseUri };
                var child = await FetchManifestAsync(endpoint, reference, chosen.Digest.ToString(), chosen.Digest, chosen.Size,
                    $"manifest {chosen.Digest} ({chosen.Platform}) of {what}", credentials, ct).ConfigureAwait(false);
                if (child.Document is not ImageManifest manifest)
                    throw new RegistryException(RegistryErrorKind.Invalid,
                        $"{what}: {chosen.Digest} is an index, but its parent index says it is an image manifest") { Endpoint = endpoint.BaseUri };
                CheckLayers(manifest, what, endpoint);
                logger.LogDebug("Resolved {Reference} to {Top} ({Platform} manifest {Manifest}) on {Endpoint}",
                    Format(reference), top.Digest, chosen.Platform, child.Digest, endpoint.BaseUri);
                return new ResolvedImage(reference, top.Digest, top.MediaType, top.Bytes, child.Digest, manifest, child.Bytes, endpoint);
            }
            catch (RegistryException e) when (!ct.IsCancellationRequested)
            {
                failures.Add(e);
                if (!ShouldTryNext(endpoint, e) || ReferenceEquals(endpoint, endpoints[^1])) break;
                logger.LogInformation("Resolving {Reference} on {Endpoint} failed, trying the next endpoint: {Error}",
                    Format(reference), endpoint.BaseUri, e.Message);
            }
        }
        throw Summarize(what, failures);
    }

    /// <summary>Reads a small blob (a config) whole; its size and digest are verified.</summary>
    public async Task<byte[]> FetchBlobAsync(ResolvedImage image, Descriptor blob, RegistryCredentials? credentials, CancellationToken ct)
    {
        if (blob.Size > MaxInMemoryBlobBytes)
            throw new RegistryException(RegistryErrorKind.Invalid,
                $"blob {blob.Digest} of image {Format(image.Reference)} is {blob.Size} bytes, more than the {MaxInMemoryBlobBytes} read into memory");
        await using var stream = await OpenBlobAsync(image, blob, credentials, null, ct).ConfigureAwait(false);
        var buffer = new MemoryStream((int)blob.Size);
        await stream.CopyToAsync(buffer, ct).ConfigureAwait(false);
        return buffer.ToArray();
    }

    /// <summary>
    /// Opens a blob as a stream that verifies its size and digest as it is read (a
    /// <see cref="VerifyingStream"/>; <see cref="BlobVerificationException"/> at EOF or past the size).
    /// <paramref name="progress"/> is called with the number of bytes of each read.
    /// </summary>
    public async Task<Stream> OpenBlobAsync(ResolvedImage image, Descriptor blob, RegistryCredentials? credentials, Action<long>? progress, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        string what = $"blob {blob.Digest} of image {Format(image.Reference)}";
        if (blob.Urls is { Count: > 0 } || blob.MediaType == MediaTypes.DockerForeignLayerGzip
            || blob.MediaType.StartsWith(MediaTypes.OciNonDistributablePrefix, StringComparison.Ordinal))
            throw new RegistryException(RegistryErrorKind.Invalid,
                $"{what} is a foreign (non-distributable) layer that lives outside the registry; such layers are not supported");

        // The endpoint that resolved the image first: a mirror that failed then would fail every blob too.
        var endpoints = new List<RegistryEndpoint> { image.Endpoint };
        endpoints.AddRange(hosts.Resolve(image.Reference.Registry).Where(e => e.CanPull && e.BaseUri != image.Endpoint.BaseUri));

        var failures = new List<RegistryException>();
        foreach (var endpoint in endpoints)
        {
            HttpResponseMessage? response = null;
            try
            {
                var uri = ObjectUri(endpoint, image.Reference, "blobs", blob.Digest.ToString());
                response = await SendAsync(endpoint, image.Reference.Repository, uri, "*/*",
                    CredentialScope.For(credentials, image.Reference.Registry, endpoint), what, ct).ConfigureAwait(false);
                if (response.Content.Headers.ContentLength is { } length && length != blob.Size)
                    throw new RegistryException(RegistryErrorKind.Invalid,
                        $"{what}: {endpoint.BaseUri} sends {length} bytes, but the manifest says {blob.Size}") { Endpoint = endpoint.BaseUri };
                var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                return new VerifyingStream(body, blob.Digest, blob.Size, progress, what, response);
            }
            catch (RegistryException e) when (!ct.IsCancellationRequested)
            {
                response?.Dispose();
                failures.Add(e);
                if (!ShouldTryNext(endpoint, e) || ReferenceEquals(endpoint, endpoints[^1])) break;
                logger.LogInformation("Fetching {What} from {Endpoint} failed, trying the next endpoint: {Error}", what, endpoint.BaseUri, e.Message);
            }
            catch
            {
                response?.Dispose();
                throw;
            }
        }
        throw Summarize(what, failures);
    }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var client in clients.Values) client.Dispose();
        clients.Clear();
    }

    // ---- manifests ----

    private sealed record FetchedManifest(byte[] Bytes, string MediaType, Digest Digest, ManifestDocument Document);

    private async Task<FetchedManifest> FetchManifestAsync(RegistryEndpoint endpoint, ImageReference reference, string objectName,
        Digest? expected, long? expectedSize, string what, RegistryCredentials? credentials, CancellationToken ct)
    {
        var uri = ObjectUri(endpoint, reference, "manifests", objectName);
        using var response = await SendAsync(endpoint, reference.Repository, uri, string.Join(", ", MediaTypes.ManifestAccept),
                CredentialScope.For(credentials, reference.Registry, endpoint), what, ct)
            .ConfigureAwait(false);
        byte[] bytes = await ReadLimitedAsync(response, ManifestParser.MaxManifestBytes, what, endpoint, ct).ConfigureAwait(false);

        Digest digest;
        if (expected is { } wanted)
        {
            digest = ComputeDigest(wanted.Algorithm, bytes);
            if (digest != wanted)
                throw Invalid(endpoint, $"{what}: {endpoint.BaseUri} sent content with digest {digest}, not the {wanted} asked for");
            if (expectedSize is { } size && size != bytes.Length)
                throw Invalid(endpoint, $"{what}: {endpoint.BaseUri} sent {bytes.Length} bytes, but the index says {size}");
        }
        else
        {
            digest = Digest.Sha256(bytes);
            // A tag is only as good as what the registry says it means; if it also names a digest, they must agree.
            if (response.Headers.TryGetValues("Docker-Content-Digest", out var values) && values.FirstOrDefault() is { } header)
            {
                if (!Digest.TryParse(header.Trim(), out var claimed))
                    logger.LogDebug("{Endpoint} sent an unusable Docker-Content-Digest '{Header}' for {What}; ignoring it", endpoint.BaseUri, header, what);
                else if ((digest = ComputeDigest(claimed.Algorithm, bytes)) != claimed)
                    throw Invalid(endpoint, $"{what}: {endpoint.BaseUri} says the manifest's digest is {claimed}, but its content has digest {digest}");
            }
        }

        string? contentType = response.Content.Headers.ContentType?.MediaType;
        ManifestDocument document;
        try
        {
            document = ManifestParser.Parse(bytes, contentType);
        }
        catch (ManifestException e)
        {
            throw new RegistryException(RegistryErrorKind.Invalid, $"{what}: {e.Message}", e) { Endpoint = endpoint.BaseUri };
        }
        return new FetchedManifest(bytes, document.MediaType, digest, document);
    }

    private static void CheckLayers(ImageManifest manifest, string what, RegistryEndpoint endpoint)
    {
        try
        {
            ManifestParser.ValidateLayers(manifest);
        }
        catch (ManifestException e)
        {
            throw new RegistryException(RegistryErrorKind.Invalid, $"{what}: {e.Message}", e) { Endpoint = endpoint.BaseUri };
        }
    }

    private static async Task<byte[]> ReadLimitedAsync(HttpResponseMessage response, int limit, string what, RegistryEndpoint endpoint, CancellationToken ct)
    {
        if (response.Content.Headers.ContentLength > limit)
            throw Invalid(endpoint, $"{what}: {endpoint.BaseUri} sends {response.Content.Headers.ContentLength} bytes, more than the {limit} accepted for a manifest");
        await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int n;
        try
        {
            while ((n = await stream.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + n > limit)
                    throw Invalid(endpoint, $"{what}: {endpoint.BaseUri} sends more than the {limit} bytes accepted for a manifest");
                buffer.Write(chunk, 0, n);
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException && !ct.IsCancellationRequested)
        {
            throw new RegistryException(RegistryErrorKind.Unavailable, $"{what}: reading the response of {endpoint.BaseUri} failed: {Flatten(e)}", e)
            { Endpoint = endpoint.BaseUri };
        }
        return buffer.ToArray();
    }

    private static Digest ComputeDigest(string algorithm, byte[] bytes)
    {
        var template = new Digest(algorithm, "");
        using var hasher = template.CreateHasher();
        hasher.AppendData(bytes);
        return template.WithHash(hasher.GetHashAndReset());
    }

    private static RegistryException Invalid(RegistryEndpoint endpoint, string message) =>
        new(RegistryErrorKind.Invalid, message) { Endpoint = endpoint.BaseUri };

    // ---- endpoint choice and errors ----

    /// <summary>
    /// Mirrors are a convenience: any failure there falls through to the next endpoint. The
    /// upstream itself is only skipped for failures another endpoint could do better on.
    /// </summary>
    private static bool ShouldTryNext(RegistryEndpoint endpoint, RegistryException e) =>
        endpoint.IsMirror || e.Kind is RegistryErrorKind.Unavailable or RegistryErrorKind.Unauthorized or RegistryErrorKind.TooManyRequests;

    private static RegistryException Summarize(string what, List<RegistryException> failures)
    {
        if (failures.Count == 1) return failures[0];
        var last = failures[^1];
        var message = new StringBuilder($"{what}: all {failures.Count} registry endpoints failed");
        for (int i = 0; i < failures.Count; i++) message.Append($"; [{i + 1}] {failures[i].Message}");
        return new RegistryException(last.Kind, message.ToString(), last)
        {
            Endpoint = last.Endpoint,
            StatusCode = last.StatusCode,
            ErrorCode = last.ErrorCode,
            Attempts = failures.ToList(),
        };
    }

    private static Uri ObjectUri(RegistryEndpoint endpoint, ImageReference reference, string kind, string name)
    {
        string baseUri = endpoint.BaseUri.GetLeftPart(UriPartial.Path).TrimEnd('/');
        string uri = $"{baseUri}/{reference.Repository}/{kind}/{name}";
        // Like containerd, tell a mirror which registry the request is for (lets one mirror proxy several).
        if (endpoint.IsMirror) uri += "?ns=" + Uri.EscapeDataString(reference.Registry);
        return new Uri(uri);
    }

    private static string Format(ImageReference r) =>
        r.Name + (r.Tag is null ? "" : ":" + r.Tag) + (r.Digest is { } d ? "@" + d : "");

    internal static string Flatten(Exception e)
    {
        var parts = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            string message = x.Message.TrimEnd('.');
            if (message.Contains("see inner exception", StringComparison.OrdinalIgnoreCase))
                message = message.Replace(", see inner exception", "", StringComparison.OrdinalIgnoreCase).TrimEnd('.');
            if (parts.Count == 0 || !parts[^1].Contains(message, StringComparison.Ordinal)) parts.Add(message);
        }
        return string.Join(": ", parts);
    }

    // ---- HTTP with auth, redirects, timeouts and one retry ----

    /// <summary>
    /// GETs <paramref name="uri"/> on <paramref name="endpoint"/>, answering auth challenges and
    /// following redirects. Returns a successful response; anything else becomes a RegistryException.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(RegistryEndpoint endpoint, string repository, Uri uri, string accept,
        RegistryCredentials? credentials, string what, CancellationToken ct)
    {
        var client = ClientFor(endpoint);
        string authority = Authority(uri);
        string? rejected = null;
        string? challengeScope = null;
        for (int round = 0; ; round++)
        {
            string? authorization = await AuthorizationAsync(client, endpoint, authority, repository, challengeScope, credentials, rejected, what, ct).ConfigureAwait(false);
            var response = await SendFollowingRedirectsAsync(client, endpoint, uri, accept, authorization, what, ct).ConfigureAwait(false);
            if (response.IsSuccessStatusCode) return response;

            if (response.StatusCode == HttpStatusCode.Unauthorized && round == 0
                && Authority(response.RequestMessage?.RequestUri ?? uri) == authority)
            {
                var offered = AuthChallenge.Parse(response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var raw) ? raw : []);
                var usable = offered.FirstOrDefault(c => c.Scheme is "bearer" or "basic");
                if (usable is not null)
                {
                    // Sent no auth (first contact) or a token that is now refused: learn the challenge, try once more.
                    // The scope a challenge names is for the request that drew it; later requests ask for their own.
                    challenges[authority] = usable with
                    {
                        Parameters = usable.Parameters.Where(p => p.Key != "scope").ToDictionary(p => p.Key, p => p.Value),
                    };
                    challengeScope = usable["scope"];
                    rejected = authorization;
                    logger.LogDebug("{Endpoint} asks for {Scheme} auth for {What}", endpoint.BaseUri, usable.Scheme, what);
                    response.Dispose();
                    continue;
                }
            }

            using (response)
            {
                var error = await RegistryException.FromResponseAsync(response, what, endpoint.BaseUri, ct).ConfigureAwait(false);
                if (error.Kind == RegistryErrorKind.Unauthorized && credentials is null)
                    throw new RegistryException(RegistryErrorKind.Unauthorized,
                        $"unauthorized: registry {endpoint.BaseUri.Authority} requires credentials to pull {what} (or the repository does not exist): " +
                        $"{error.Detail}; give the pod an imagePullSecret for it", error)
                    { Endpoint = endpoint.BaseUri, StatusCode = error.StatusCode, ErrorCode = error.ErrorCode };
                throw error;
            }
        }
    }

    private async Task<HttpResponseMessage> SendFollowingRedirectsAsync(HttpClient client, RegistryEndpoint endpoint, Uri uri, string accept,
        string? authorization, string what, CancellationToken ct)
    {
        var current = uri;
        for (int hops = 0; ; hops++)
        {
            // Credentials and configured headers are for the registry only, never for the storage it redirects to.
            bool sameOrigin = Authority(current) == Authority(uri);
            var target = current;
            var response = await SendWithRetryAsync(ClientForOtherOrigin(client, uri, target), () =>
            {
                var request = new HttpRequestMessage(HttpMethod.Get, target);
                request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
                request.Headers.TryAddWithoutValidation("Accept", accept);
                if (sameOrigin)
                {
                    foreach (var (name, values) in endpoint.Headers) request.Headers.TryAddWithoutValidation(name, values);
                    if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
                }
                return request;
            }, endpoint, what, ct).ConfigureAwait(false);

            if (!IsRedirect(response.StatusCode)) return response;
            var location = response.Headers.Location;
            response.Dispose();
            if (location is null)
                throw new RegistryException(RegistryErrorKind.Invalid, $"{what}: {endpoint.BaseUri} redirected without a Location") { Endpoint = endpoint.BaseUri };
            if (hops >= MaxRedirects)
                throw new RegistryException(RegistryErrorKind.Invalid, $"{what}: {endpoint.BaseUri} redirected more than {MaxRedirects} times") { Endpoint = endpoint.BaseUri };
            current = location.IsAbsoluteUri ? location : new Uri(current, location);
            logger.LogDebug("{What}: redirected to {Host}", what, current.Authority);
        }
    }

    private static bool IsRedirect(HttpStatusCode status) =>
        status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found or HttpStatusCode.SeeOther
            or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    /// <summary>Sends with the request timeout applying up to the response headers; retries once on a network failure.</summary>
    private async Task<HttpResponseMessage> SendWithRetryAsync(HttpClient client, Func<HttpRequestMessage> makeRequest, RegistryEndpoint endpoint,
        string what, CancellationToken ct)
    {
        for (int attempt = 0; ; attempt++)
        {
            using var request = makeRequest();
            try
            {
                return await SendWithTimeoutAsync(client, request, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (IsTransient(e) && !ct.IsCancellationRequested)
            {
                // A certificate that does not verify will not verify a second later either.
                bool tls = FindInner<System.Security.Authentication.AuthenticationException>(e) is not null;
                if (attempt == 0 && !tls)
                {
                    logger.LogDebug("{Uri}: {Error}; retrying once", request.RequestUri?.GetLeftPart(UriPartial.Path), Flatten(e)); // no query: it may be a signed URL
                    continue;
                }
                string advice = tls
                    ? $"if {request.RequestUri!.Authority} uses a private CA, name it with 'ca' in its hosts.toml (or, for a test registry only, set skip_verify)"
                    : "check the network, DNS and proxy settings for this registry";
                throw new RegistryException(RegistryErrorKind.Unavailable,
                    $"{what}: cannot reach {endpoint.BaseUri}: {Flatten(e)}; {advice}", e)
                { Endpoint = endpoint.BaseUri };
            }
        }
    }

    private async Task<HttpResponseMessage> SendWithTimeoutAsync(HttpClient client, HttpRequestMessage request, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(requestTimeout);
        try
        {
            // Headers only: the body is read later, bounded by the caller's token alone.
            return await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"no response within {requestTimeout.TotalSeconds:0.#}s", e);
        }
    }

    private static T? FindInner<T>(Exception? e) where T : Exception
    {
        for (; e is not null; e = e.InnerException)
            if (e is T found) return found;
        return null;
    }

    private static bool IsTransient(Exception e) => e is HttpRequestException or IOException or TimeoutException;

    // ---- auth ----

    private sealed record CachedToken(string Token, DateTimeOffset Expires);

    /// <summary>The Authorization header for a request to <paramref name="authority"/>, or null while it has not asked for any.</summary>
    private async Task<string?> AuthorizationAsync(HttpClient client, RegistryEndpoint endpoint, string authority, string repository, string? challengeScope,
        RegistryCredentials? credentials, string? rejected, string what, CancellationToken ct)
    {
        if (!challenges.TryGetValue(authority, out var challenge)) return null;
        if (!string.IsNullOrEmpty(credentials?.RegistryToken)) return "Bearer " + credentials.RegistryToken;
        if (challenge.Scheme == "basic")
        {
            if (credentials?.Basic is not { } basic)
                throw new RegistryException(RegistryErrorKind.Unauthorized,
                    $"unauthorized: registry {endpoint.BaseUri.Authority} requires credentials (basic auth) to pull {what}; " +
                    "give the pod an imagePullSecret with a username and password for it")
                { Endpoint = endpoint.BaseUri, StatusCode = HttpStatusCode.Unauthorized };
            string value = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{basic.User}:{basic.Password}"));
            if (value == rejected)
                throw new RegistryException(RegistryErrorKind.Unauthorized,
                    $"unauthorized: registry {endpoint.BaseUri.Authority} rejected the username and password for {what}; check the imagePullSecret")
                { Endpoint = endpoint.BaseUri, StatusCode = HttpStatusCode.Unauthorized };
            return value;
        }
        string token = await BearerTokenAsync(client, endpoint, challenge, repository, challengeScope, credentials, rejected is not null && rejected.StartsWith("Bearer ", StringComparison.Ordinal) ? rejected["Bearer ".Length..] : null, what, ct).ConfigureAwait(false);
        return "Bearer " + token;
    }

    private async Task<string> BearerTokenAsync(HttpClient client, RegistryEndpoint endpoint, AuthChallenge challenge, string repository, string? challengeScope,
        RegistryCredentials? credentials, string? rejected, string what, CancellationToken ct)
    {
        string realm = challenge["realm"] ?? throw new RegistryException(RegistryErrorKind.Invalid,
            $"{what}: {endpoint.BaseUri} asks for a bearer token but names no realm to get it from") { Endpoint = endpoint.BaseUri };
        if (!Uri.TryCreate(realm, UriKind.Absolute, out var realmUri) || realmUri.Scheme is not ("https" or "http"))
            throw new RegistryException(RegistryErrorKind.Invalid, $"{what}: {endpoint.BaseUri} names an invalid token realm '{realm}'") { Endpoint = endpoint.BaseUri };
        // Credentials and tokens must not travel in clear from a registry spoken to over TLS; a registry that is
        // plain HTTP (by hosts.toml, or on loopback) already sends them in clear, so its realm may be HTTP too.
        if (realmUri.Scheme == "http" && endpoint.BaseUri.Scheme == "https")
            throw new RegistryException(RegistryErrorKind.Invalid,
                $"{what}: {endpoint.BaseUri} names a plain HTTP token realm {realmUri.GetLeftPart(UriPartial.Path)}; a registry served over HTTPS must name an HTTPS realm (refused so that credentials and tokens are not sent in clear)")
            { Endpoint = endpoint.BaseUri };
        string? service = challenge["service"];
        var scopes = new List<string> { $"repository:{repository}:pull" };
        foreach (var extra in (challengeScope ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
            if (!scopes.Contains(extra)) scopes.Add(extra);

        string key = $"{Authority(endpoint.BaseUri)}|{realm}|{service}|{string.Join(' ', scopes)}|{credentials?.Fingerprint}";
        if (tokens.Count > 256 && !tokens.ContainsKey(key)) PruneTokens();
        while (true)
        {
            var entry = tokens.GetOrAdd(key, _ => new Lazy<Task<CachedToken>>(() =>
                FetchTokenAsync(ClientForOtherOrigin(client, endpoint.BaseUri, realmUri), endpoint, realmUri, service, scopes, credentials, what)));
            var task = entry.Value;
            if (task.IsCompletedSuccessfully && (task.Result.Expires <= time.GetUtcNow() || task.Result.Token == rejected))
            {
                // Expired, or just refused by the registry: fetch a new one (unless someone already did).
                tokens.TryRemove(new KeyValuePair<string, Lazy<Task<CachedToken>>>(key, entry));
                rejected = null;
                continue;
            }
            try
            {
                return (await task.WaitAsync(ct).ConfigureAwait(false)).Token;
            }
            catch when (task.IsFaulted || task.IsCanceled)
            {
                tokens.TryRemove(new KeyValuePair<string, Lazy<Task<CachedToken>>>(key, entry));
                throw;
            }
        }
    }

    /// <summary>Drops expired tokens, so that many repositories and credentials over months do not pile up.</summary>
    private void PruneTokens()
    {
        var now = time.GetUtcNow();
        foreach (var (key, entry) in tokens)
        {
            if (entry.IsValueCreated && entry.Value.IsCompleted && (!entry.Value.IsCompletedSuccessfully || entry.Value.Result.Expires <= now))
                tokens.TryRemove(new KeyValuePair<string, Lazy<Task<CachedToken>>>(key, entry));
        }
    }

    /// <summary>
    /// Gets a token from the realm, shared by every request waiting for it, so it runs on its own
    /// timeout rather than on one caller's token. Identity tokens go by OAuth2 POST as distribution's
    /// spec says; registries without it (404/405/400/401) get the plain GET.
    /// </summary>
    private async Task<CachedToken> FetchTokenAsync(HttpClient client, RegistryEndpoint endpoint, Uri realm, string? service,
        IReadOnlyList<string> scopes, RegistryCredentials? credentials, string what)
    {
        using var cts = new CancellationTokenSource(requestTimeout * 2);
        try
        {
            return await FetchTokenCoreAsync(client, endpoint, realm, service, scopes, credentials, what, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (cts.IsCancellationRequested)
        {
            throw new RegistryException(RegistryErrorKind.Unavailable,
                $"{what}: the token server {realm.GetLeftPart(UriPartial.Path)} of {endpoint.BaseUri} did not answer within {(requestTimeout * 2).TotalSeconds:0.#}s", e)
            { Endpoint = endpoint.BaseUri };
        }
    }

    private async Task<CachedToken> FetchTokenCoreAsync(HttpClient client, RegistryEndpoint endpoint, Uri realm, string? service,
        IReadOnlyList<string> scopes, RegistryCredentials? credentials, string what, CancellationToken ct)
    {
        string? basicHeader = credentials?.Basic is { } b
            ? "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{b.User}:{b.Password}"))
            : null;

        if (!string.IsNullOrEmpty(credentials?.IdentityToken))
        {
            var form = new List<KeyValuePair<string, string>>
            {
                new("grant_type", "refresh_token"),
                new("refresh_token", credentials.IdentityToken),
                new("client_id", "criruntime"),
                new("scope", string.Join(' ', scopes)),
            };
            if (service is not null) form.Add(new("service", service));
            using var response = await SendWithRetryAsync(client, () =>
            {
                var request = new HttpRequestMessage(HttpMethod.Post, realm) { Content = new FormUrlEncodedContent(form) };
                request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
                return request;
            }, endpoint, $"token for {what}", ct).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
                return await ReadTokenAsync(response, endpoint, realm, what, ct).ConfigureAwait(false);
            if (response.StatusCode is not (HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed or HttpStatusCode.BadRequest or HttpStatusCode.Unauthorized))
                throw await TokenErrorAsync(response, endpoint, realm, credentials, what, ct).ConfigureAwait(false);
            logger.LogDebug("Token server {Realm} answered {Status} to the OAuth2 POST; using GET", realm, (int)response.StatusCode);
            basicHeader ??= "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{credentials.Username}:{credentials.IdentityToken}"));
        }

        var query = new StringBuilder(realm.Query.TrimStart('?'));
        if (service is not null) Append(query, "service", service);
        foreach (var scope in scopes) Append(query, "scope", scope);
        var uri = new UriBuilder(realm) { Query = query.ToString() }.Uri;
        using (var response = await SendWithRetryAsync(client, () =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, uri);
            request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
            if (basicHeader is not null) request.Headers.TryAddWithoutValidation("Authorization", basicHeader);
            return request;
        }, endpoint, $"token for {what}", ct).ConfigureAwait(false))
        {
            if (response.IsSuccessStatusCode)
                return await ReadTokenAsync(response, endpoint, realm, what, ct).ConfigureAwait(false);
            throw await TokenErrorAsync(response, endpoint, realm, credentials, what, ct).ConfigureAwait(false);
        }

        static void Append(StringBuilder query, string name, string value)
        {
            if (query.Length > 0) query.Append('&');
            query.Append(name).Append('=').Append(Uri.EscapeDataString(value));
        }
    }

    private async Task<CachedToken> ReadTokenAsync(HttpResponseMessage response, RegistryEndpoint endpoint, Uri realm, string what, CancellationToken ct)
    {
        TokenResponseDto? dto;
        try
        {
            var bytes = await ReadLimitedAsync(response, 1024 * 1024, $"token for {what}", endpoint, ct).ConfigureAwait(false);
            dto = JsonSerializer.Deserialize(bytes, ManifestJsonContext.Default.TokenResponseDto);
        }
        catch (JsonException e)
        {
            throw new RegistryException(RegistryErrorKind.Invalid, $"{what}: the token server {realm.GetLeftPart(UriPartial.Path)} sent invalid JSON: {e.Message}", e)
            { Endpoint = endpoint.BaseUri };
        }
        string? token = !string.IsNullOrEmpty(dto?.Token) ? dto.Token : dto?.AccessToken;
        if (string.IsNullOrEmpty(token))
            throw new RegistryException(RegistryErrorKind.Invalid, $"{what}: the token server {realm.GetLeftPart(UriPartial.Path)} sent no token")
            { Endpoint = endpoint.BaseUri };
        // The spec's default lifetime is 60s; renew a little early so a token does not expire in flight.
        int seconds = dto!.ExpiresIn is int s && s > 0 ? s : 60;
        var lifetime = TimeSpan.FromSeconds(seconds) - TimeSpan.FromSeconds(Math.Min(10, seconds / 10.0));
        return new CachedToken(token, time.GetUtcNow() + lifetime);
    }

    private static async Task<RegistryException> TokenErrorAsync(HttpResponseMessage response, RegistryEndpoint endpoint, Uri realm,
        RegistryCredentials? credentials, string what, CancellationToken ct)
    {
        string server = realm.GetLeftPart(UriPartial.Path);
        var error = await RegistryException.FromResponseAsync(response, $"token for {what}", endpoint.BaseUri, ct).ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            string message = credentials is null
                ? $"unauthorized: registry {endpoint.BaseUri.Authority} requires credentials to pull {what}: its token server {server} refused an anonymous token; give the pod an imagePullSecret for it"
                : $"unauthorized: the token server {server} of registry {endpoint.BaseUri.Authority} rejected the credentials for {what}; check the imagePullSecret";
            return new RegistryException(RegistryErrorKind.Unauthorized, message, error)
            { Endpoint = endpoint.BaseUri, StatusCode = response.StatusCode, ErrorCode = error.ErrorCode };
        }
        return error;
    }

    private static string Authority(Uri uri) => $"{uri.Scheme}://{uri.Host}:{uri.Port}";

    // ---- TLS ----

    /// <summary>
    /// The endpoint's client for its own host:port, a default one (system trust, no client certificate, no
    /// skip_verify) for any other: hosts.toml's TLS settings are for the host they are written for, not for the
    /// token server or blob storage it sends us to.
    /// </summary>
    private HttpClient ClientForOtherOrigin(HttpClient endpointClient, Uri endpointUri, Uri target)
    {
        if (string.Equals(HostPort(endpointUri), HostPort(target), StringComparison.OrdinalIgnoreCase)) return endpointClient;
        var origin = new Uri(target.GetLeftPart(UriPartial.Authority));
        return ClientFor(new RegistryEndpoint(origin, CanPull: true, CanResolve: true, SkipVerify: false, CaFiles: [], ClientCerts: [],
            Headers: new Dictionary<string, IReadOnlyList<string>>(), IsMirror: false));
    }

    private static string HostPort(Uri uri) => $"{uri.Host}:{uri.Port}";

    private HttpClient ClientFor(RegistryEndpoint endpoint)
    {
        string key = handlerFactory is not null
            ? endpoint.BaseUri.ToString()
            : $"{endpoint.SkipVerify}|{string.Join(",", endpoint.CaFiles)}|{string.Join(",", endpoint.ClientCerts.Select(c => c.Cert + ":" + c.Key))}";
        if (clients.TryGetValue(key, out var existing)) return existing;
        var handler = handlerFactory?.Invoke(endpoint) ?? CreateHandler(endpoint);
        var client = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        if (clients.TryAdd(key, client)) return client;
        client.Dispose();
        return clients[key];
    }

    private SocketsHttpHandler CreateHandler(RegistryEndpoint endpoint)
    {
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false, // followed by hand, to keep credentials off other hosts
            AutomaticDecompression = DecompressionMethods.None, // digests are over the bytes as stored
            UseCookies = false,
            ConnectTimeout = requestTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5), // notice DNS changes of registry front ends
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(90),
        };
        if (endpoint.SkipVerify)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        }
        else if (endpoint.CaFiles.Count > 0)
        {
            var roots = new X509Certificate2Collection();
            foreach (var file in endpoint.CaFiles)
            {
                try
                {
                    roots.ImportFromPemFile(file);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
                {
                    throw new RegistryException(RegistryErrorKind.Invalid, $"cannot load CA file {file} for {endpoint.BaseUri}: {e.Message}", e)
                    { Endpoint = endpoint.BaseUri };
                }
            }
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                ValidateWithRoots(certificate, chain, errors, roots);
        }
        if (endpoint.ClientCerts.Count > 0)
        {
            var certificates = new X509CertificateCollection();
            foreach (var (cert, key) in endpoint.ClientCerts)
            {
                try
                {
                    certificates.Add(X509Certificate2.CreateFromPemFile(cert, key));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
                {
                    throw new RegistryException(RegistryErrorKind.Invalid, $"cannot load client certificate {cert} (key {key ?? cert}) for {endpoint.BaseUri}: {e.Message}", e)
                    { Endpoint = endpoint.BaseUri };
                }
            }
            handler.SslOptions.ClientCertificates = certificates;
        }
        return handler;
    }

    /// <summary>The system's trust plus the endpoint's CA files, as containerd appends them to the system pool.</summary>
    internal static bool ValidateWithRoots(X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors, X509Certificate2Collection roots)
    {
        if (errors == SslPolicyErrors.None) return true;
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0) return false; // wrong name or no certificate
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
            foreach (var element in presented.ChainElements) chain.ChainPolicy.ExtraStore.Add(element.Certificate);
        return chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
    }
}
