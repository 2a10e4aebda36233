using System.Security.Cryptography;
using System.Text.Json;

namespace CriRuntime.TestSupport;

/// <summary>What <see cref="UmociImage.BuildAndPushAsync"/> put into the registry.</summary>
/// <param name="Reference">"host/repo:tag".</param>
/// <param name="LayoutManifestDigest">The manifest digest umoci wrote into its OCI layout.</param>
/// <param name="PushedManifestDigest">The digest of the manifest the registry serves for the tag after skopeo's push.</param>
/// <param name="PushedManifestMediaType">Its mediaType: OCI, or Docker schema 2 if skopeo converted it.</param>
/// <param name="PushedManifestJson">The manifest the registry serves.</param>
/// <param name="LayerTarEndings">Per layer of umoci's manifest: its uncompressed size and whether the tar stream ends
/// with the two zero blocks of an end-of-archive marker (tar writers differ here).</param>
public sealed record UmociPushResult(string Reference, string LayoutManifestDigest, string PushedManifestDigest,
    string PushedManifestMediaType, string PushedManifestJson, IReadOnlyList<string> LayerTarEndings)
{
    /// <summary>True if skopeo pushed umoci's manifest byte for byte (no conversion to another schema).</summary>
    public bool PushedUnchanged => PushedManifestDigest == LayoutManifestDigest;
}

/// <summary>
/// An image made by tools other than the project's own builder: an OCI layout built with umoci (whose Go
/// tar writer lays out layers differently from <see cref="LayerBuilder"/>), pushed by skopeo. Both are
/// Debian packages (hack/install-deps.sh installs them).
/// </summary>
public static class UmociImage
{
    public const string OciManifestMediaType = "application/vnd.oci.image.manifest.v1+json";
    public const string DockerManifestMediaType = "application/vnd.docker.distribution.manifest.v2+json";

    /// <summary>Applets that get a /bin symlink to busybox in the umoci image.</summary>
    public static readonly IReadOnlyList<string> Applets =
    [
        "sh", "ls", "cat", "echo", "sleep", "true", "false", "env", "hostname", "id", "top", "ps", "printf", "test",
    ];

    /// <summary>Label umoci's config carries, so a test can see the config it made is what the runtime reports.</summary>
    public const string BuiltByLabel = "org.criruntime.test.built-by";

    /// <summary>
    /// Builds a busybox image with umoci in <paramref name="workDir"/> (layout, bundle) and pushes it with
    /// skopeo to <paramref name="registryHost"/> (plain HTTP on loopback) as repository:tag. Its config: Cmd
    /// <paramref name="cmd"/>, PATH set, label <see cref="BuiltByLabel"/>=umoci.
    /// </summary>
    public static async Task<UmociPushResult> BuildAndPushAsync(string registryHost, string repository, string tag,
        string workDir, IReadOnlyList<string> cmd, CancellationToken cancellationToken = default)
    {
        string layout = Path.Combine(workDir, "oci");
        string bundle = Path.Combine(workDir, "bundle");
        string image = $"{layout}:{tag}";

        await RunAsync("umoci", ["init", "--layout", layout], cancellationToken);
        await RunAsync("umoci", ["new", "--image", image], cancellationToken);
        await RunAsync("umoci", ["unpack", "--image", image, bundle], cancellationToken);
        WriteBusyboxRootfs(Path.Combine(bundle, "rootfs"));
        await RunAsync("umoci", ["repack", "--image", image, bundle], cancellationToken);

        var config = new List<string> { "config", "--image", image, "--config.env", "PATH=" + TestImages.PathEnv,
            "--config.label", BuiltByLabel + "=umoci" };
        foreach (var arg in cmd) config.AddRange(["--config.cmd", arg]);
        await RunAsync("umoci", config, cancellationToken);

        string layoutDigest = LayoutManifestDigest(layout, tag);
        string reference = $"{registryHost}/{repository}:{tag}";
        // --insecure-policy: the host's /etc/containers/policy.json is not ours to rely on; this is a local
        // test push of an image made just now. --dest-tls-verify=false lets skopeo speak plain HTTP to loopback.
        await RunAsync("skopeo", ["--insecure-policy", "copy", "--dest-tls-verify=false", $"oci:{image}", $"docker://{reference}"], cancellationToken);

        // What the registry now serves for the tag, asked for in either schema, as a puller would.
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://{registryHost}/v2/{repository}/manifests/{tag}");
        request.Headers.Accept.ParseAdd(OciManifestMediaType);
        request.Headers.Accept.ParseAdd(DockerManifestMediaType);
        using var response = await http.SendAsync(request, cancellationToken);
        byte[] body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"after skopeo's push, GET {request.RequestUri} answered {(int)response.StatusCode}: {System.Text.Encoding.UTF8.GetString(body)}");
        string manifest = System.Text.Encoding.UTF8.GetString(body);
        string pushedDigest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(body));
        using var doc = JsonDocument.Parse(body);
        string mediaType = doc.RootElement.TryGetProperty("mediaType", out var mt) ? mt.GetString() ?? "" : response.Content.Headers.ContentType?.MediaType ?? "";
        return new UmociPushResult(reference, layoutDigest, pushedDigest, mediaType, manifest, LayerTarEndings(layout, layoutDigest));
    }

    // Same contents as the standard busybox image (TestImages.BusyboxLayer), written as plain files for umoci to diff.
    private static void WriteBusyboxRootfs(string rootfs)
    {
        var bin = Directory.CreateDirectory(Path.Combine(rootfs, "bin")).FullName;
        string busybox = Path.Combine(bin, "busybox");
        File.WriteAllBytes(busybox, TestImages.BusyboxBytes);
        File.SetUnixFileMode(busybox, (UnixFileMode)Convert.ToInt32("755", 8));
        foreach (var applet in Applets)
            File.CreateSymbolicLink(Path.Combine(bin, applet), "busybox");
        var etc = Directory.CreateDirectory(Path.Combine(rootfs, "etc")).FullName;
        File.WriteAllText(Path.Combine(etc, "passwd"),
            "root:x:0:0:root:/root:/bin/sh\n" +
            $"app:x:{TestImages.AppUid}:{TestImages.AppUid}:app:/home/app:/bin/sh\n" +
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
        File.WriteAllText(Path.Combine(etc, "group"),
            "root:x:0:\n" +
            $"app:x:{TestImages.AppUid}:\n" +
            "nogroup:x:65534:\n");
        var tmp = Directory.CreateDirectory(Path.Combine(rootfs, "tmp")).FullName;
        File.SetUnixFileMode(tmp, (UnixFileMode)Convert.ToInt32("1777", 8));
        Directory.CreateDirectory(Path.Combine(rootfs, "root"));
    }

    // index.json names the tagged manifest by the org.opencontainers.image.ref.name annotation.
    private static string LayoutManifestDigest(string layout, string tag)
    {
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(layout, "index.json")));
        foreach (var m in index.RootElement.GetProperty("manifests").EnumerateArray())
            if (m.TryGetProperty("annotations", out var a) && a.TryGetProperty("org.opencontainers.image.ref.name", out var name) && name.GetString() == tag)
                return m.GetProperty("digest").GetString()!;
        throw new InvalidOperationException($"umoci's {layout}/index.json names no manifest for tag {tag}");
    }

    private static List<string> LayerTarEndings(string layout, string manifestDigest)
    {
        string Blob(string digest) => Path.Combine(layout, "blobs", "sha256", digest["sha256:".Length..]);
        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Blob(manifestDigest)));
        var endings = new List<string>();
        foreach (var layer in manifest.RootElement.GetProperty("layers").EnumerateArray())
        {
            string digest = layer.GetProperty("digest").GetString()!;
            using var file = File.OpenRead(Blob(digest));
            using Stream tar = layer.GetProperty("mediaType").GetString()!.EndsWith("+gzip", StringComparison.Ordinal)
                ? new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionMode.Decompress)
                : file;
            // Keep only the last 1024 bytes seen while reading the whole stream.
            var tail = new byte[1024];
            var buffer = new byte[81920];
            long total = 0;
            int n;
            while ((n = tar.Read(buffer)) > 0)
            {
                if (n >= tail.Length) Array.Copy(buffer, n - tail.Length, tail, 0, tail.Length);
                else
                {
                    Array.Copy(tail, n, tail, 0, tail.Length - n);
                    Array.Copy(buffer, 0, tail, tail.Length - n, n);
                }
                total += n;
            }
            bool marker = total >= 1024 && tail.All(b => b == 0);
            endings.Add($"{digest}: {total} bytes of tar, {(marker ? "ends with" : "WITHOUT")} the two zero end-of-archive blocks");
        }
        return endings;
    }

    private static async Task<HostCommand.Result> RunAsync(string tool, IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        HostCommand.Result run;
        try
        {
            run = await HostCommand.RunAsync(tool, args, cancellationToken: cancellationToken);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"cannot run {tool} ({e.Message}): install Debian's umoci and skopeo (hack/install-deps.sh)", e);
        }
        if (run.ExitCode != 0) throw new InvalidOperationException(run.ToString());
        return run;
    }
}
