using System.Net;
using System.Text;
using CriRuntime.Content;
using CriRuntime.Images;
using CriRuntime.Images.Distribution;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using static CriRuntime.Tests.Distribution.RegistryClientTests;

namespace CriRuntime.Tests.Distribution;

/// <summary>
/// Where a pull's credentials go (issue #11): only to the host server_address names, or to the image's own registry;
/// never to a mirror or the realm a mirror names; realms over HTTPS for HTTPS registries; skip_verify for its host only.
/// The registries and token servers are fakes behind the client's handler factory (the real-registry test is in
/// the integration tests).
/// </summary>
public sealed class CredentialScopeTests : IDisposable
{
    private readonly string configDir = Directory.CreateTempSubdirectory("credscope-").FullName;
    private readonly byte[] config = Encoding.UTF8.GetBytes("""{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}""");
    private readonly byte[] manifest;
    private readonly Digest manifestDigest;
    private readonly List<RegistryEndpoint> clientEndpoints = [];
    private static readonly ImageReference App = new("registry.test", "team/app", "1.0", null);
    private static readonly Platform Amd64 = new("linux", "amd64");
    private const string SecretBasic = "Basic dXNlcjpzZWNyZXQ="; // user:secret

    public CredentialScopeTests()
    {
        manifest = Encoding.UTF8.GetBytes($$"""
            {"schemaVersion":2,"mediaType":"{{MediaTypes.OciManifest}}",
             "config":{"mediaType":"{{MediaTypes.OciConfig}}","digest":"{{Digest.Sha256(config)}}","size":{{config.Length}}},"layers":[]}
            """);
        manifestDigest = Digest.Sha256(manifest);
    }

    public void Dispose() => Directory.Delete(configDir, recursive: true);

    private static RegistryCredentials Secret(string? serverAddress = null) => new("user", "secret", null, null, null) { ServerAddress = serverAddress };

    private void WriteHosts(string toml)
    {
        Directory.CreateDirectory(Path.Combine(configDir, "registry.test"));
        File.WriteAllText(Path.Combine(configDir, "registry.test", "hosts.toml"), toml);
    }

    private const string WithMirror = """
        server = "https://registry.test"

        [host."https://mirror.test"]
          capabilities = ["pull", "resolve"]
        """;

    /// <summary>registry.test and mirror.test both serve the image behind bearer auth, each naming its own realm
    /// (<paramref name="realmScheme"/>://HOST-auth.test/token).</summary>
    private FakeRegistry Registries(string realmScheme = "https", bool mirrorLacksImage = false) => new(request =>
    {
        var uri = request.RequestUri!;
        if (mirrorLacksImage && uri.Host == "mirror.test") return new HttpResponseMessage(HttpStatusCode.NotFound);
        if (uri.Host.EndsWith("-auth.test", StringComparison.Ordinal))
            return Respond(HttpStatusCode.OK, """{"token":"tok","expires_in":300}""", "application/json");
        if (uri.Host is not ("registry.test" or "mirror.test")) return new HttpResponseMessage(HttpStatusCode.NotFound);
        if (request.Headers.Authorization is not { Scheme: "Bearer" })
        {
            var unauthorized = Respond(HttpStatusCode.Unauthorized, """{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}""", "application/json");
            string realmHost = uri.Host.Replace(".test", "-auth.test");
            unauthorized.Headers.TryAddWithoutValidation("WWW-Authenticate", $"Bearer realm=\"{realmScheme}://{realmHost}/token\",service=\"{uri.Host}\"");
            return unauthorized;
        }
        if (uri.AbsolutePath == "/v2/team/app/manifests/1.0")
        {
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(manifest) };
            response.Content.Headers.TryAddWithoutValidation("Content-Type", MediaTypes.OciManifest);
            response.Headers.TryAddWithoutValidation("Docker-Content-Digest", manifestDigest.ToString());
            return response;
        }
        return new HttpResponseMessage(HttpStatusCode.NotFound);
    });

    private static HttpResponseMessage Respond(HttpStatusCode status, string body, string type) =>
        new(status) { Content = new StringContent(body, Encoding.UTF8, type) };

    private RegistryClient Client(FakeRegistry fake) =>
        new(new RegistryHosts(configDir), NullLogger<RegistryClient>.Instance, TimeSpan.FromSeconds(5),
            endpoint => { lock (clientEndpoints) clientEndpoints.Add(endpoint); return fake; }, null);

    private static List<string?> AuthorizationsTo(FakeRegistry fake, string host) =>
        fake.Requests.Where(r => r.Uri.Host == host).Select(r => r.Authorization).ToList();

    [Fact]
    public async Task Without_server_address_a_mirror_and_its_realm_get_no_credentials_and_the_registry_does()
    {
        WriteHosts(WithMirror);
        var fake = Registries();
        using var client = Client(fake);

        var image = await client.ResolveAsync(App, Amd64, Secret(), CancellationToken.None);

        Assert.True(image.Endpoint.IsMirror); // the mirror served it, anonymously
        Assert.All(AuthorizationsTo(fake, "mirror-auth.test"), a => Assert.Null(a));
        Assert.NotEmpty(AuthorizationsTo(fake, "mirror-auth.test"));
        Assert.DoesNotContain(fake.Requests, r => r.Authorization == SecretBasic);
    }

    [Fact]
    public async Task Without_server_address_the_image_registry_realm_gets_the_credentials()
    {
        var fake = Registries();
        using var client = Client(fake);

        await client.ResolveAsync(App, Amd64, Secret(), CancellationToken.None);

        Assert.Equal([SecretBasic], AuthorizationsTo(fake, "registry-auth.test"));
    }

    [Theory]
    [InlineData("other.test")]
    [InlineData("https://other.test/v1/")]
    [InlineData("registry.test:5000")] // another port is another host
    public async Task Credentials_for_another_server_address_go_nowhere(string serverAddress)
    {
        WriteHosts(WithMirror);
        var fake = Registries();
        using var client = Client(fake);

        await client.ResolveAsync(App, Amd64, Secret(serverAddress), CancellationToken.None);

        Assert.DoesNotContain(fake.Requests, r => r.Authorization == SecretBasic);
    }

    [Theory]
    [InlineData("registry.test")]
    [InlineData("https://registry.test")]
    [InlineData("https://REGISTRY.test/v1/")]
    public async Task Credentials_whose_server_address_names_the_registry_go_to_its_realm_only(string serverAddress)
    {
        WriteHosts(WithMirror);
        var fake = Registries(mirrorLacksImage: true);
        using var client = Client(fake);

        var image = await client.ResolveAsync(App, Amd64, Secret(serverAddress), CancellationToken.None);

        Assert.False(image.Endpoint.IsMirror);
        Assert.Equal([SecretBasic], AuthorizationsTo(fake, "registry-auth.test"));
        Assert.All(AuthorizationsTo(fake, "mirror.test"), a => Assert.Null(a));
    }

    [Fact]
    public async Task Credentials_whose_server_address_names_the_mirror_go_to_the_mirror_only()
    {
        WriteHosts(WithMirror);
        var fake = Registries();
        using var client = Client(fake);

        await client.ResolveAsync(App, Amd64, Secret("mirror.test"), CancellationToken.None);

        Assert.Equal([SecretBasic], AuthorizationsTo(fake, "mirror-auth.test"));
        Assert.DoesNotContain(AuthorizationsTo(fake, "registry-auth.test"), a => a == SecretBasic);
    }

    [Fact]
    public async Task An_https_registry_naming_a_plain_http_realm_is_refused_before_credentials_are_sent()
    {
        var fake = Registries(realmScheme: "http");
        using var client = Client(fake);

        var e = await Assert.ThrowsAsync<RegistryException>(() => client.ResolveAsync(App, Amd64, Secret(), CancellationToken.None));

        Assert.Contains("names a plain HTTP token realm http://registry-auth.test/token; a registry served over HTTPS must name an HTTPS realm", e.Message);
        Assert.DoesNotContain(fake.Requests, r => r.Uri.Host == "registry-auth.test");
    }

    [Fact]
    public async Task A_plain_http_registry_by_configuration_may_name_a_plain_http_realm()
    {
        WriteHosts("""server = "http://registry.test" """);
        var fake = Registries(realmScheme: "http");
        using var client = Client(fake);

        await client.ResolveAsync(App, Amd64, Secret(), CancellationToken.None);

        Assert.Equal([SecretBasic], AuthorizationsTo(fake, "registry-auth.test"));
    }

    [Fact]
    public async Task Skip_verify_applies_to_its_host_and_not_to_the_realm_it_names()
    {
        WriteHosts("""
            server = "https://registry.test"
            skip_verify = true
            """);
        var fake = Registries();
        using var client = Client(fake);

        await client.ResolveAsync(App, Amd64, Secret(), CancellationToken.None);

        lock (clientEndpoints)
        {
            Assert.Contains(clientEndpoints, e => e.BaseUri.Host == "registry.test" && e.SkipVerify);
            var realm = Assert.Single(clientEndpoints, e => e.BaseUri.Host == "registry-auth.test");
            Assert.False(realm.SkipVerify);
            Assert.Empty(realm.CaFiles);
            Assert.Empty(realm.ClientCerts);
        }
    }

    [Theory]
    [InlineData("https://index.docker.io/v1/", "docker.io")]
    [InlineData("registry-1.docker.io", "docker.io")]
    [InlineData("docker.io", "docker.io")]
    [InlineData("Quay.io", "quay.io")]
    [InlineData("http://10.0.0.5:5000", "10.0.0.5:5000")]
    [InlineData("https://10.0.0.5:443/", "10.0.0.5")]
    public void Server_addresses_are_normalized_to_host_and_port(string serverAddress, string expected) =>
        Assert.Equal(expected, CredentialScope.NormalizeServerAddress(serverAddress));
}
