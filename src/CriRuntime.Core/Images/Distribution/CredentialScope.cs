namespace CriRuntime.Images.Distribution;

/// <summary>
/// Which endpoints a pull's AuthConfig may be sent to. The kubelet hands one AuthConfig per pull, with
/// <c>server_address</c> naming the registry its secret was written for. Credentials go to the endpoint of that
/// host only, or, when it is empty, to the image's own registry (its configured server, not a mirror). Stricter
/// than containerd, which offers an AuthConfig without server_address to every host including mirrors: a mirror
/// is a different party, and so is the token realm a mirror names, so neither sees the pull secret.
/// A token realm named by an endpoint that may have the credentials gets them (Docker Hub's realm is
/// auth.docker.io, another host), which is how token auth works.
/// </summary>
public static class CredentialScope
{
    /// <summary>The credentials to use with <paramref name="endpoint"/> when pulling from <paramref name="registry"/>, or null.</summary>
    public static RegistryCredentials? For(RegistryCredentials? credentials, string registry, RegistryEndpoint endpoint)
    {
        if (credentials is null) return null;
        string endpointHost = HostOf(endpoint.BaseUri);
        if (string.IsNullOrEmpty(credentials.ServerAddress))
            return endpoint.IsMirror ? null : credentials;
        string named = NormalizeServerAddress(credentials.ServerAddress);
        if (named == endpointHost) return credentials;
        // server_address names the image's registry: its configured server (hosts.toml `server`) counts as it.
        return !endpoint.IsMirror && named == NormalizeHost(registry) ? credentials : null;
    }

    /// <summary>host[:port] of a server_address in any of the forms clients write ("https://host:5000/v1/",
    /// "host:5000", "index.docker.io"), lower-cased, with Docker Hub's names made one.</summary>
    public static string NormalizeServerAddress(string serverAddress)
    {
        string s = serverAddress.Trim();
        if (!s.Contains("://", StringComparison.Ordinal)) s = "https://" + s;
        return Uri.TryCreate(s, UriKind.Absolute, out var uri) ? HostOf(uri) : NormalizeHost(serverAddress);
    }

    private static string HostOf(Uri uri) => NormalizeHost(uri.IsDefaultPort ? uri.Host : $"{uri.Host}:{uri.Port}");

    private static string NormalizeHost(string host)
    {
        host = host.ToLowerInvariant();
        return host is "docker.io" or "index.docker.io" or "registry-1.docker.io" or "registry.hub.docker.com" ? ImageReference.DockerHub : host;
    }
}
