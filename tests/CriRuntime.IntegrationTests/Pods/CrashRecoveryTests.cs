using System.Text.Json;
using System.Text.Json.Nodes;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>
/// Start-up recovery against damage and against records from a newer daemon, on the built daemon killed with
/// SIGKILL: nothing a running container uses is deleted, what cannot be read is quarantined and shown in Status,
/// and what a newer daemon wrote is left exactly as it is.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class CrashRecoveryTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task AfterSigkill_ACorruptImageIndexAndLayerRecord_AreQuarantined_AndTheRunningContainerKeepsItsFiles()
    {
        var first = await StartPodDaemonAsync();
        var pod = await RunPodAsync("quarantine");
        string app = await CreateAndStartAsync(pod, "app", Sh("echo mine > /tmp/mine; exec sleep 3600"));
        Assert.True(await EventuallyAsync(async () => (await ExecSyncAsync(app, ["cat", "/tmp/mine"])).ExitCode == 0, StateTimeout), "the container did not write /tmp/mine");
        int pid = await ContainerPidAsync(app);

        await first.KillAsync();
        string index = Path.Combine(first.Root, "images", "images.json");
        File.WriteAllText(index, "{\"version\":1,\"images\":[{\"id\":\"sha256:");
        string layerDir = Assert.Single(Directory.GetDirectories(Path.Combine(first.Root, "overlay")),
            d => Path.GetFileName(d).Length == 64);
        File.WriteAllText(Path.Combine(layerDir, "layer.json"), "{\"chainId\":");

        var second = await RestartPodDaemonAsync(first);

        Assert.Equal(ContainerState.ContainerRunning, (await ContainerStatusAsync(app)).Status.State);
        Assert.Equal(pid, await ContainerPidAsync(app));
        Assert.Contains("root:x:0:0:", await ExecOkAsync(app, "cat", "/etc/passwd"), StringComparison.Ordinal);
        Assert.Equal("mine\n", await ExecOkAsync(app, "cat", "/tmp/mine"));

        var status = await second.Runtime.StatusAsync(new StatusRequest { Verbose = true }, deadline: Deadline());
        Assert.True(status.Info.ContainsKey("quarantine"), $"Status verbose has no quarantine key: {string.Join(", ", status.Info.Keys)}");
        var quarantine = JsonNode.Parse(status.Info["quarantine"])!.AsArray();
        var paths = quarantine.Select(q => q!["path"]!.GetValue<string>()).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(new[] { index, layerDir }.Order(StringComparer.Ordinal), paths);
        foreach (var item in quarantine)
        {
            string movedTo = item!["movedTo"]!.GetValue<string>();
            Assert.True(File.Exists(movedTo) || Directory.Exists(movedTo), $"quarantined {item["path"]} is not at {movedTo}");
            Assert.False(string.IsNullOrEmpty(item["reason"]!.GetValue<string>()));
            Assert.True(DateTimeOffset.TryParse(item["time"]!.GetValue<string>(), out _));
        }
        string movedLayer = quarantine.Single(q => q!["path"]!.GetValue<string>() == layerDir)!["movedTo"]!.GetValue<string>();
        Assert.True(File.Exists(Path.Combine(movedLayer, "diff", "etc", "passwd")), "the quarantined layer lost its files");

        // The node has no image now; a pull brings it back, and the container can still be removed.
        Assert.Empty(await ListImagesAsync(second));
        await PullAsync(second, BusyboxImage);
        await StopContainerAsync(app, 0);
        await RemoveContainerAsync(app);
        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [app], []);
    }

    [Fact]
    public async Task APodRecordOfANewerVersion_IsLeftUntouched_WithItsDirectory_AndShownInStatus()
    {
        var first = await StartPodDaemonAsync();
        var pod = await RunPodAsync("future");
        await first.KillAsync();

        string record = Path.Combine(first.Root, "pods", pod.Id + ".json");
        var json = JsonNode.Parse(File.ReadAllText(record))!.AsObject();
        Assert.Equal(1, json["schema_version"]!.GetValue<int>());
        json["schema_version"] = 99;
        File.WriteAllText(record, json.ToJsonString());
        byte[] bytes = File.ReadAllBytes(record);
        string podDir = Path.Combine(first.State, "pods", pod.Id);
        Assert.True(Directory.Exists(podDir));

        var second = await RestartPodDaemonAsync(first);

        AssertIds([], (await ListPodsAsync()).Select(p => p.Id), "pods listed with a newer record on disk");
        Assert.Equal(bytes, File.ReadAllBytes(record));
        Assert.True(Directory.Exists(podDir), "the directory of a newer pod record was swept");
        Assert.True(File.Exists(Path.Combine(podDir, "hostname")));
        var status = await second.Runtime.StatusAsync(new StatusRequest { Verbose = true }, deadline: Deadline());
        var newer = JsonNode.Parse(status.Info["newerRecords"])!.AsArray();
        var entry = Assert.Single(newer)!;
        Assert.Equal(record, entry["path"]!.GetValue<string>());
        Assert.Equal(99, entry["version"]!.GetValue<int>());
        Assert.Equal(1, entry["supportedVersion"]!.GetValue<int>());
        Assert.Contains("schema version 99", second.LogTail(200), StringComparison.Ordinal);

        // Back to a version this daemon knows (as if the newer daemon had been rolled back cleanly): it is whole.
        await second.KillAsync();
        json["schema_version"] = 1;
        File.WriteAllText(record, json.ToJsonString());
        await RestartPodDaemonAsync(second);
        Assert.Equal(PodSandboxState.SandboxReady, (await PodStatusAsync(pod.Id)).Status.State);
        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [], []);
    }

    private static async Task<IReadOnlyList<Image>> ListImagesAsync(DaemonProcess d) =>
        (await d.Images.ListImagesAsync(new ListImagesRequest(), deadline: Deadline())).Images;
}
