using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Stock crictl v1.26.1 (a Go client: grpc-go, as kubelets up to 1.30 dial) drives one whole pod lifecycle
/// against the daemon, on an image built by umoci and pushed by skopeo rather than by the project's own
/// builder. Shows the gRPC layer serves clients other than our .NET one, and that layers written by
/// another tar writer unpack and run.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class CrictlLifecycleTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    /// <summary>How long one crictl call may take before the test kills it and fails.</summary>
    private static readonly TimeSpan CrictlTimeout = TimeSpan.FromSeconds(120);

    /// <summary>The umoci image's Cmd: prints a marker, and exits 0 on SIGTERM so a graceful stop is visible.</summary>
    private static readonly string[] ImageCmd =
        ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo umoci-cmd ran as $(id -u) on $(hostname); while true; do sleep 1; done"];

    private string configFile = "";

    [Fact]
    public async Task Crictl_DrivesWholePodLifecycle_OnUmociImagePushedBySkopeo()
    {
        string crictl = StockCriTools.Crictl;
        await StartPodDaemonAsync();
        configFile = WriteCrictlConfig();

        // ---- the image: built by umoci, pushed by skopeo
        string repo = RegistryFixture.UniqueRepo("umoci");
        var pushed = await UmociImage.BuildAndPushAsync(Registry.Host, repo, "v1", TempDir("criruntime-umoci-"), ImageCmd);
        // skopeo copy oci: -> docker:// keeps the OCI manifest as umoci wrote it (no conversion to Docker
        // schema 2) when the registry accepts OCI, as Debian's docker-registry does. Said here so a change shows.
        Output.WriteLine($"skopeo pushed {pushed.Reference}: {pushed.PushedManifestMediaType} {pushed.PushedManifestDigest} " +
            $"(umoci's layout manifest {pushed.LayoutManifestDigest}, unchanged: {pushed.PushedUnchanged})");
        // Whatever umoci's tar writer does at the end of a layer, the layer must unpack (the pull below).
        Output.WriteLine($"umoci's layers: {string.Join("; ", pushed.LayerTarEndings)}");
        Assert.Equal(UmociImage.OciManifestMediaType, pushed.PushedManifestMediaType);
        Assert.True(pushed.PushedUnchanged, $"skopeo changed the manifest: umoci wrote {pushed.LayoutManifestDigest}, the registry serves {pushed.PushedManifestDigest}:\n{pushed.PushedManifestJson}");
        string image = pushed.Reference;

        // ---- version: the runtime names itself
        string version = await CrictlOkAsync(crictl, "version");
        Assert.Matches(@"(?m)^RuntimeName:\s+criruntime\s*$", version);
        Assert.Matches(@"(?m)^RuntimeApiVersion:\s+v1\s*$", version);

        // ---- pull, images, inspecti
        string pull = await CrictlOkAsync(crictl, "pull", image);
        Assert.Matches(@"Image is up to date for sha256:[0-9a-f]{64}", pull);
        string imageId = Regex.Match(pull, "sha256:[0-9a-f]{64}").Value;

        string imagesTable = await CrictlOkAsync(crictl, "images");
        Assert.Matches($@"(?m)^{Regex.Escape($"{Registry.Host}/{repo}")}\s+v1\s+{imageId[7..20]}", imagesTable);
        using (var images = Json(await CrictlOkAsync(crictl, "images", "-o", "json")))
        {
            var listed = images.RootElement.GetProperty("images").EnumerateArray()
                .Where(i => Strings(i, "repoTags").Contains(image)).ToList();
            Assert.True(listed.Count == 1, $"crictl images -o json lists {listed.Count} images tagged {image}:\n{images.RootElement}");
            Assert.Equal(imageId, listed[0].GetProperty("id").GetString());
        }
        using (var inspecti = Json(await CrictlOkAsync(crictl, "inspecti", image)))
        {
            var status = inspecti.RootElement.GetProperty("status");
            Assert.Equal(imageId, status.GetProperty("id").GetString());
            Assert.Contains(image, Strings(status, "repoTags"));
            Assert.Contains($"{Registry.Host}/{repo}@{pushed.PushedManifestDigest}", Strings(status, "repoDigests"));
            Assert.True(long.Parse(Scalar(status.GetProperty("size"))) > TestImages.BusyboxBytes.Length / 2,
                $"inspecti size {status.GetProperty("size")} is smaller than the busybox in the image");
        }

        // ---- runp, pods, inspectp
        var podConfig = NewPodConfig("crictl-pod");
        string podJson = WriteJson("pod.json", PodConfigJson(podConfig));
        TrackPod(podConfig.Metadata.Uid);
        string podId = (await CrictlOkAsync(crictl, "runp", podJson)).Trim();
        Assert.Matches("^[0-9a-f]{64}$", podId);
        TrackPod(podConfig.Metadata.Uid, podId);

        Assert.Equal([podId], Lines(await CrictlOkAsync(crictl, "pods", "-q")));
        string podsTable = await CrictlOkAsync(crictl, "pods");
        Assert.Matches($@"(?m)^{podId[..13]}\s+.*\bReady\s+crictl-pod\s+{PodNamespace}\s+0\s", podsTable);
        IPAddress podIp;
        using (var inspectp = Json(await CrictlOkAsync(crictl, "inspectp", podId)))
        {
            var status = inspectp.RootElement.GetProperty("status");
            Assert.Equal(podId, status.GetProperty("id").GetString());
            Assert.Equal("SANDBOX_READY", status.GetProperty("state").GetString());
            Assert.Equal(podConfig.Metadata.Uid, status.GetProperty("metadata").GetProperty("uid").GetString());
            string ip = status.GetProperty("network").GetProperty("ip").GetString() ?? "";
            Assert.True(IPAddress.TryParse(ip, out podIp!), $"crictl inspectp shows pod IP \"{ip}\"");
            Assert.True(Network.Contains(podIp), $"pod IP {podIp} is not in the test CNI network {Network.Subnet}");
        }

        // ---- create, start, ps: the container runs the Cmd umoci's config gave the image
        string containerJson = WriteJson("container.json", ContainerConfigJson(podConfig, "app", image));
        string containerId = (await CrictlOkAsync(crictl, "create", podId, containerJson, podJson)).Trim();
        Assert.Matches("^[0-9a-f]{64}$", containerId);
        Assert.Matches($@"(?m)^{containerId[..13]}\s+.*\bCreated\s+app\s+0\s+{podId[..13]}", await CrictlOkAsync(crictl, "ps", "-a"));

        Assert.Equal(containerId, (await CrictlOkAsync(crictl, "start", containerId)).Trim());
        Assert.Matches($@"(?m)^{containerId[..13]}\s+.*\bRunning\s+app\s+0\s+{podId[..13]}", await CrictlOkAsync(crictl, "ps"));
        using (var ps = Json(await CrictlOkAsync(crictl, "ps", "-o", "json")))
        {
            var containers = ps.RootElement.GetProperty("containers").EnumerateArray().ToList();
            Assert.True(containers.Count == 1, $"crictl ps -o json:\n{ps.RootElement}");
            Assert.Equal(containerId, containers[0].GetProperty("id").GetString());
            Assert.Equal(podId, containers[0].GetProperty("podSandboxId").GetString());
            Assert.Equal("CONTAINER_RUNNING", containers[0].GetProperty("state").GetString());
        }

        // ---- exec -s (ExecSync). crictl 1.26 prints stdout then stderr, each with an added newline, on exit 0;
        // on any other exit it prints neither but fails with "command '...' exited with N: STDERR".
        string execOut = await CrictlOkAsync(crictl, "exec", "-s", containerId, "sh", "-c", "echo out; echo err >&2; cat /etc/passwd");
        Assert.StartsWith("out\nroot:x:0:0:", execOut);
        Assert.Contains($"app:x:{TestImages.AppUid}:{TestImages.AppUid}:", execOut);
        Assert.EndsWith("\nerr\n\n", execOut);
        var failing = await CrictlAsync(crictl, "exec", "-s", containerId, "sh", "-c", "echo out; echo bad >&2; exit 3");
        Assert.True(failing.ExitCode != 0, $"crictl exec -s of 'exit 3' succeeded\n{failing}");
        Assert.Contains("exited with 3: bad", failing.Stderr);
        Assert.Equal("crictl-pod", (await CrictlOkAsync(crictl, "exec", "-s", containerId, "hostname")).Trim());
        Assert.Contains("while true", await CrictlOkAsync(crictl, "exec", "-s", containerId, "ps"));

        // ---- logs: crictl reads the CRI log file conmon writes
        string logs = "";
        bool logged = await EventuallyAsync(async () =>
        {
            logs = await CrictlOkAsync(crictl, "logs", containerId);
            return logs.Contains("umoci-cmd ran as 0 on crictl-pod", StringComparison.Ordinal);
        }, StateTimeout);
        Assert.True(logged, $"crictl logs does not show the image's Cmd output:\n{logs}");

        // ---- stats
        using (var stats = Json(await CrictlOkAsync(crictl, "stats", "-o", "json", "--id", containerId)))
        {
            var items = stats.RootElement.GetProperty("stats").EnumerateArray().ToList();
            Assert.True(items.Count == 1, $"crictl stats -o json --id {containerId}:\n{stats.RootElement}");
            Assert.Equal(containerId, items[0].GetProperty("attributes").GetProperty("id").GetString());
            var memory = items[0].GetProperty("memory").GetProperty("workingSetBytes").GetProperty("value");
            Assert.True(long.Parse(Scalar(memory)) > 0, $"crictl stats shows working set {memory}:\n{items[0]}");
        }
        Assert.Matches($@"(?m)^{containerId[..13]}\s+\S+\s+\S+", await CrictlOkAsync(crictl, "stats"));

        // ---- inspect: the running container, its image, its pid
        using (var inspect = Json(await CrictlOkAsync(crictl, "inspect", containerId)))
        {
            var status = inspect.RootElement.GetProperty("status");
            Assert.Equal(containerId, status.GetProperty("id").GetString());
            Assert.Equal("CONTAINER_RUNNING", status.GetProperty("state").GetString());
            Assert.Contains(status.GetProperty("image").GetProperty("image").GetString() ?? "", new[] { image, imageId });
            Assert.Contains(status.GetProperty("imageRef").GetString() ?? "", new[] { imageId, $"{Registry.Host}/{repo}@{pushed.PushedManifestDigest}" });
            Assert.EndsWith("app/0.log", status.GetProperty("logPath").GetString());
            Assert.True(inspect.RootElement.GetProperty("info").GetProperty("pid").GetInt32() > 0, $"crictl inspect shows no pid:\n{inspect.RootElement}");
        }

        // ---- stop (graceful: the Cmd exits 0 on SIGTERM), rm
        Assert.Equal(containerId, (await CrictlOkAsync(crictl, "stop", "--timeout", "10", containerId)).Trim());
        using (var inspect = Json(await CrictlOkAsync(crictl, "inspect", containerId)))
        {
            var status = inspect.RootElement.GetProperty("status");
            Assert.Equal("CONTAINER_EXITED", status.GetProperty("state").GetString());
            Assert.Equal(0, status.GetProperty("exitCode").GetInt32());
        }
        Assert.Contains("got TERM", await CrictlOkAsync(crictl, "logs", containerId));
        Assert.Equal(containerId, (await CrictlOkAsync(crictl, "rm", containerId)).Trim());
        Assert.Empty(Lines(await CrictlOkAsync(crictl, "ps", "-a", "-q")));

        // ---- stopp, rmp, and nothing left
        Assert.Contains($"Stopped sandbox {podId}", await CrictlOkAsync(crictl, "stopp", podId));
        Assert.Matches($@"(?m)^{podId[..13]}\s+.*\bNotReady\s+crictl-pod\s", await CrictlOkAsync(crictl, "pods"));
        Assert.Contains($"Removed sandbox {podId}", await CrictlOkAsync(crictl, "rmp", podId));
        Assert.Empty(Lines(await CrictlOkAsync(crictl, "pods", "-q")));
        Assert.Empty(Lines(await CrictlOkAsync(crictl, "ps", "-a", "-q")));
        await AssertNothingLeftAsync([new TestPod(podId, podConfig)], [containerId], [podIp.ToString()]);
    }

    [Fact]
    public async Task Crictl_InspectOfUnknownContainer_ShowsNotFound()
    {
        string crictl = StockCriTools.Crictl;
        await StartPodDaemonAsync();
        configFile = WriteCrictlConfig();

        var inspect = await CrictlAsync(crictl, "inspect", "nonexistent");
        Assert.True(inspect.ExitCode != 0, $"crictl inspect nonexistent succeeded:\n{inspect}");
        Assert.Contains("code = NotFound", inspect.Stderr);
        Assert.Contains("nonexistent", inspect.Stderr);

        var inspectp = await CrictlAsync(crictl, "inspectp", "nonexistent");
        Assert.True(inspectp.ExitCode != 0, $"crictl inspectp nonexistent succeeded:\n{inspectp}");
        Assert.Contains("code = NotFound", inspectp.Stderr);
    }

    // ---- crictl

    // crictl would otherwise read /etc/crictl.yaml, which belongs to the host, not this test.
    private string WriteCrictlConfig() =>
        WriteFile("crictl.yaml", $"runtime-endpoint: unix://{Daemon.Socket}\nimage-endpoint: unix://{Daemon.Socket}\ntimeout: 60\ndebug: false\npull-image-on-create: false\n");

    private async Task<HostCommand.Result> CrictlAsync(string crictl, params string[] args)
    {
        var all = new List<string> { "--config", configFile, "--runtime-endpoint", $"unix://{Daemon.Socket}",
            "--image-endpoint", $"unix://{Daemon.Socket}", "--timeout", "60s" };
        all.AddRange(args);
        using var timeout = new CancellationTokenSource(CrictlTimeout);
        try
        {
            var run = await HostCommand.RunAsync(crictl, all, cancellationToken: timeout.Token);
            // Every call and what it printed, so a failure shows the conversation that led to it.
            Output.WriteLine($"$ crictl {string.Join(' ', args)}  (exit {run.ExitCode})\n{run.Stdout.TrimEnd()}{(run.Stderr.Length > 0 ? "\nstderr: " + run.Stderr.TrimEnd() : "")}");
            return run;
        }
        catch (OperationCanceledException)
        {
            throw Failure($"crictl {string.Join(' ', args)} did not finish within {CrictlTimeout}");
        }
    }

    /// <summary>Runs crictl, which must exit 0; returns its stdout. A failure shows both outputs and the daemon log.</summary>
    private async Task<string> CrictlOkAsync(string crictl, params string[] args)
    {
        var run = await CrictlAsync(crictl, args);
        if (run.ExitCode != 0) throw Failure($"crictl {string.Join(' ', args)} exited {run.ExitCode}\nstdout: {run.Stdout}\nstderr: {run.Stderr}");
        return run.Stdout;
    }

    // ---- configs as crictl reads them: JSON into the Go structs, so snake_case names and enums as numbers

    private static JsonObject PodConfigJson(PodSandboxConfig c) => new()
    {
        ["metadata"] = new JsonObject { ["name"] = c.Metadata.Name, ["uid"] = c.Metadata.Uid, ["namespace"] = c.Metadata.Namespace, ["attempt"] = 0 },
        ["hostname"] = c.Hostname,
        ["log_directory"] = c.LogDirectory,
        ["labels"] = new JsonObject(c.Labels.Select(l => KeyValuePair.Create(l.Key, (JsonNode?)l.Value))),
        ["linux"] = new JsonObject
        {
            ["cgroup_parent"] = c.Linux.CgroupParent,
            ["security_context"] = new JsonObject { ["namespace_options"] = NamespaceOptionsJson() },
        },
    };

    private static JsonObject ContainerConfigJson(PodSandboxConfig pod, string name, string image)
    {
        // The kubelet makes the container's log directory under the pod's.
        Directory.CreateDirectory(Path.Combine(pod.LogDirectory, name));
        // No command: the container runs the Cmd umoci's config gave the image.
        return new JsonObject
        {
            ["metadata"] = new JsonObject { ["name"] = name, ["attempt"] = 0 },
            ["image"] = new JsonObject { ["image"] = image },
            ["log_path"] = $"{name}/0.log",
            ["labels"] = new JsonObject { ["io.kubernetes.container.name"] = name },
            ["linux"] = new JsonObject
            {
                ["resources"] = new JsonObject { ["cpu_shares"] = 2, ["oom_score_adj"] = 1000 },
                ["security_context"] = new JsonObject { ["namespace_options"] = NamespaceOptionsJson() },
            },
        };
    }

    // network=POD(0), pid=CONTAINER(1), ipc=POD(0), as the kubelet asks for an ordinary pod.
    private static JsonObject NamespaceOptionsJson() => new() { ["network"] = 0, ["pid"] = 1, ["ipc"] = 0 };

    private string WriteJson(string name, JsonObject json) =>
        WriteFile(name, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    /// <summary>Writes a file into this test's crictl config dir (deleted after the test); returns its path.</summary>
    private string WriteFile(string name, string text)
    {
        string dir = configDir ??= TempDir("criruntime-crictl-");
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private string? configDir;

    private JsonDocument Json(string text)
    {
        try
        {
            return JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw Failure($"crictl printed no JSON ({e.Message}):\n{text}");
        }
    }

    private static List<string> Strings(JsonElement e, string property) =>
        e.TryGetProperty(property, out var array) && array.ValueKind == JsonValueKind.Array
            ? array.EnumerateArray().Select(x => x.GetString() ?? "").ToList()
            : [];

    // jsonpb prints 64-bit integers as strings.
    private static string Scalar(JsonElement e) => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.GetRawText();

    private static List<string> Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
}
