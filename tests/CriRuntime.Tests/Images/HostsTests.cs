using CriRuntime.Config;
using CriRuntime.Images;
using Xunit;

namespace CriRuntime.Tests.Images.Hosts;

public sealed class HostsTests : IDisposable
{
    private readonly string root = Directory.CreateTempSubdirectory("criruntime-hosts-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    private string Write(string directory, string text)
    {
        string dir = Path.Combine(root, directory);
        Directory.CreateDirectory(dir);
        string file = Path.Combine(dir, "hosts.toml");
        File.WriteAllText(file, text);
        return file;
    }

    [Theory]
    [InlineData("docker.io", "https://registry-1.docker.io/v2", false)]
    [InlineData("quay.io", "https://quay.io/v2", false)]
    [InlineData("registry.example.com:5000", "https://registry.example.com:5000/v2", false)]
    [InlineData("localhost", "http://localhost/v2", false)]
    [InlineData("localhost:5000", "http://localhost:5000/v2", false)]
    [InlineData("127.0.0.1:5000", "http://127.0.0.1:5000/v2", false)]
    [InlineData("127.1.2.3", "http://127.1.2.3/v2", false)]
    [InlineData("[::1]:5000", "http://[::1]:5000/v2", false)]
    [InlineData("localhost:443", "https://localhost/v2", true)]
    [InlineData("128.0.0.1:5000", "https://128.0.0.1:5000/v2", false)]
    [InlineData("[::2]:5000", "https://[::2]:5000/v2", false)]
    public void WithoutConfigTheRegistryItselfIsUsed(string registry, string uri, bool skipVerify)
    {
        foreach (var hosts in new[] { new RegistryHosts(root), new RegistryHosts(Path.Combine(root, "missing")), new RegistryHosts("") })
        {
            var endpoint = Assert.Single(hosts.Resolve(registry));
            Assert.Equal(uri, endpoint.BaseUri.AbsoluteUri);
            Assert.Equal(skipVerify, endpoint.SkipVerify);
            Assert.True(endpoint.CanPull && endpoint.CanResolve && endpoint.CanPush);
            Assert.False(endpoint.IsMirror);
            Assert.Empty(endpoint.CaFiles);
            Assert.Empty(endpoint.ClientCerts);
            Assert.Empty(endpoint.Headers);
        }
    }

    [Fact]
    public void MirrorsComeFirstInFileOrderThenTheServer()
    {
        Write("docker.io", """
            server = "https://registry-1.docker.io"

            [host."https://public-mirror.example.com"]
              capabilities = ["pull"]

            [host."http://127.0.0.1:5001"]
              capabilities = ["pull", "resolve"]
              skip_verify = true
              [host."http://127.0.0.1:5001".header]
                X-Registry = ["https://registry-1.docker.io"]
                X-Single = "one"

            [host."mirror.internal/cache"]
            """);
        var endpoints = new RegistryHosts(root).Resolve("docker.io");
        Assert.Equal(
            ["https://public-mirror.example.com/v2", "http://127.0.0.1:5001/v2", "https://mirror.internal/cache/v2", "https://registry-1.docker.io/v2"],
            endpoints.Select(e => e.BaseUri.AbsoluteUri));
        Assert.Equal([true, true, true, false], endpoints.Select(e => e.IsMirror));

        Assert.True(endpoints[0].CanPull);
        Assert.False(endpoints[0].CanResolve);
        Assert.False(endpoints[0].CanPush);
        Assert.False(endpoints[0].SkipVerify);

        Assert.True(endpoints[1].CanPull && endpoints[1].CanResolve);
        Assert.False(endpoints[1].CanPush);
        Assert.True(endpoints[1].SkipVerify);
        Assert.Equal(["https://registry-1.docker.io"], endpoints[1].Headers["X-Registry"]);
        Assert.Equal(["one"], endpoints[1].Headers["x-single"]);

        // No capabilities line: everything, as containerd defaults.
        Assert.True(endpoints[2].CanPull && endpoints[2].CanResolve && endpoints[2].CanPush);
        Assert.True(endpoints[3].CanPull && endpoints[3].CanResolve && endpoints[3].CanPush);
    }

    [Fact]
    public void WithoutServerTheRegistryIsTheFallback()
    {
        Write("127.0.0.1:5000", """
            [host."https://mirror.example.com"]
              capabilities = ["pull", "resolve"]
            """);
        var endpoints = new RegistryHosts(root).Resolve("127.0.0.1:5000");
        Assert.Equal(["https://mirror.example.com/v2", "http://127.0.0.1:5000/v2"], endpoints.Select(e => e.BaseUri.AbsoluteUri));
    }

    [Theory]
    [InlineData("https://mirror.example.com/api/v2", false, "https://mirror.example.com/api/v2")]
    [InlineData("https://mirror.example.com/api", false, "https://mirror.example.com/api/v2")]
    [InlineData("https://mirror.example.com/api//x/../", false, "https://mirror.example.com/api/v2")]
    [InlineData("https://mirror.example.com/api/artifactory/docker", true, "https://mirror.example.com/api/artifactory/docker")]
    [InlineData("https://mirror.example.com", true, "https://mirror.example.com/")]
    [InlineData("https://mirror.example.com:8443/", false, "https://mirror.example.com:8443/v2")]
    [InlineData("mirror.example.com", false, "https://mirror.example.com/v2")]
    [InlineData("http://[::1]:5000", false, "http://[::1]:5000/v2")]
    public void OverridePathAndV2Suffix(string url, bool overridePath, string expected)
    {
        Write("quay.io", $"""
            [host."{url}"]
              override_path = {(overridePath ? "true" : "false")}
            """);
        Write("ghcr.io", $"""
            server = "{url}"
            override_path = {(overridePath ? "true" : "false")}
            """);
        var hosts = new RegistryHosts(root);
        Assert.Equal(expected, hosts.Resolve("quay.io")[0].BaseUri.AbsoluteUri);
        var server = Assert.Single(hosts.Resolve("ghcr.io"));
        Assert.Equal(expected, server.BaseUri.AbsoluteUri);
        Assert.False(server.IsMirror);
    }

    [Fact]
    public void OverridePathCombinesWithoutDoubleSlash()
    {
        Write("quay.io", """
            server = "https://mirror.example.com/api/docker"
            override_path = true
            """);
        var server = Assert.Single(new RegistryHosts(root).Resolve("quay.io"));
        Assert.Equal("https://mirror.example.com/api/docker/library/x/manifests/1", server.Combine("library/x/manifests/1").AbsoluteUri);
    }

    [Fact]
    public void CaAndClientPathsAreRelativeToTheHostDirectory()
    {
        Write("registry.example.com", """
            server = "https://registry.example.com"
            ca = "ca.pem"
            client = [["client.cert", "client.key"], ["/abs/both.pem", ""], "single.pem"]

            [host."https://mirror.example.com"]
              ca = ["/etc/certs/a.pem", "sub/b.pem"]
              client = "mirror-client.pem"
              skip_verify = false
            """);
        string dir = Path.Combine(root, "registry.example.com");
        var endpoints = new RegistryHosts(root).Resolve("registry.example.com");

        Assert.Equal(["/etc/certs/a.pem", Path.Combine(dir, "sub", "b.pem")], endpoints[0].CaFiles);
        Assert.Equal([(Path.Combine(dir, "mirror-client.pem"), (string?)null)], endpoints[0].ClientCerts);

        Assert.Equal([Path.Combine(dir, "ca.pem")], endpoints[1].CaFiles);
        Assert.Equal(
            [(Path.Combine(dir, "client.cert"), Path.Combine(dir, "client.key")), ("/abs/both.pem", (string?)null), (Path.Combine(dir, "single.pem"), null)],
            endpoints[1].ClientCerts);
    }

    [Fact]
    public void TopLevelTlsSettingsApplyToTheDefaultUpstream()
    {
        Write("registry.example.com:5000", """
            skip_verify = true
            ca = "/etc/certs/private-ca.pem"
            capabilities = ["pull"]
            """);
        var endpoint = Assert.Single(new RegistryHosts(root).Resolve("registry.example.com:5000"));
        Assert.Equal("https://registry.example.com:5000/v2", endpoint.BaseUri.AbsoluteUri);
        Assert.True(endpoint.SkipVerify);
        Assert.Equal(["/etc/certs/private-ca.pem"], endpoint.CaFiles);
        Assert.True(endpoint.CanPull && endpoint.CanResolve); // containerd ignores capabilities without a server
    }

    [Fact]
    public void DefaultDirectoryIsTheFallback()
    {
        Write("_default", """
            [host."https://registry.example.com"]
              capabilities = ["pull", "resolve"]
            """);
        Write("quay.io", """server = "https://quay-mirror.example.com" """);
        var hosts = new RegistryHosts(root);

        var ghcr = hosts.Resolve("ghcr.io");
        Assert.Equal(["https://registry.example.com/v2", "https://ghcr.io/v2"], ghcr.Select(e => e.BaseUri.AbsoluteUri));
        var hub = hosts.Resolve("docker.io");
        Assert.Equal(["https://registry.example.com/v2", "https://registry-1.docker.io/v2"], hub.Select(e => e.BaseUri.AbsoluteUri));

        // A registry with its own directory does not also get _default.
        Assert.Equal(["https://quay-mirror.example.com/v2"], hosts.Resolve("quay.io").Select(e => e.BaseUri.AbsoluteUri));
    }

    [Fact]
    public void PortDirectoriesFollowContainerdOrder()
    {
        Write("myregistry.io:5000", """server = "https://colon.example.com" """);
        Assert.Equal("https://colon.example.com/v2", new RegistryHosts(root).Resolve("myregistry.io:5000")[0].BaseUri.AbsoluteUri);

        Write("myregistry.io_5000_", """server = "https://underscore.example.com" """);
        Assert.Equal("https://underscore.example.com/v2", new RegistryHosts(root).Resolve("myregistry.io:5000")[0].BaseUri.AbsoluteUri);

        Assert.Equal(["myregistry.io_5000_", "myregistry.io:5000", "_default"], RegistryHosts.DirectoryNames("myregistry.io:5000"));
        Assert.Equal(["[::1]_5000_", "[::1]:5000", "_default"], RegistryHosts.DirectoryNames("[::1]:5000"));
        Assert.Equal(["docker.io", "_default"], RegistryHosts.DirectoryNames("docker.io"));
    }

    [Fact]
    public void DirectoryWithoutHostsTomlUsesDockerCertificateFiles()
    {
        string dir = Path.Combine(root, "registry.example.com");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "ca.crt"), "");
        File.WriteAllText(Path.Combine(dir, "client.cert"), "");
        File.WriteAllText(Path.Combine(dir, "client.key"), "");
        File.WriteAllText(Path.Combine(dir, "other.cert"), "");
        var endpoint = Assert.Single(new RegistryHosts(root).Resolve("registry.example.com"));
        Assert.Equal("https://registry.example.com/v2", endpoint.BaseUri.AbsoluteUri);
        Assert.Equal([Path.Combine(dir, "ca.crt")], endpoint.CaFiles);
        Assert.Equal(
            [(Path.Combine(dir, "client.cert"), Path.Combine(dir, "client.key")), (Path.Combine(dir, "other.cert"), (string?)null)],
            endpoint.ClientCerts);
    }

    [Fact]
    public void ChangedFileIsReadAgain()
    {
        string file = Write("quay.io", """server = "https://one.example.com" """);
        var hosts = new RegistryHosts(root);
        Assert.Equal("https://one.example.com/v2", hosts.Resolve("quay.io")[0].BaseUri.AbsoluteUri);

        File.WriteAllText(file, """server = "https://second.example.com" """);
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddSeconds(5));
        Assert.Equal("https://second.example.com/v2", hosts.Resolve("quay.io")[0].BaseUri.AbsoluteUri);

        File.Delete(file);
        Assert.Equal("https://quay.io/v2", hosts.Resolve("quay.io")[0].BaseUri.AbsoluteUri);
    }

    [Theory]
    [InlineData("server = 5\n", "'server'", "must be a string")]
    [InlineData("skip_verfy = true\n", "'skip_verfy'", "did you mean 'skip_verify'")]
    [InlineData("[host.\"https://m\"]\noverride_pth = true\n", "host.\"https://m\".override_pth", "did you mean 'host.\"https://m\".override_path'")]
    [InlineData("[host.\"https://m\"]\ncapabilities = [\"pull\", \"fetch\"]\n", "host.\"https://m\".capabilities", "'fetch', which is not a capability")]
    [InlineData("[host.\"https://m\"]\nskip_verify = \"yes\"\n", "host.\"https://m\".skip_verify", "must be a boolean")]
    [InlineData("[host.\"https://m\"]\nca = 1\n", "host.\"https://m\".ca", "must be a path or an array of paths")]
    [InlineData("[host.\"https://m\"]\nclient = [[\"a\"]]\n", "host.\"https://m\".client", "element 0 is an array")]
    [InlineData("[host.\"https://m\"]\nclient = 3\n", "host.\"https://m\".client", "array of [cert, key] pairs")]
    [InlineData("[host.\"https://m\".header]\nx-a = 1\n", "host.\"https://m\".header.x-a", "must be a string or an array of strings")]
    [InlineData("[header]\n\"bad header\" = \"v\"\n", "header.\"bad header\"", "not a valid HTTP header name")]
    [InlineData("host = \"https://m\"\n", "'host'", "must be a table")]
    [InlineData("server = \"ftp://m\"\n", "'server'", "scheme other than http or https")]
    [InlineData("server = \"https://m/?q=1\"\n", "'server'", "must not carry a query")]
    [InlineData("[host.\"https://\"]\n", "host.\"https://\"", "is not a registry URL")]
    [InlineData("dial_timeout = \"1s\"\n", "'dial_timeout'", "does not support")]
    [InlineData("[host.\"https://m\"]\nproxy = \"http://p:8080\"\n", "host.\"https://m\".proxy", "does not support")]
    [InlineData("server = \"https://a\"\nserver = \"https://b\"\n", "", "TOML syntax error")]
    public void MalformedHostsTomlNamesFileAndKey(string toml, string key, string problem)
    {
        string file = Write("quay.io", toml);
        var e = Assert.Throws<ConfigException>(() => new RegistryHosts(root).Resolve("quay.io"));
        Assert.StartsWith(file + ":", e.Message);
        Assert.Contains(key, e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("a/b")]
    [InlineData("../etc")]
    public void RegistryThatIsNotAHostIsRefused(string registry) =>
        Assert.Throws<InvalidArgumentException>(() => new RegistryHosts(root).Resolve(registry));
}
