using CriRuntime.TestSupport;

// Small CLI over the test-support library, used by hack/test-images.sh.
const string Usage = """
    Usage: CriRuntime.TestSupport <command> [options]

    Commands:
      push-test-images --registry HOST:PORT [--username U --password P] [--large-mib N]
          Builds the standard test images from Debian's busybox-static and pushes them over plain HTTP:
            busybox:latest  busybox:1.35  busybox:nonroot  busybox:docker  library/busybox:latest
            multilayer:latest  multiarch:latest (OCI index)  multiarch:docker (Docker manifest list)
            malicious:dotdot  malicious:hardlink-out  malicious:symlink-write-through  malicious:absolute-climb
            large:latest (only with --large-mib N > 0)
          Prints one line per pushed reference: REFERENCE<TAB>DIGEST<TAB>MEDIATYPE.
      push-bench-images --registry HOST:PORT [--large-mib N] [--layers N] [--extra-mib N]
          Builds and pushes the images of hack/bench.sh: bench/busybox:latest, bench/pause:latest (catatonit -P),
          bench/large:latest (busybox + N MiB of random layers, default 128 MiB in 4 layers) and
          bench/shared:latest (the same layers plus one of --extra-mib MiB, default 16). Same output format.
      push-critest-images --registry HOST:PORT --busybox PATH
          Builds stand-ins for every image stock critest v1.26.1 pulls and pushes them under the upstream
          repository paths (e2e-test-images/busybox:1.29-2, k8s-staging-cri-tools/test-image-1:latest, ...), for a
          registry mirror of registry.k8s.io and gcr.io. PATH is Debian's dynamically linked busybox (package
          busybox); needs gcc and libc6-dev (gcc -static). Same output format. Used by hack/critest.sh.
      help, --help, -h
          This text.
    """;

if (args.Length == 0 || args[0] is "help" or "--help" or "-h")
{
    Console.WriteLine(Usage);
    return args.Length == 0 ? 2 : 0;
}

try
{
    switch (args[0])
    {
        case "push-test-images":
            return await PushTestImages(args[1..]);
        case "push-bench-images":
            return await PushBenchImages(args[1..]);
        case "push-critest-images":
            return await PushCritestImages(args[1..]);
        default:
            Console.Error.WriteLine($"error: unknown command '{args[0]}'\n");
            Console.Error.WriteLine(Usage);
            return 2;
    }
}
catch (UsageException e)
{
    Console.Error.WriteLine($"error: {e.Message}\n");
    Console.Error.WriteLine(Usage);
    return 2;
}
catch (Exception e) when (e is InvalidOperationException or RegistryPushException or HttpRequestException or IOException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

static async Task<int> PushTestImages(string[] args)
{
    string? registry = null, username = null, password = null;
    var largeMiB = 0;
    for (var i = 0; i < args.Length; i++)
    {
        string Value() => i + 1 < args.Length ? args[++i] : throw new UsageException($"{args[i]} needs a value");
        switch (args[i])
        {
            case "--registry": registry = Value(); break;
            case "--username": username = Value(); break;
            case "--password": password = Value(); break;
            case "--large-mib":
                if (!int.TryParse(Value(), out largeMiB) || largeMiB < 0) throw new UsageException("--large-mib needs a number >= 0");
                break;
            case "--help" or "-h":
                Console.WriteLine(Usage);
                return 0;
            default: throw new UsageException($"unknown option '{args[i]}'");
        }
    }
    if (registry is null) throw new UsageException("--registry HOST:PORT is required");
    if ((username is null) != (password is null)) throw new UsageException("give both --username and --password, or neither");
    var credentials = username is null ? null : new RegistryCredentials(username, password!);

    return await PushAndReport(registry, ct => RegistryPusher.PushStandardTestImagesAsync(registry, credentials, largeMiB, ct));
}

static async Task<int> PushBenchImages(string[] args)
{
    string? registry = null;
    int largeMiB = 128, layers = 4, extraMiB = 16;
    for (var i = 0; i < args.Length; i++)
    {
        string Value() => i + 1 < args.Length ? args[++i] : throw new UsageException($"{args[i]} needs a value");
        int Positive(string name) => int.TryParse(Value(), out var n) && n > 0 ? n : throw new UsageException($"{name} needs a number > 0");
        switch (args[i])
        {
            case "--registry": registry = Value(); break;
            case "--large-mib": largeMiB = Positive("--large-mib"); break;
            case "--layers": layers = Positive("--layers"); break;
            case "--extra-mib": extraMiB = Positive("--extra-mib"); break;
            default: throw new UsageException($"unknown option '{args[i]}'");
        }
    }
    if (registry is null) throw new UsageException("--registry HOST:PORT is required");

    return await PushAndReport(registry, ct => BenchImages.PushAsync(registry, largeMiB, layers, extraMiB, ct));
}

static async Task<int> PushCritestImages(string[] args)
{
    string? registry = null, busybox = null;
    for (var i = 0; i < args.Length; i++)
    {
        string Value() => i + 1 < args.Length ? args[++i] : throw new UsageException($"{args[i]} needs a value");
        switch (args[i])
        {
            case "--registry": registry = Value(); break;
            case "--busybox": busybox = Value(); break;
            default: throw new UsageException($"unknown option '{args[i]}'");
        }
    }
    if (registry is null) throw new UsageException("--registry HOST:PORT is required");
    if (busybox is null) throw new UsageException("--busybox PATH (Debian's dynamically linked busybox) is required");

    return await PushAndReport(registry, ct => CritestImages.PushAsync(registry, busybox, ct));
}

// Pushes, then prints one "reference<TAB>digest<TAB>media type" line per pushed reference.
static async Task<int> PushAndReport(string registry, Func<CancellationToken, Task<IReadOnlyList<PushResult>>> push)
{
    using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(10));
    IReadOnlyList<PushResult> results;
    try
    {
        results = await push(cts.Token);
    }
    catch (HttpRequestException e)
    {
        throw new InvalidOperationException($"cannot reach registry {registry}: {e.Message}", e);
    }
    foreach (var r in results)
        Console.WriteLine($"{r.Reference}\t{r.Digest}\t{r.MediaType}");
    Console.Error.WriteLine($"pushed {results.Count} references to {registry}");
    return 0;
}

sealed class UsageException(string message) : Exception(message);
