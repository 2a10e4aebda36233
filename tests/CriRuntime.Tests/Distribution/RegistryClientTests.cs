using System.Net;
using System.Net.Http.Headers;
using System.Text;
using CriRuntime.Images;
using CriRuntime.Images.Distribution;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Distribution;

/// <summary>The client against an in-memory registry (a fake HttpMessageHandler): no network.</summary>
public sealed class RegistryClientTests : IDisposable
{
    private const string Realm = "https://auth.test/token";
    private readonly string configDir = Directory.CreateTempSubdirectory("regclient-").FullName;
    private readonly FakeTime time = new();

    // A one-layer image behind an index (amd64 + arm64 + an attestation).
    private readonly byte[] layer = Encoding.UTF8.GetBytes(new string('x', 3000));
    private readonly byte[] config;
    private readonly byte[] manifest;
    private readonly byte[] index;
    private readonly Digest layerDigest, configDigest, manifestDigest, indexDigest;

    public RegistryClientTests()
    {
        layerDigest = Digest.Sha256(layer);
        config = Encoding.UTF8.GetBytes($$$"""{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["{{{layerDigest}}}"]}}""");
        configDigest = Digest.Sha256(config);
        manifest = Encoding.UTF8.GetBytes($$$"""
            {"schemaVersion":2,"mediaType":"{{{MediaTypes.OciManifest}}}",
             "config":{"mediaType":"{{{MediaTypes.OciConfig}}}","digest":"{{{configDigest}}}","size":{{{config.Length}}}},
             "layers":[{"mediaType":"{{{MediaTypes.OciLayer}}}","digest":"{{{layerDigest}}}","size":{{{layer.Length}}}}]}
            """);
        manifestDigest = Digest.Sha256(manifest);
        index = Encoding.UTF8.GetBytes($$$"""
            {"schemaVersion":2,"mediaType":"{{{MediaTypes.OciIndex}}}","manifests":[
              {"mediaType":"{{{MediaTypes.OciManifest}}}","digest":"{{{Digest.Sha256("arm")}}}","size":10,"platform":{"os":"linux","architecture":"arm64"}},
              {"mediaType":"{{{MediaTypes.OciManifest}}}","digest":"{{{manifestDigest}}}","size":{{{manifest.Length}}},"platform":{"os":"linux","architecture":"amd64"}},
              {"mediaType":"{{{MediaTypes.OciManifest}}}","digest":"{{{Digest.Sha256("att")}}}","size":10,"platform":{"os":"unknown","architecture":"unknown"},
               "annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}
            """);
        indexDigest = Digest.Sha256(index);
    }

    public void Dispose() => Directory.Delete(configDir, recursive: true);

    private static readonly Platform Amd64 = new("linux", "amd64");
    private static readonly ImageReference AppTag = new("registry.test", "team/app", "1.0", null);
    private static readonly RegistryCredentials UserPass = new("user", "pass", null, null, null);

    private RegistryClient Client(FakeRegistry fake) =>
        new(new RegistryHosts(configDir), NullLogger<RegistryClient>.Instance, TimeSpan.FromSeconds(5), _ => fake, time);

    private void WriteHosts(string toml)
    {
        Directory.CreateDirectory(Path.Combine(configDir, "registry.test"));
        File.WriteAllText(Path.Combine(configDir, "registry.test", "hosts.toml"), toml);
    }

    /// <summary>Serves the test image on registry.test behind Docker Hub style token auth.</summary>
    private FakeRegistry TokenRegistry(string host = "registry.test", Func<HttpRequestMessage, HttpResponseMessage?>? first = null)
    {
        int tokens = 0;
        return new FakeRegistry(request =>
        {
            if (first?.Invoke(request) is { } overridden) return overridden;
            var uri = request.RequestUri!;
            if (uri.Host == "auth.test")
            {
                tokens++;
                return Json(HttpStatusCode.OK, $$"""{"token":"tok{{tokens}}","expires_in":300}""");
            }
            if (uri.Host == "storage.test")
                return Bytes(layer, "application/octet-stream");
            if (uri.Host != host) return new HttpResponseMessage(HttpStatusCode.NotFound);
            if (request.Headers.Authorization is not { Scheme: "Bearer" })
            {
                var unauthorized = Json(HttpStatusCode.Unauthorized, """{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}""");
                unauthorized.Headers.TryAddWithoutValidation("WWW-Authenticate",
                    $"Bearer realm=\"{Realm}\",service=\"registry.test\",scope=\"repository:team/app:pull\"");
                return unauthorized;
            }
            string path = uri.AbsolutePath;
            if (path == "/v2/team/app/manifests/1.0") return Manifest(index, MediaTypes.OciIndex, indexDigest);
            if (path == $"/v2/team/app/manifests/{indexDigest}") return Manifest(index, MediaTypes.OciIndex, indexDigest);
            if (path == $"/v2/team/app/manifests/{manifestDigest}") return Manifest(manifest, MediaTypes.OciManifest, manifestDigest);
            if (path == $"/v2/team/app/blobs/{configDigest}") return Bytes(config, "application/octet-stream");
            if (path == $"/v2/team/app/blobs/{layerDigest}")
            {
                var redirect = new HttpResponseMessage(HttpStatusCode.TemporaryRedirect);
                redirect.Headers.Location = new Uri("https://storage.test/blobs/x?sig=abc");
                return redirect;
            }
            return Json(HttpStatusCode.NotFound, """{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}""");
        });
    }

    [Fact]
    public async Task ResolvesATagThroughAnIndexWithBearerAuthAndCachesTheToken()
    {
        var fake = TokenRegistry();
        using var client = Client(fake);

        var image = await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        Assert.Equal(indexDigest, image.TopDigest);
        Assert.Equal(MediaTypes.OciIndex, image.TopMediaType);
        Assert.Equal(index, image.TopBytes);
        Assert.Equal(manifestDigest, image.ManifestDigest);
        Assert.Equal(manifest, image.ManifestBytes);
        Assert.Equal(configDigest, image.Manifest.Config.Digest);
        Assert.Equal(new Uri("https://registry.test/v2"), image.Endpoint.BaseUri);

        var tokenRequest = Assert.Single(fake.Requests, r => r.Uri.Host == "auth.test");
        Assert.Equal("service=registry.test&scope=repository%3Ateam%2Fapp%3Apull", tokenRequest.Uri.Query.TrimStart('?'));
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("user:pass")), tokenRequest.Authorization);
        Assert.Contains(fake.Requests, r => r.Accept is { } a && a.Contains(MediaTypes.DockerManifestList) && a.Contains(MediaTypes.OciManifest));

        // The config comes with the cached token: no second token request, no second 401.
        var configBytes = await client.FetchBlobAsync(image, image.Manifest.Config, UserPass, CancellationToken.None);
        Assert.Equal(config, configBytes);
        await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        Assert.Single(fake.Requests, r => r.Uri.Host == "auth.test");
        Assert.Single(fake.Requests, r => r.Status == HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task TokenIsFetchedAgainWhenItExpires()
    {
        var fake = TokenRegistry();
        using var client = Client(fake);
        await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(200));
        await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        Assert.Single(fake.Requests, r => r.Uri.Host == "auth.test");
        time.Advance(TimeSpan.FromSeconds(100));
        await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        Assert.Equal(2, fake.Requests.Count(r => r.Uri.Host == "auth.test"));
        Assert.Equal("Bearer tok2", fake.Requests.Last(r => r.Uri.Host == "registry.test").Authorization);
    }

    [Fact]
    public async Task TokensAreNotSharedBetweenCredentials()
    {
        var fake = TokenRegistry();
        using var client = Client(fake);
        await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        await client.ResolveAsync(AppTag, Amd64, null, CancellationToken.None);
        var tokenRequests = fake.Requests.Where(r => r.Uri.Host == "auth.test").ToList();
        Assert.Equal(2, tokenRequests.Count);
        Assert.Null(tokenRequests[1].Authorization);
    }

    [Fact]
    public async Task BlobRedirectDoesNotCarryTheAuthorizationToAnotherHost()
    {
        var fake = TokenRegistry();
        using var client = Client(fake);
        var image = await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        long progress = 0;
        await using (var stream = await client.OpenBlobAsync(image, image.Manifest.Layers[0], UserPass, n => progress += n, CancellationToken.None))
        {
            var copy = new MemoryStream();
            await stream.CopyToAsync(copy);
            Assert.Equal(layer, copy.ToArray());
        }
        Assert.Equal(layer.Length, progress);
        var blobRequest = fake.Requests.Last(r => r.Uri.AbsolutePath.EndsWith(layerDigest.ToString()));
        Assert.StartsWith("Bearer ", blobRequest.Authorization);
        var storage = Assert.Single(fake.Requests, r => r.Uri.Host == "storage.test");
        Assert.Null(storage.Authorization);
        Assert.Equal("?sig=abc", storage.Uri.Query);
    }

    [Fact]
    public async Task CorruptBlobFailsVerification()
    {
        var fake = TokenRegistry(first: r => r.RequestUri!.Host == "storage.test"
            ? Bytes(Encoding.UTF8.GetBytes(new string('y', 3000)), "application/octet-stream") : null);
        using var client = Client(fake);
        var image = await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        await using var stream = await client.OpenBlobAsync(image, image.Manifest.Layers[0], UserPass, null, CancellationToken.None);
        await Assert.ThrowsAsync<BlobVerificationException>(() => stream.CopyToAsync(Stream.Null));
    }

    [Fact]
    public async Task BlobOfTheWrongLengthIsRefusedUpFront()
    {
        var fake = TokenRegistry(first: r => r.RequestUri!.Host == "storage.test"
            ? Bytes(new byte[10], "application/octet-stream") : null);
        using var client = Client(fake);
        var image = await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.OpenBlobAsync(image, image.Manifest.Layers[0], UserPass, null, CancellationToken.None));
        Assert.Equal(RegistryErrorKind.Invalid, e.Kind);
    }

    [Fact]
    public async Task DockerContentDigestMustMatchTheContent()
    {
        var fake = TokenRegistry(first: r => r.RequestUri!.AbsolutePath.EndsWith("/manifests/1.0") && r.Headers.Authorization is not null
            ? Manifest(index, MediaTypes.OciIndex, Digest.Sha256("something else")) : null);
        using var client = Client(fake);
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None));
        Assert.Equal(RegistryErrorKind.Invalid, e.Kind);
        Assert.Contains(Digest.Sha256("something else").ToString(), e.Message);
        Assert.Contains(indexDigest.ToString(), e.Message);
    }

    [Fact]
    public async Task DigestReferenceMustMatchTheContent()
    {
        var wanted = Digest.Sha256("not the index");
        var fake = TokenRegistry(first: r => r.RequestUri!.AbsolutePath.EndsWith($"/manifests/{wanted}") && r.Headers.Authorization is not null
            ? Manifest(index, MediaTypes.OciIndex, null) : null);
        using var client = Client(fake);
        var e = await Assert.ThrowsAsync<RegistryException>(() =>
            client.ResolveAsync(AppTag with { Tag = null, Digest = wanted }, Amd64, UserPass, CancellationToken.None));
        Assert.Equal(RegistryErrorKind.Invalid, e.Kind);
        Assert.Contains("not the " + wanted, e.Message);
    }

    [Fact]
    public async Task DigestReferenceResolves()
    {
        var fake = TokenRegistry();
        using var client = Client(fake);
        var image = await client.ResolveAsync(AppTag with { Digest = indexDigest }, Amd64, UserPass, CancellationToken.None);
        Assert.Equal(indexDigest, image.TopDigest);
        Assert.Equal(manifestDigest, image.ManifestDigest);
        Assert.Contains(fake.Requests, r => r.Uri.AbsolutePath == $"/v2/team/app/manifests/{indexDigest}");
    }

    [Fact]
    public async Task NotFoundSaysWhatWhereAndWhat()
    {
        var fake = TokenRegistry();
        using var client = Client(fake);
        var e = await Assert.ThrowsAsync<RegistryException>(() =>
            client.ResolveAsync(AppTag with { Tag = "nosuch" }, Amd64, UserPass, CancellationToken.None));
        Assert.Equal(RegistryErrorKind.NotFound, e.Kind);
        Assert.Equal("MANIFEST_UNKNOWN", e.ErrorCode);
        Assert.StartsWith("image registry.test/team/app:nosuch not found on https://registry.test/v2: manifest unknown", e.Message);
    }

    [Fact]
    public async Task PlatformMissingFromTheIndex()
    {
        var fake = TokenRegistry();
        using var client = Client(fake);
        var e = await Assert.ThrowsAsync<PlatformNotFoundException>(() =>
            client.ResolveAsync(AppTag, new Platform("linux", "s390x"), UserPass, CancellationToken.None));
        Assert.Contains("it offers: linux/arm64/v8, linux/amd64", e.Message);
    }

    [Fact]
    public async Task BasicChallengeWithoutCredentialsAsksForThem()
    {
        var fake = new FakeRegistry(r =>
        {
            if (r.Headers.Authorization is null)
            {
                var response = new HttpResponseMessage(HttpStatusCode.Unauthorized);
                response.Headers.TryAddWithoutValidation("WWW-Authenticate", "Basic realm=\"Registry\"");
                return response;
            }
            return r.Headers.Authorization.Parameter == Convert.ToBase64String(Encoding.UTF8.GetBytes("user:pass"))
                ? Manifest(manifest, MediaTypes.OciManifest, manifestDigest)
                : new HttpResponseMessage(HttpStatusCode.Unauthorized);
        });
        using var client = Client(fake);
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.ResolveAsync(AppTag, Amd64, null, CancellationToken.None));
        Assert.Equal(RegistryErrorKind.Unauthorized, e.Kind);
        Assert.Contains("unauthorized: registry registry.test requires credentials", e.Message);

        // The auth field (base64 user:pass) works as well as username and password.
        var image = await client.ResolveAsync(AppTag, Amd64,
            new RegistryCredentials(null, null, null, null, Convert.ToBase64String(Encoding.UTF8.GetBytes("user:pass"))), CancellationToken.None);
        Assert.Equal(manifestDigest, image.TopDigest);
        Assert.Equal(manifestDigest, image.ManifestDigest);

        var wrong = await Assert.ThrowsAsync<RegistryException>(() =>
            client.ResolveAsync(AppTag, Amd64, new RegistryCredentials("user", "nope", null, null, null), CancellationToken.None));
        Assert.Equal(RegistryErrorKind.Unauthorized, wrong.Kind);
    }

    [Fact]
    public async Task AnonymousTokenRefusedMeansCredentialsAreNeeded()
    {
        var fake = TokenRegistry(first: r => r.RequestUri!.Host == "auth.test" ? new HttpResponseMessage(HttpStatusCode.Unauthorized) : null);
        using var client = Client(fake);
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.ResolveAsync(AppTag, Amd64, null, CancellationToken.None));
        Assert.Equal(RegistryErrorKind.Unauthorized, e.Kind);
        Assert.Contains("requires credentials", e.Message);
    }

    [Fact]
    public async Task RegistryTokenIsSentAsIs()
    {
        var fake = TokenRegistry();
        using var client = Client(fake);
        await client.ResolveAsync(AppTag, Amd64, new RegistryCredentials(null, null, null, "given-token", null), CancellationToken.None);
        Assert.DoesNotContain(fake.Requests, r => r.Uri.Host == "auth.test");
        Assert.Equal("Bearer given-token", fake.Requests.Last().Authorization);
    }

    [Fact]
    public async Task IdentityTokenIsExchangedByOAuthPost()
    {
        string? form = null;
        var fake = TokenRegistry(first: r =>
        {
            if (r.RequestUri!.Host != "auth.test") return null;
            Assert.Equal(HttpMethod.Post, r.Method);
            form = r.Content!.ReadAsStringAsync().Result;
            return Json(HttpStatusCode.OK, """{"access_token":"oauth","expires_in":60}""");
        });
        using var client = Client(fake);
        await client.ResolveAsync(AppTag, Amd64, new RegistryCredentials(null, null, "refresh-me", null, null), CancellationToken.None);
        Assert.NotNull(form);
        Assert.Contains("grant_type=refresh_token", form);
        Assert.Contains("refresh_token=refresh-me", form);
        Assert.Contains("service=registry.test", form);
        Assert.Contains("scope=repository%3Ateam%2Fapp%3Apull", form);
        Assert.Equal("Bearer oauth", fake.Requests.Last().Authorization);
    }

    [Fact]
    public async Task IdentityTokenFallsBackToGetWhenPostIsNotSupported()
    {
        var fake = TokenRegistry(first: r =>
            r.RequestUri!.Host == "auth.test" && r.Method == HttpMethod.Post ? new HttpResponseMessage(HttpStatusCode.NotFound) : null);
        using var client = Client(fake);
        await client.ResolveAsync(AppTag, Amd64, new RegistryCredentials(null, null, "refresh-me", null, null), CancellationToken.None);
        var get = Assert.Single(fake.Requests, r => r.Uri.Host == "auth.test" && r.Method == HttpMethod.Get);
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(":refresh-me")), get.Authorization);
        Assert.Equal("Bearer tok1", fake.Requests.Last().Authorization);
    }

    [Fact]
    public async Task RefusedCachedTokenIsRenewedOnce()
    {
        bool refuseTok1 = false;
        var fake = TokenRegistry(first: r =>
        {
            if (refuseTok1 && r.RequestUri!.Host == "registry.test" && r.Headers.Authorization?.Parameter == "tok1")
            {
                var response = new HttpResponseMessage(HttpStatusCode.Unauthorized);
                response.Headers.TryAddWithoutValidation("WWW-Authenticate", $"Bearer realm=\"{Realm}\",service=\"registry.test\",error=\"invalid_token\"");
                return response;
            }
            return null;
        });
        using var client = Client(fake);
        await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        refuseTok1 = true;
        await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        Assert.Equal(2, fake.Requests.Count(r => r.Uri.Host == "auth.test"));
        Assert.Equal("Bearer tok2", fake.Requests.Last().Authorization);
    }

    [Fact]
    public async Task MirrorIsTriedFirstWithNsAndFallsBackToTheServer()
    {
        WriteHosts("""
            server = "https://registry.test"

            [host."https://mirror.test"]
              capabilities = ["pull", "resolve"]
            """);
        var fake = TokenRegistry();
        using var client = Client(fake);
        var image = await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        Assert.Equal(new Uri("https://registry.test/v2"), image.Endpoint.BaseUri);
        var mirror = fake.Requests.First();
        Assert.Equal("mirror.test", mirror.Uri.Host);
        Assert.Equal("/v2/team/app/manifests/1.0", mirror.Uri.AbsolutePath);
        Assert.Equal("?ns=registry.test", mirror.Uri.Query);
        Assert.DoesNotContain(fake.Requests, r => r.Uri.Host == "registry.test" && r.Uri.Query.Contains("ns="));
    }

    [Fact]
    public async Task MirrorServesWhenItHasTheImage()
    {
        WriteHosts("""
            [host."https://mirror.test"]
              capabilities = ["pull", "resolve"]
            """);
        var fake = TokenRegistry(host: "mirror.test");
        using var client = Client(fake);
        var image = await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        Assert.True(image.Endpoint.IsMirror);
        Assert.Equal(config, await client.FetchBlobAsync(image, image.Manifest.Config, UserPass, CancellationToken.None));
        Assert.DoesNotContain(fake.Requests, r => r.Uri.Host == "registry.test");
    }

    [Fact]
    public async Task PullOnlyMirrorIsNotAskedToResolveATag()
    {
        WriteHosts("""
            [host."https://mirror.test"]
              capabilities = ["pull"]
            """);
        var fake = TokenRegistry(host: "mirror.test");
        using var client = Client(fake);
        var tagError = await Assert.ThrowsAsync<RegistryException>(() => client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None));
        Assert.DoesNotContain(fake.Requests, r => r.Uri.Host == "mirror.test");
        Assert.Equal(RegistryErrorKind.NotFound, tagError.Kind); // only registry.test was asked, and it does not serve the image here

        var image = await client.ResolveAsync(AppTag with { Digest = indexDigest }, Amd64, UserPass, CancellationToken.None);
        Assert.True(image.Endpoint.IsMirror);
    }

    [Fact]
    public async Task EveryEndpointFailingIsReportedWithEachAnswer()
    {
        WriteHosts("""
            server = "https://registry.test"
            [host."https://mirror.test"]
              capabilities = ["pull", "resolve"]
            """);
        var fake = new FakeRegistry(r => r.RequestUri!.Host == "mirror.test"
            ? throw new HttpRequestException("Connection refused (mirror.test:443)")
            : new HttpResponseMessage(HttpStatusCode.ServiceUnavailable));
        using var client = Client(fake);
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None));
        Assert.Equal(RegistryErrorKind.Unavailable, e.Kind);
        Assert.Equal(2, e.Attempts.Count);
        Assert.Contains("https://mirror.test/v2", e.Message);
        Assert.Contains("Connection refused", e.Message);
        Assert.Contains("https://registry.test/v2", e.Message);
        Assert.Contains("503", e.Message);
        // One retry for the network error, none for the 503.
        Assert.Equal(2, fake.Requests.Count(r => r.Uri.Host == "mirror.test"));
        Assert.Single(fake.Requests, r => r.Uri.Host == "registry.test");
    }

    [Fact]
    public async Task TransientNetworkErrorIsRetriedOnce()
    {
        int failures = 1;
        var fake = TokenRegistry(first: r => r.RequestUri!.Host == "registry.test" && failures-- > 0 ? throw new HttpRequestException("reset") : null);
        using var client = Client(fake);
        var image = await client.ResolveAsync(AppTag, Amd64, UserPass, CancellationToken.None);
        Assert.Equal(indexDigest, image.TopDigest);
    }

    [Fact]
    public async Task Schema1IsRefusedWithAClearMessage()
    {
        var fake = new FakeRegistry(_ =>
        {
            var r = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent("""{"schemaVersion":1,"fsLayers":[]}"""u8.ToArray()) };
            r.Content.Headers.ContentType = new MediaTypeHeaderValue("application/vnd.docker.distribution.manifest.v1+prettyjws");
            return r;
        });
        using var client = Client(fake);
        var e = await Assert.ThrowsAsync<RegistryException>(() => client.ResolveAsync(AppTag, Amd64, null, CancellationToken.None));
        Assert.Equal(RegistryErrorKind.Invalid, e.Kind);
        Assert.Contains("image registry.test/team/app:1.0: schema 1 images are not supported; re-push the image with a current client", e.Message);
    }

    [Fact]
    public async Task CancellationIsNotTurnedIntoARegistryError()
    {
        using var cts = new CancellationTokenSource();
        var fake = new FakeRegistry(_ =>
        {
            cts.Cancel();
            throw new TaskCanceledException();
        });
        using var client = Client(fake);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.ResolveAsync(AppTag, Amd64, null, cts.Token));
    }

    // ---- helpers ----

    private static HttpResponseMessage Json(HttpStatusCode status, string json) =>
        new(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

    private static HttpResponseMessage Bytes(byte[] bytes, string contentType)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(bytes) };
        response.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        return response;
    }

    private static HttpResponseMessage Manifest(byte[] bytes, string mediaType, Digest? header)
    {
        var response = Bytes(bytes, mediaType);
        if (header is { } d) response.Headers.TryAddWithoutValidation("Docker-Content-Digest", d.ToString());
        return response;
    }

    internal sealed record Seen(HttpMethod Method, Uri Uri, string? Authorization, string? Accept, HttpStatusCode? Status);

    internal sealed class FakeRegistry(Func<HttpRequestMessage, HttpResponseMessage> handle) : HttpMessageHandler
    {
        private readonly List<Seen> requests = [];

        public IReadOnlyList<Seen> Requests
        {
            get { lock (requests) return requests.ToList(); }
        }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string? authorization = request.Headers.TryGetValues("Authorization", out var a) ? a.First() : null;
            string? accept = request.Headers.TryGetValues("Accept", out var acc) ? string.Join(", ", acc) : null;
            HttpResponseMessage response;
            try
            {
                response = handle(request);
            }
            catch
            {
                lock (requests) requests.Add(new Seen(request.Method, request.RequestUri!, authorization, accept, null));
                throw;
            }
            response.RequestMessage = request;
            lock (requests) requests.Add(new Seen(request.Method, request.RequestUri!, authorization, accept, response.StatusCode));
            return Task.FromResult(response);
        }
    }

    private sealed class FakeTime : TimeProvider
    {
        private DateTimeOffset now = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        public void Advance(TimeSpan by) => now += by;
        public override DateTimeOffset GetUtcNow() => now;
    }
}
