using System.Text;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>
/// Where a pull secret goes (issue #11), against real registries: two docker-registry processes with token auth
/// (the image's registry and its mirror, serving the fixture's storage) and a token server on a third port that
/// records the Authorization header of every token request.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class CredentialScopeTests(RegistryFixture registry, ITestOutputHelper output) : DaemonTest(output)
{
    private static readonly string SecretBasic = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("puller:s3cret"));

    private static AuthConfig Secret(string serverAddress = "") => new() { Username = "puller", Password = "s3cret", ServerAddress = serverAddress };

    [Fact]
    public async Task The_mirror_and_its_realm_never_see_the_secret_the_image_registry_does_and_another_server_address_goes_nowhere()
    {
        await using var tokens = TokenServer.Start();
        await using var upstream = await RegistryServer.StartAsync(new RegistryServerOptions
        {
            StorageDir = registry.Registry.StorageDir, TokenAuth = tokens, TokenService = "upstream",
        });
        await using var mirror = await RegistryServer.StartAsync(new RegistryServerOptions
        {
            StorageDir = registry.Registry.StorageDir, TokenAuth = tokens, TokenService = "mirror",
        });
        string hosts = TempDir("criruntime-hosts-");
        Directory.CreateDirectory(Path.Combine(hosts, upstream.Host));
        File.WriteAllText(Path.Combine(hosts, upstream.Host, "hosts.toml"), $"""
            server = "http://{upstream.Host}"

            [host."http://{mirror.Host}"]
              capabilities = ["pull", "resolve"]
            """);
        string config = $"[registry]\nconfig_path = \"{hosts}\"\n";
        string image = $"{upstream.Host}/busybox:latest";

        // 1. No server_address: the mirror serves, asking its realm for a token without the secret.
        var d1 = await StartDaemonAsync(config);
        Assert.Equal(registry.Busybox.ImageId, await PullAsync(d1, image, Secret()));
        Assert.Contains(tokens.Requests, r => r.Service == "mirror");
        Assert.All(tokens.Requests, r => Assert.Null(r.Authorization));

        // 2. The mirror refuses: the image's own registry serves, and its realm gets the secret; the mirror's never does.
        tokens.Clear();
        tokens.Deny("mirror");
        var d2 = await StartDaemonAsync(config);
        Assert.Equal(registry.Busybox.ImageId, await PullAsync(d2, image, Secret()));
        Output.WriteLine(string.Join("\n", tokens.Requests));
        Assert.Contains(tokens.Requests, r => r.Service == "mirror");
        Assert.All(tokens.Requests.Where(r => r.Service == "mirror"), r => Assert.Null(r.Authorization));
        Assert.Contains(tokens.Requests, r => r.Service == "upstream" && r.Authorization == SecretBasic);

        // 3. A secret written for another registry goes to neither.
        tokens.Clear();
        var d3 = await StartDaemonAsync(config);
        Assert.Equal(registry.Busybox.ImageId, await PullAsync(d3, image, Secret(serverAddress: "https://other.example:5000/v1/")));
        Assert.Contains(tokens.Requests, r => r.Service == "upstream");
        Assert.All(tokens.Requests, r => Assert.Null(r.Authorization));

        // 4. server_address naming the image's registry (as the kubelet writes it) is the same as none.
        tokens.Clear();
        var d4 = await StartDaemonAsync(config);
        Assert.Equal(registry.Busybox.ImageId, await PullAsync(d4, image, Secret(serverAddress: $"http://{upstream.Host}")));
        Assert.Contains(tokens.Requests, r => r.Service == "upstream" && r.Authorization == SecretBasic);
        Assert.All(tokens.Requests.Where(r => r.Service == "mirror"), r => Assert.Null(r.Authorization));
    }
}
