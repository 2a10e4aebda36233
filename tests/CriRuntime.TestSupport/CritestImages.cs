using System.Text;

namespace CriRuntime.TestSupport;

/// <summary>
/// Stand-ins for every image stock critest v1.26.1 pulls (see ../shared/critools/README.md), built here from
/// Debian packages and pushed under the upstream repository paths, so a registry mirror for registry.k8s.io
/// and gcr.io can serve them offline. Each stand-in holds what the critest specs check and nothing more.
/// </summary>
/// <remarks>
/// The shell is Debian's dynamically linked <c>busybox</c> (package busybox, with the host's glibc from libc6
/// beside it), not busybox-static: the static build has FEATURE_SH_STANDALONE, so its sh runs <c>ls</c> as a
/// built-in applet without exec'ing /bin/ls, and the MaskedPaths spec (mask /bin/ls, expect <c>sh -c ls</c> to
/// fail with "Permission denied") could never pass. Every applet is a hard link to that one binary, so masking one
/// path masks only that applet. <c>pgrep</c> and <c>ipcs</c>, which Debian's busybox lacks, are small scripts over
/// /proc. The nginx, httpd and nonewprivs programs are tiny C files compiled with <c>gcc -static</c>.
/// </remarks>
public static class CritestImages
{
    public const string K8sE2e = "e2e-test-images";
    public const string CriTools = "k8s-staging-cri-tools";

    /// <summary>Where gcc is expected (Debian's gcc + libc6-dev, for <c>-static</c>).</summary>
    public const string Gcc = "/usr/bin/gcc";

    private const string PathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    private const string VariantLabel = "org.criruntime.critest.variant";

    // Roughly what the upstream busybox image carries; the specs need root, nobody (RunAsUserName) and
    // www-data = 33 (the username images).
    private const string Passwd =
        "root:x:0:0:root:/root:/bin/sh\n" +
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n" +
        "bin:x:2:2:bin:/bin:/bin/false\n" +
        "sys:x:3:3:sys:/dev:/bin/false\n" +
        "www-data:x:33:33:www-data:/var/www:/bin/false\n" +
        "nobody:x:65534:65534:nobody:/home:/bin/false\n";

    private const string Group =
        "root:x:0:\n" +
        "daemon:x:1:\n" +
        "bin:x:2:\n" +
        "sys:x:3:\n" +
        "www-data:x:33:\n" +
        "users:x:100:\n" +
        "nogroup:x:65534:\n";

    // pgrep PATTERN: the pids whose process name (comm) matches the extended regex, like procps' pgrep
    // without options; exit 1 when none does. Its own helpers are named pgrep, cat or grep.
    private const string PgrepScript = """
        #!/bin/sh
        # pgrep PATTERN (critest stand-in; Debian's busybox has no pgrep)
        [ $# -eq 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
        self=$$
        found=1
        for dir in /proc/[0-9]*; do
          pid=${dir#/proc/}
          [ "$pid" = "$self" ] && continue
          name=$(cat "$dir/comm" 2>/dev/null) || continue
          if echo "$name" | grep -Eq -- "$1"; then echo "$pid"; found=0; fi
        done
        exit $found

        """;

    // ipcs [-m]: System V shared memory segments from /proc/sysvipc/shm in util-linux's layout (the
    // HostIpc specs look for a segment id made on the host).
    private const string IpcsScript = """
        #!/bin/sh
        # ipcs [-m] (critest stand-in; Debian's busybox has no ipcs): shared memory segments only
        echo "------ Shared Memory Segments --------"
        echo "key        shmid      owner      perms      bytes      nattch     status"
        [ -r /proc/sysvipc/shm ] || exit 0
        awk 'NR > 1 { printf "0x%08x %-10s %-10s %-10s %-10s %-10s\n", $1, $2, $8, $3, $4, $7 }' /proc/sysvipc/shm

        """;

    /// <summary>One reference to push: repository path and tag on the local registry, and what goes there.</summary>
    public sealed record Item(string Repository, string Tag, BuiltImage? Image, BuiltIndex? Index);

    /// <summary>Builds every stand-in. <paramref name="busyboxPath"/> is Debian's dynamically linked busybox
    /// (from package busybox, e.g. unpacked with apt-get download + dpkg-deb -x).</summary>
    public static async Task<IReadOnlyList<Item>> BuildAsync(string busyboxPath, CancellationToken ct = default)
    {
        var workDir = Directory.CreateTempSubdirectory("criruntime-critest-images-").FullName;
        try
        {
            var basics = await BaseLayerAsync(busyboxPath, ct);
            var nginx = await CompileAsync(workDir, "webserver.c", "nginx", ct,
                ("SELF", "/usr/sbin/nginx"), ("PORT", "80"), ("DOCROOT", "/usr/share/nginx/html"),
                ("TITLE", "nginx: master process nginx -g daemon off;"), ("PID_FILE", "/var/run/nginx.pid"));
            var hostnetNginx = await CompileAsync(workDir, "webserver.c", "nginx-12003", ct,
                ("SELF", "/usr/sbin/nginx"), ("PORT", "12003"), ("DOCROOT", "/usr/share/nginx/html"),
                ("TITLE", "nginx: master process nginx -g daemon off;"), ("PID_FILE", "/var/run/nginx.pid"));
            var httpd = await CompileAsync(workDir, "webserver.c", "httpd-foreground", ct,
                ("SELF", "/usr/local/bin/httpd-foreground"), ("PORT", "80"), ("DOCROOT", "/usr/local/apache2/htdocs"),
                ("BANNER", "[core:notice] [pid 1] AH00094: Command line: 'httpd -D FOREGROUND' (critest stand-in: busybox httpd)"));
            var nnp = await CompileAsync(workDir, "nnp.c", "nnp", ct);

            ImageBuilder Busybox(string variant, Platform? platform = null) => new ImageBuilder()
                .WithPlatform(platform ?? Platform.Host)
                .AddLayer(basics, "Debian busybox (applets as hard links), glibc, /etc")
                .WithEnv("PATH", PathEnv)
                .WithEnv("CRITEST_STAND_IN", variant)
                .WithLabel(VariantLabel, variant)
                .WithCmd("sh");
            BuiltIndex TwoPlatforms(string variant) => BuiltIndex.Create(
                [Busybox(variant, Platform.LinuxAmd64).Build(), Busybox(variant, Platform.LinuxArm64).Build()]);
            BuiltImage WithUser(string variant, string user) => Busybox(variant).WithUser(user).Build();

            const string nginxPage = "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n" +
                "<body><h1>Welcome to nginx!</h1><p>critest stand-in: busybox httpd.</p></body></html>\n";
            BuiltImage Nginx(string variant, byte[] program) => Busybox(variant)
                .AddLayer(new LayerBuilder()
                    .AddDirectory("usr/share/nginx").AddDirectory("usr/share/nginx/html")
                    .AddFile("usr/share/nginx/html/index.html", nginxPage)
                    .AddFile("usr/sbin/nginx", program, LayerBuilder.ExecMode), "nginx stand-in")
                .WithCmd("nginx", "-g", "daemon off;")
                .WithStopSignal("SIGQUIT")
                .Build();

            var items = new List<Item>
            {
                new(K8sE2e + "/busybox", "1.29-2", null, TwoPlatforms("busybox")),
                new(K8sE2e + "/nginx", "1.14-2", Nginx("nginx", nginx), null),
                new(CriTools + "/hostnet-nginx-" + Platform.Host.Architecture, "latest", Nginx("hostnet-nginx", hostnetNginx), null),
                new(K8sE2e + "/httpd", "2.4.39-4", Busybox("httpd")
                    .AddLayer(new LayerBuilder()
                        .AddDirectory("usr/local/apache2").AddDirectory("usr/local/apache2/htdocs")
                        .AddFile("usr/local/apache2/htdocs/index.html", "<html><body><h1>It works!</h1></body></html>\n")
                        .AddFile("usr/local/bin/httpd-foreground", httpd, LayerBuilder.ExecMode), "httpd stand-in")
                    .WithCmd("httpd-foreground")
                    .Build(), null),
                new(K8sE2e + "/nonewprivs", "1.3", Busybox("nonewprivs")
                    .AddLayer(new LayerBuilder()
                        .AddFile("usr/local/bin/nnp", nnp, LayerBuilder.Oct("4755")), "set-uid root nnp")
                    .WithCmd("/usr/local/bin/nnp")
                    .Build(), null),
                new(CriTools + "/test-image-user-uid", "latest", WithUser("user-uid", "1002"), null),
                new(CriTools + "/test-image-user-username", "latest", WithUser("user-username", "www-data"), null),
                new(CriTools + "/test-image-user-uid-group", "latest", WithUser("user-uid-group", "1003:1004"), null),
                new(CriTools + "/test-image-user-username-group", "latest", WithUser("user-username-group", "www-data:1004"), null),
                new(CriTools + "/test-image-predefined-group", "latest", Busybox("predefined-group")
                    .AddLayer(new LayerBuilder()
                        .AddFile("etc/passwd", Passwd + "default-user:x:1000:1000:default-user:/home/default-user:/bin/sh\n")
                        .AddFile("etc/group", Group + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"),
                        "default-user (1000) in group-defined-in-image (50000)")
                    .WithUser("1000")
                    .Build(), null),
                new(CriTools + "/test-image-1", "latest", Busybox("test-image-1").Build(), null),
                new(CriTools + "/test-image-2", "latest", Busybox("test-image-2").Build(), null),
                new(CriTools + "/test-image-3", "latest", Busybox("test-image-3").Build(), null),
                new(CriTools + "/test-image-latest", "latest", Busybox("test-image-latest").Build(), null),
                new(CriTools + "/test-image-tag", "test", Busybox("test-image-tag-test").Build(), null),
                new(CriTools + "/test-image-tag", "all", Busybox("test-image-tag-all").Build(), null),
            };
            var tags = TwoPlatforms("test-image-tags");
            foreach (var tag in new[] { "1", "2", "3" })
                items.Add(new(CriTools + "/test-image-tags", tag, null, tags));
            return items;
        }
        finally
        {
            try { Directory.Delete(workDir, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Builds and pushes every stand-in to a plain-HTTP registry.</summary>
    public static async Task<IReadOnlyList<PushResult>> PushAsync(string registryHost, string busyboxPath, CancellationToken ct = default)
    {
        var results = new List<PushResult>();
        foreach (var item in await BuildAsync(busyboxPath, ct))
        {
            results.Add(item.Index is not null
                ? await RegistryPusher.PushAsync(registryHost, item.Repository, item.Tag, item.Index, null, ct)
                : await RegistryPusher.PushAsync(registryHost, item.Repository, item.Tag, item.Image!, null, ct));
        }
        return results;
    }

    /// <summary>The rootfs every stand-in shares: busybox with one hard link per applet, the glibc files it
    /// loads (at the paths ldd names), pgrep and ipcs scripts, /etc/passwd, /etc/group, /etc/nsswitch.conf.</summary>
    private static async Task<BuiltLayer> BaseLayerAsync(string busyboxPath, CancellationToken ct)
    {
        if (!File.Exists(busyboxPath))
            throw new InvalidOperationException(
                $"{busyboxPath} not found: the critest images need Debian's dynamically linked busybox (package busybox; " +
                "hack/critest.sh unpacks it with apt-get download and dpkg-deb -x).");
        var list = await HostCommand.RunAsync(busyboxPath, ["--list"], cancellationToken: ct);
        if (list.ExitCode != 0) throw new InvalidOperationException($"cannot list busybox applets: {list}");
        var applets = list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(a => a is not "busybox" && !a.Contains('/')).ToHashSet(StringComparer.Ordinal);
        foreach (var needed in new[] { "sh", "ls", "ping", "brctl", "netstat", "pidof", "httpd", "top", "mount", "grep", "awk" })
            if (!applets.Contains(needed))
                throw new InvalidOperationException($"{busyboxPath} has no '{needed}' applet, which critest or the stand-ins need");
        if (applets.Contains("pgrep") || applets.Contains("ipcs"))
            throw new InvalidOperationException($"{busyboxPath} has its own pgrep/ipcs now; drop the stand-in scripts");

        var libraries = await SharedLibrariesAsync(busyboxPath, ct);
        var l = new LayerBuilder();
        var dirs = new SortedSet<string>(StringComparer.Ordinal)
        {
            "bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin",
            "usr/share", "var", "var/run", "var/www",
        };
        foreach (var lib in libraries)
            for (var dir = Path.GetDirectoryName(lib.TrimStart('/')); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
                dirs.Add(dir);
        foreach (var dir in dirs) l.AddDirectory(dir);
        l.AddDirectory("root", LayerBuilder.Oct("700"));
        l.AddDirectory("tmp", LayerBuilder.Oct("1777"));
        l.AddFile("bin/busybox", await File.ReadAllBytesAsync(busyboxPath, ct), LayerBuilder.ExecMode);
        foreach (var applet in applets.Order(StringComparer.Ordinal))
            l.AddHardlink("bin/" + applet, "bin/busybox", LayerBuilder.ExecMode);
        l.AddFile("bin/pgrep", PgrepScript.ReplaceLineEndings("\n"), LayerBuilder.ExecMode);
        l.AddFile("bin/ipcs", IpcsScript.ReplaceLineEndings("\n"), LayerBuilder.ExecMode);
        foreach (var lib in libraries)
            l.AddFile(lib.TrimStart('/'), await File.ReadAllBytesAsync(lib, ct), LayerBuilder.ExecMode);
        l.AddFile("etc/passwd", Passwd);
        l.AddFile("etc/group", Group);
        l.AddFile("etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n");
        return l.Build();
    }

    // The files ldd says the binary loads, the dynamic loader included (its line has no "=>").
    private static async Task<IReadOnlyList<string>> SharedLibrariesAsync(string binary, CancellationToken ct)
    {
        var ldd = await HostCommand.RunAsync("/usr/bin/ldd", [binary], cancellationToken: ct);
        if (ldd.ExitCode != 0) throw new InvalidOperationException($"ldd failed: {ldd}");
        var paths = new List<string>();
        foreach (var raw in ldd.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var arrow = raw.IndexOf("=>", StringComparison.Ordinal);
            var rest = arrow >= 0 ? raw[(arrow + 2)..].Trim() : raw;
            var space = rest.IndexOf(' ');
            var path = space >= 0 ? rest[..space] : rest;
            if (path.StartsWith('/')) paths.Add(path);
            else if (arrow >= 0) throw new InvalidOperationException($"ldd cannot resolve a library of {binary}: {raw}");
        }
        if (paths.Count == 0) throw new InvalidOperationException($"{binary} loads no shared libraries: is it the dynamically linked busybox?");
        return paths;
    }

    // gcc -static with string macros; the sources sit in CritestImages/ beside this assembly.
    private static async Task<byte[]> CompileAsync(string workDir, string source, string output, CancellationToken ct,
        params (string Name, string Value)[] defines)
    {
        if (!File.Exists(Gcc))
            throw new InvalidOperationException($"{Gcc} not found: the critest images compile small static helpers; run hack/install-deps.sh (gcc, libc6-dev).");
        var sourcePath = Path.Combine(AppContext.BaseDirectory, "CritestImages", source);
        var outputPath = Path.Combine(workDir, output);
        var args = new List<string> { "-static", "-O2", "-Wall", "-Werror", "-o", outputPath };
        foreach (var (name, value) in defines)
        {
            if (value.Contains('"') || value.Contains('\\')) throw new ArgumentException($"macro {name} may not hold quotes or backslashes");
            args.Add($"-D{name}=\"{value}\"");
        }
        args.Add(sourcePath);
        var gcc = await HostCommand.RunAsync(Gcc, args, cancellationToken: ct);
        if (gcc.ExitCode != 0) throw new InvalidOperationException($"compiling {source} failed: {gcc}");
        return await File.ReadAllBytesAsync(outputPath, ct);
    }
}
