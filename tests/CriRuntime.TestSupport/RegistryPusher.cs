using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace CriRuntime.TestSupport;

/// <summary>What was pushed: "host/repo:tag" (or "host/repo@digest") and the manifest/index digest.</summary>
public sealed record PushResult(string Reference, string Digest, string MediaType);

public sealed class RegistryPushException(string message, HttpStatusCode? status = null) : Exception(message)
{
    public HttpStatusCode? StatusCode { get; } = status;
}

/// <summary>
/// Pushes built images to a registry with the distribution HTTP API: blobs by monolithic upload
/// (POST /v2/NAME/blobs/uploads/, then PUT &lt;Location&gt;?digest=...), skipping blobs HEAD finds;
/// manifests by PUT with their media type; an index only after its manifests (the registry checks
/// that referenced manifests exist).
/// </summary>
public static class RegistryPusher
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler
    {
        PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        AllowAutoRedirect = false,
    })
    {
        Timeout = TimeSpan.FromMinutes(10),
    };

    public static Task<PushResult> PushAsync(RegistryServer registry, string repository, string tag, BuiltImage image, CancellationToken ct = default)
        => PushAsync(registry.Host, repository, tag, image, registry.Credentials, ct);

    public static Task<PushResult> PushAsync(RegistryServer registry, string repository, string tag, BuiltIndex index, CancellationToken ct = default)
        => PushAsync(registry.Host, repository, tag, index, registry.Credentials, ct);

    /// <summary>Pushes the image's blobs and its manifest under <paramref name="tag"/>.</summary>
    public static async Task<PushResult> PushAsync(string registryHost, string repository, string tag, BuiltImage image,
        RegistryCredentials? credentials = null, CancellationToken ct = default)
    {
        await PushImageBlobsAsync(registryHost, repository, image, credentials, ct);
        await PushManifestAsync(registryHost, repository, tag, image.ManifestBytes, image.ManifestMediaType, credentials, ct,
            expectedDigest: image.ManifestDigest);
        return new PushResult($"{registryHost}/{repository}:{tag}", image.ManifestDigest, image.ManifestMediaType);
    }

    /// <summary>Pushes every image of the index by digest, then the index under <paramref name="tag"/>.</summary>
    public static async Task<PushResult> PushAsync(string registryHost, string repository, string tag, BuiltIndex index,
        RegistryCredentials? credentials = null, CancellationToken ct = default)
    {
        foreach (var image in index.Images)
            await PushByDigestOnlyAsync(registryHost, repository, image, credentials, ct);
        await PushManifestAsync(registryHost, repository, tag, index.ManifestBytes, index.MediaType, credentials, ct,
            expectedDigest: index.Digest);
        return new PushResult($"{registryHost}/{repository}:{tag}", index.Digest, index.MediaType);
    }

    /// <summary>Pushes the image with its manifest stored only under its digest (no tag).</summary>
    public static async Task<PushResult> PushByDigestOnlyAsync(string registryHost, string repository, BuiltImage image,
        RegistryCredentials? credentials = null, CancellationToken ct = default)
    {
        await PushImageBlobsAsync(registryHost, repository, image, credentials, ct);
        await PushManifestAsync(registryHost, repository, image.ManifestDigest, image.ManifestBytes, image.ManifestMediaType,
            credentials, ct, expectedDigest: image.ManifestDigest);
        return new PushResult($"{registryHost}/{repository}@{image.ManifestDigest}", image.ManifestDigest, image.ManifestMediaType);
    }

    /// <summary>Pushes an index (and its images) with nothing tagged.</summary>
    public static async Task<PushResult> PushByDigestOnlyAsync(string registryHost, string repository, BuiltIndex index,
        RegistryCredentials? credentials = null, CancellationToken ct = default)
    {
        foreach (var image in index.Images)
            await PushByDigestOnlyAsync(registryHost, repository, image, credentials, ct);
        await PushManifestAsync(registryHost, repository, index.Digest, index.ManifestBytes, index.MediaType, credentials, ct,
            expectedDigest: index.Digest);
        return new PushResult($"{registryHost}/{repository}@{index.Digest}", index.Digest, index.MediaType);
    }

    public static async Task PushImageBlobsAsync(string registryHost, string repository, BuiltImage image,
        RegistryCredentials? credentials = null, CancellationToken ct = default)
    {
        foreach (var (digest, data) in image.Blobs())
            await PushBlobAsync(registryHost, repository, digest, data, credentials, ct);
    }

    public static async Task<bool> BlobExistsAsync(string registryHost, string repository, string digest,
        RegistryCredentials? credentials = null, CancellationToken ct = default)
    {
        using var req = Request(HttpMethod.Head, BaseUri(registryHost), $"v2/{repository}/blobs/{digest}", credentials);
        using var resp = await Http.SendAsync(req, ct);
        if (resp.StatusCode == HttpStatusCode.OK) return true;
        if (resp.StatusCode == HttpStatusCode.NotFound) return false;
        throw await Fail(resp, $"HEAD blob {digest} in {repository}");
    }

    /// <summary>Uploads one blob unless the repository already has it. Returns true if it was uploaded.
    /// The digest is sent as given (not recomputed), so a test can try pushing a blob under a wrong digest.</summary>
    public static async Task<bool> PushBlobAsync(string registryHost, string repository, string digest, byte[] data,
        RegistryCredentials? credentials = null, CancellationToken ct = default)
    {
        if (await BlobExistsAsync(registryHost, repository, digest, credentials, ct)) return false;

        var baseUri = BaseUri(registryHost);
        Uri location;
        using (var post = Request(HttpMethod.Post, baseUri, $"v2/{repository}/blobs/uploads/", credentials))
        {
            post.Content = new ByteArrayContent(Array.Empty<byte>());
            using var resp = await Http.SendAsync(post, ct);
            if (resp.StatusCode != HttpStatusCode.Accepted)
                throw await Fail(resp, $"POST blob upload for {repository}");
            // Location may be absolute or relative to the registry.
            var loc = resp.Headers.Location ?? throw new RegistryPushException($"POST blob upload for {repository}: no Location header");
            location = loc.IsAbsoluteUri ? loc : new Uri(baseUri, loc);
        }

        var sep = string.IsNullOrEmpty(location.Query) ? "?" : "&";
        var putUri = new Uri(location.AbsoluteUri + sep + "digest=" + Uri.EscapeDataString(digest));
        using (var put = Request(HttpMethod.Put, putUri, credentials))
        {
            put.Content = new ByteArrayContent(data);
            put.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using var resp = await Http.SendAsync(put, ct);
            if (resp.StatusCode != HttpStatusCode.Created)
                throw await Fail(resp, $"PUT blob {digest} ({data.Length} bytes) to {repository}");
        }
        return true;
    }

    /// <summary>PUTs raw manifest bytes under a tag or digest with the given Content-Type; returns the
    /// digest the registry reports (Docker-Content-Digest). Usable for deliberately malformed manifests.</summary>
    public static async Task<string> PushManifestAsync(string registryHost, string repository, string reference, byte[] manifest,
        string mediaType, RegistryCredentials? credentials = null, CancellationToken ct = default, string? expectedDigest = null)
    {
        using var put = Request(HttpMethod.Put, BaseUri(registryHost), $"v2/{repository}/manifests/{reference}", credentials);
        put.Content = new ByteArrayContent(manifest);
        put.Content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        using var resp = await Http.SendAsync(put, ct);
        if (resp.StatusCode != HttpStatusCode.Created)
            throw await Fail(resp, $"PUT manifest {repository}:{reference} ({mediaType})");
        var digest = resp.Headers.TryGetValues("Docker-Content-Digest", out var v) ? v.FirstOrDefault() ?? "" : "";
        if (expectedDigest is not null && digest.Length > 0 && digest != expectedDigest)
            throw new RegistryPushException($"registry stored manifest {repository}:{reference} as {digest}, expected {expectedDigest}");
        return digest.Length > 0 ? digest : Digests.Sha256(manifest);
    }

    /// <summary>
    /// The standard set (what `push-test-images` pushes): busybox:latest, busybox:1.35, busybox:nonroot (User 1000:1000),
    /// busybox:docker (Docker schema 2), library/busybox:latest (for mirror tests; same digest as busybox:latest),
    /// multilayer:latest, multiarch:latest (OCI index amd64+arm64), multiarch:docker (Docker manifest list),
    /// malicious:&lt;kind&gt; for every <see cref="MaliciousKind"/>, and large:latest when <paramref name="largeMiB"/> &gt; 0.
    /// </summary>
    public static async Task<IReadOnlyList<PushResult>> PushStandardTestImagesAsync(string registryHost,
        RegistryCredentials? credentials = null, int largeMiB = 0, CancellationToken ct = default)
    {
        var results = new List<PushResult>();
        async Task Push(string repo, string tag, BuiltImage image) =>
            results.Add(await PushAsync(registryHost, repo, tag, image, credentials, ct));
        async Task PushIndex(string repo, string tag, BuiltIndex index) =>
            results.Add(await PushAsync(registryHost, repo, tag, index, credentials, ct));

        var busybox = TestImages.Busybox();
        await Push("busybox", "latest", busybox);
        await Push("busybox", "1.35", TestImages.Busybox("1.35"));
        await Push("busybox", "nonroot", TestImages.Busybox("nonroot", user: $"{TestImages.AppUid}:{TestImages.AppUid}"));
        await Push("busybox", "docker", TestImages.Busybox("docker", format: ManifestFormat.DockerSchema2));
        await Push("library/busybox", "latest", busybox);
        await Push("multilayer", "latest", TestImages.MultiLayer());
        await PushIndex("multiarch", "latest", TestImages.TwoPlatformIndex());
        await PushIndex("multiarch", "docker", TestImages.TwoPlatformIndex(ManifestFormat.DockerSchema2));
        foreach (var kind in Enum.GetValues<MaliciousKind>())
            await Push("malicious", TestImages.Name(kind), TestImages.Malicious(kind));
        if (largeMiB > 0)
            await Push("large", "latest", TestImages.Large(largeMiB));
        return results;
    }

    /// <summary>"host:port" means plain HTTP; a value with a scheme is used as is.</summary>
    public static Uri BaseUri(string registryHost)
    {
        var s = registryHost.Contains("://", StringComparison.Ordinal) ? registryHost : "http://" + registryHost;
        return new Uri(s.TrimEnd('/') + "/");
    }

    private static HttpRequestMessage Request(HttpMethod method, Uri baseUri, string path, RegistryCredentials? credentials)
        => Request(method, new Uri(baseUri, path), credentials);

    private static HttpRequestMessage Request(HttpMethod method, Uri uri, RegistryCredentials? credentials)
    {
        var req = new HttpRequestMessage(method, uri);
        // Preemptive basic auth: htpasswd registries accept it on the first request.
        if (credentials is not null)
            req.Headers.Authorization = new AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes($"{credentials.Username}:{credentials.Password}")));
        return req;
    }

    private static async Task<RegistryPushException> Fail(HttpResponseMessage resp, string what)
    {
        string body;
        try { body = await resp.Content.ReadAsStringAsync(); }
        catch (HttpRequestException e) { body = "(body unreadable: " + e.Message + ")"; }
        if (body.Length > 2000) body = body[..2000] + "...";
        return new RegistryPushException($"{what}: HTTP {(int)resp.StatusCode} {resp.ReasonPhrase}: {body}".TrimEnd(' ', ':'), resp.StatusCode);
    }
}
