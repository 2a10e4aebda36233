using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CriRuntime.TestSupport;

/// <summary>Username and password for registry basic auth.</summary>
public sealed record RegistryCredentials(string Username, string Password);

public sealed class RegistryServerOptions
{
    /// <summary>When both are set, the registry requires htpasswd basic auth (works over plain HTTP
    /// with Debian's registry 2.8; its docs only warn to use TLS).</summary>
    public string? Username { get; set; }
    public string? Password { get; set; }
    public string RegistryBinary { get; set; } = "/usr/bin/docker-registry";
    public string HtpasswdBinary { get; set; } = "/usr/bin/htpasswd";
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>A fixed port instead of a free one (no retry on conflict then).</summary>
    public int? Port { get; set; }
    /// <summary>Keep the temp dir on dispose (for post-mortem of a failing test).</summary>
    public bool KeepWorkDir { get; set; }
    /// <summary>Serve another registry's storage (read it; pushing stays with that registry) instead of a fresh one.</summary>
    public string? StorageDir { get; set; }
    /// <summary>Require bearer tokens from this token server (distribution's token auth).</summary>
    public TokenServer? TokenAuth { get; set; }
    /// <summary>The service name this registry announces in its challenge (with <see cref="TokenAuth"/>).</summary>
    public string TokenService { get; set; } = "registry-test";
}

/// <summary>
/// Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a free port and filesystem storage in a
/// fresh temp dir; stopped, and its dir deleted, on dispose.
/// </summary>
public sealed class RegistryServer : IAsyncDisposable
{
    private const int MaxPortAttempts = 5;
    private readonly Process _process;
    private readonly bool _keepWorkDir;
    private int _disposed;

    private RegistryServer(Process process, string workDir, int port, RegistryCredentials? credentials, bool keepWorkDir)
    {
        _process = process;
        WorkDir = workDir;
        Port = port;
        Credentials = credentials;
        _keepWorkDir = keepWorkDir;
    }

    /// <summary>"127.0.0.1:PORT", as used in image references.</summary>
    public string Host => $"127.0.0.1:{Port}";
    public int Port { get; }
    public Uri BaseUri => new($"http://{Host}/");
    /// <summary>Temp dir holding config.yml, htpasswd, registry.log and storage/.</summary>
    public string WorkDir { get; }
    /// <summary>The filesystem driver's rootdirectory.</summary>
    public string StorageDir => Path.Combine(WorkDir, "storage");
    public string LogPath => Path.Combine(WorkDir, "registry.log");
    public string ConfigPath => Path.Combine(WorkDir, "config.yml");
    public RegistryCredentials? Credentials { get; }
    public int ProcessId => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>Path of a blob's data file in the filesystem driver's layout
    /// (docker/registry/v2/blobs/sha256/&lt;2 hex&gt;/&lt;hex&gt;/data). Overwrite it to provoke a digest mismatch.</summary>
    public string BlobDataPath(string digest)
    {
        var hex = Digests.Hex(digest);
        return Path.Combine(StorageDir, "docker", "registry", "v2", "blobs", "sha256", hex[..2], hex, "data");
    }

    /// <summary>Last lines of the registry's log (stdout and stderr).</summary>
    public string LogTail(int lines = 40) => ReadTail(LogPath, lines);

    public static async Task<RegistryServer> StartAsync(RegistryServerOptions? options = null, CancellationToken ct = default)
    {
        options ??= new RegistryServerOptions();
        if (!File.Exists(options.RegistryBinary))
            throw new InvalidOperationException(
                $"{options.RegistryBinary} not found: install Debian's docker-registry with hack/install-deps.sh (as root).");
        if ((options.Username is null) != (options.Password is null))
            throw new ArgumentException("set both Username and Password, or neither");

        var workDir = Directory.CreateTempSubdirectory("criruntime-registry-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(workDir, "storage"));
            RegistryCredentials? credentials = null;
            string? htpasswdPath = null;
            if (options.Username is not null)
            {
                credentials = new RegistryCredentials(options.Username, options.Password!);
                htpasswdPath = Path.Combine(workDir, "htpasswd");
                await WriteHtpasswdAsync(options.HtpasswdBinary, credentials, htpasswdPath, ct);
            }

            Exception? last = null;
            var attempts = options.Port is null ? MaxPortAttempts : 1;
            for (var attempt = 1; attempt <= attempts; attempt++)
            {
                var port = options.Port ?? FreePort();
                var logPath = Path.Combine(workDir, "registry.log");
                var configPath = Path.Combine(workDir, "config.yml");
                await File.WriteAllTextAsync(configPath, Config(options.StorageDir ?? Path.Combine(workDir, "storage"), port, htpasswdPath), ct);
                if (options.TokenAuth is { } tokens)
                    await File.AppendAllTextAsync(configPath, $$"""
                        auth:
                          token:
                            realm: {{tokens.Realm}}
                            service: {{options.TokenService}}
                            issuer: {{TokenServer.Issuer}}
                            rootcertbundle: {{tokens.RootCertBundle}}

                        """, ct);
                File.AppendAllText(logPath, $"--- criruntime-testsupport: starting on port {port} (attempt {attempt})\n");

                // sh only sets up the redirection, then exec's the registry (same pid), so the log gets
                // everything even if the registry dies before we read anything.
                var psi = new ProcessStartInfo("/bin/sh")
                {
                    UseShellExecute = false,
                    WorkingDirectory = workDir,
                };
                foreach (var a in new[] { "-c", "exec \"$0\" serve \"$1\" >>\"$2\" 2>&1 </dev/null", options.RegistryBinary, configPath, logPath })
                    psi.ArgumentList.Add(a);
                var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start docker-registry");
                var server = new RegistryServer(process, workDir, port, credentials, options.KeepWorkDir);
                try
                {
                    await server.WaitReadyAsync(options.StartTimeout, ct);
                    return server;
                }
                catch (RegistryStartException e) when (e.PortConflict && attempt < attempts)
                {
                    last = e;
                    await server.StopProcessAsync();
                }
                catch
                {
                    await server.StopProcessAsync();
                    throw;
                }
            }
            throw last ?? new InvalidOperationException("docker-registry did not start");
        }
        catch
        {
            if (!options.KeepWorkDir) TryDelete(workDir);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await StopProcessAsync();
        if (!_keepWorkDir) TryDelete(WorkDir);
    }

    private async Task StopProcessAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: false);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await _process.WaitForExitAsync(cts.Token);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        finally
        {
            _process.Dispose();
        }
    }

    private async Task WaitReadyAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        string? lastError = null;
        while (deadline.Elapsed < timeout)
        {
            ct.ThrowIfCancellationRequested();
            if (_process.HasExited)
            {
                var tail = LogTail();
                throw new RegistryStartException(
                    $"docker-registry exited with code {_process.ExitCode} before answering on {Host}.\n--- log tail ({LogPath}):\n{tail}",
                    tail.Contains("address already in use", StringComparison.OrdinalIgnoreCase));
            }
            // Only trust /v2/ once our own process logged that it listens: with a fixed port, another
            // registry already on it would answer too.
            if (!LogTail(200).Contains($"listening on {Host}", StringComparison.Ordinal))
            {
                lastError = "not listening yet";
                await Task.Delay(100, ct);
                continue;
            }
            try
            {
                using var resp = await http.GetAsync(new Uri(BaseUri, "v2/"), ct);
                // 401 is "up, wants credentials"; anything else on /v2/ means something else owns the port.
                if (resp.StatusCode is HttpStatusCode.OK or HttpStatusCode.Unauthorized &&
                    resp.Headers.Contains("Docker-Distribution-Api-Version"))
                    return;
                lastError = $"GET /v2/ answered {(int)resp.StatusCode}";
            }
            catch (HttpRequestException e)
            {
                lastError = e.Message;
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                lastError = "GET /v2/ timed out";
            }
            await Task.Delay(100, ct);
        }
        throw new RegistryStartException(
            $"docker-registry did not answer GET http://{Host}/v2/ within {timeout.TotalSeconds:0}s ({lastError}).\n--- log tail ({LogPath}):\n{LogTail()}",
            portConflict: false);
    }

    private static async Task WriteHtpasswdAsync(string htpasswd, RegistryCredentials c, string path, CancellationToken ct)
    {
        if (!File.Exists(htpasswd))
            throw new InvalidOperationException($"{htpasswd} not found: install apache2-utils with hack/install-deps.sh (as root).");
        // -B: bcrypt, the only hash distribution accepts; -n: print instead of editing a file.
        var psi = new ProcessStartInfo(htpasswd)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { "-Bbn", c.Username, c.Password }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start htpasswd");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"htpasswd -Bbn failed ({p.ExitCode}): {await stderr}");
        await File.WriteAllTextAsync(path, (await stdout).Trim() + "\n", ct);
    }

    // No blobdescriptor cache: a test that corrupts a blob file must see the registry serve the corrupt bytes.
    private static string Config(string storageDir, int port, string? htpasswdPath)
    {
        var sb = new StringBuilder();
        sb.Append($"""
            version: 0.1
            log:
              level: info
              accesslog:
                disabled: false
            storage:
              filesystem:
                rootdirectory: {storageDir}
              delete:
                enabled: true
              maintenance:
                uploadpurging:
                  enabled: false
            http:
              addr: 127.0.0.1:{port}
              secret: criruntime-test-{Guid.NewGuid():N}
              headers:
                X-Content-Type-Options: [nosniff]

            """);
        if (htpasswdPath is not null)
            sb.Append($"""
                auth:
                  htpasswd:
                    realm: criruntime-test
                    path: {htpasswdPath}

                """);
        return sb.ToString();
    }

    // Bind port 0, read the port, release it. Racy by nature, hence the retry on "address already in use".
    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    internal static string ReadTail(string path, int lines)
    {
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            const int maxBytes = 64 * 1024;
            if (fs.Length > maxBytes) fs.Seek(-maxBytes, SeekOrigin.End);
            using var reader = new StreamReader(fs);
            var all = reader.ReadToEnd().Split('\n');
            return string.Join('\n', all.TakeLast(lines + 1)).TrimEnd();
        }
        catch (IOException e)
        {
            return $"(no log: {e.Message})";
        }
    }

    private static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private sealed class RegistryStartException(string message, bool portConflict) : InvalidOperationException(message)
    {
        public bool PortConflict { get; } = portConflict;
    }
}
