using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace CriRuntime.TestSupport;

/// <summary>One request the token server got.</summary>
public sealed record TokenRequest(string? Service, string? Scope, string? Authorization);

/// <summary>
/// A tiny token server for distribution's token auth, on 127.0.0.1 over plain HTTP: grants a pull token to anyone
/// (ES256 JWTs with the signing certificate in x5c, which the registry checks against <see cref="RootCertBundle"/>),
/// and records every request's service, scope and Authorization header, so a test can see who was sent credentials.
/// A service can be denied (401) to make a client fall back to another endpoint.
/// </summary>
public sealed class TokenServer : IAsyncDisposable
{
    public const string Issuer = "criruntime-test-issuer";

    private readonly HttpListener listener = new();
    private readonly ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly X509Certificate2 certificate;
    private readonly List<TokenRequest> requests = [];
    private readonly HashSet<string> denied = [];
    private readonly Task loop;
    private readonly string workDir;

    private TokenServer()
    {
        workDir = Directory.CreateTempSubdirectory("criruntime-tokens-").FullName;
        var request = new CertificateRequest("CN=criruntime test token signer", key, HashAlgorithmName.SHA256);
        certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        RootCertBundle = Path.Combine(workDir, "root.pem");
        File.WriteAllText(RootCertBundle, certificate.ExportCertificatePem());
        for (int attempt = 0; ; attempt++)
        {
            Port = FreePort();
            listener.Prefixes.Clear();
            listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
            try { listener.Start(); break; }
            catch (HttpListenerException) when (attempt < 5) { }
        }
        loop = Task.Run(ServeAsync);
    }

    public static TokenServer Start() => new();

    public int Port { get; }

    public string Realm => $"http://127.0.0.1:{Port}/token";

    /// <summary>PEM of the certificate tokens are signed with: the registry's rootcertbundle.</summary>
    public string RootCertBundle { get; }

    public IReadOnlyList<TokenRequest> Requests
    {
        get { lock (requests) return requests.ToList(); }
    }

    /// <summary>Answers 401 to token requests for <paramref name="service"/> from now on.</summary>
    public void Deny(string service)
    {
        lock (requests) denied.Add(service);
    }

    public void Clear()
    {
        lock (requests) requests.Clear();
    }

    private async Task ServeAsync()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            try { Handle(context); }
            catch (Exception) { context.Response.Abort(); }
        }
    }

    private void Handle(HttpListenerContext context)
    {
        var query = context.Request.QueryString;
        string? service = query["service"], scope = query["scope"];
        bool deny;
        lock (requests)
        {
            requests.Add(new TokenRequest(service, scope, context.Request.Headers["Authorization"]));
            deny = service is not null && denied.Contains(service);
        }
        var response = context.Response;
        if (deny)
        {
            response.StatusCode = 401;
            response.Close();
            return;
        }
        var access = new List<object>();
        foreach (var s in (scope ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = s.Split(':');
            if (parts.Length == 3) access.Add(new { type = parts[0], name = parts[1], actions = parts[2].Split(',') });
        }
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string header = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["typ"] = "JWT", ["alg"] = "ES256", ["x5c"] = new[] { Convert.ToBase64String(certificate.RawData) },
        }));
        string claims = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["iss"] = Issuer, ["sub"] = "", ["aud"] = service ?? "", ["exp"] = now + 300, ["nbf"] = now - 60, ["iat"] = now,
            ["jti"] = Convert.ToHexString(RandomNumberGenerator.GetBytes(8)), ["access"] = access,
        }));
        // JWS ES256 signatures are r||s, which is .NET's default (IEEE P1363) format.
        string signature = Base64Url(key.SignData(Encoding.ASCII.GetBytes(header + "." + claims), HashAlgorithmName.SHA256));
        string token = $"{header}.{claims}.{signature}";
        var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object> { ["token"] = token, ["access_token"] = token, ["expires_in"] = 300 });
        response.ContentType = "application/json";
        response.ContentLength64 = body.Length;
        response.OutputStream.Write(body);
        response.Close();
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static int FreePort()
    {
        using var socket = new TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        listener.Stop();
        listener.Close();
        try { await loop; } catch (Exception) { }
        key.Dispose();
        certificate.Dispose();
        try { Directory.Delete(workDir, recursive: true); } catch (IOException) { }
    }
}
