using System.Text.Json.Nodes;
using CriRuntime.Containers;
using CriRuntime.Native;
using CriRuntime.Oci;
using CriRuntime.Pods;
using CriRuntime.Recovery;
using CriRuntime.Storage;
using CriRuntime.Tests.Lifecycle;
using Xunit;

namespace CriRuntime.Tests.Recovery;

/// <summary>
/// Start-up recovery of pods and containers, and the garbage collection that follows it, run as the daemon runs
/// them (<see cref="StartupRecovery"/>) over real dirs, a real layer store, real overlay mounts and cgroups, with
/// a fake OCI runtime (needs root).
/// </summary>
public sealed class ManagerRecoveryTests
{
    [Fact]
    public void The_steps_run_images_pods_containers_then_garbage_collection()
    {
        var steps = typeof(StartupRecovery).GetConstructors().Single().GetParameters().Select(p => p.ParameterType).Take(4).ToList();
        Assert.Equal([typeof(ImageRecovery), typeof(PodRecovery), typeof(ContainerRecovery), typeof(ImageGarbageCollection)], steps);
    }

    [Fact]
    public async Task Layers_of_a_container_survive_a_corrupt_image_index_and_the_collection_after_it()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("gc");
        var container = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        var chainId = Assert.Single(world.Image.ChainIds);
        Assert.Equal([chainId.ToString()], container.LayerChainIds);
        // As after a reboot: nothing is mounted, so only the record can say what the container is made of.
        OverlayMount.Unmount(container.Rootfs);
        string index = Path.Combine(world.RootDir, "images", "images.json");
        File.WriteAllText(index, "{\"version\":1,\"images\":[{\"id\":");

        await world.RestartAsync();

        Assert.Empty(world.Images.List());
        var quarantined = Assert.Single(world.Recovery.Quarantined);
        Assert.Equal(index, quarantined.Path);
        Assert.Equal("{\"version\":1,\"images\":[{\"id\":", File.ReadAllText(quarantined.MovedTo));
        Assert.StartsWith(Path.Combine(world.RootDir, "images", "quarantine") + "/", quarantined.MovedTo);
        Assert.True(world.Layers.TryGet(chainId, out _), "the container's layer was collected although its record names it");
        Assert.True(File.Exists(Path.Combine(world.Layers.DiffDir(chainId), "etc", "hostname")));
        Assert.NotNull(world.Containers.Find(container.Id));
    }

    [Fact]
    public async Task An_older_container_record_without_layers_whose_image_is_gone_stops_layer_collection()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("old");
        var container = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        OverlayMount.Unmount(container.Rootfs);
        EditJson(ContainerRecordFile(world, container.Id), json => json.Remove("layer_chain_ids"));
        File.WriteAllText(Path.Combine(world.RootDir, "images", "images.json"), "not json");

        await world.RestartAsync();

        Assert.Empty(world.Images.List());
        Assert.True(world.Layers.TryGet(world.Image.ChainIds[0], out _), "a layer was collected although a container's layers are unknown");
    }

    [Fact]
    public async Task A_mounted_rootfs_keeps_its_layers_and_writable_layer_when_the_container_record_is_unreadable()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("torn");
        var container = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        File.WriteAllText(Path.Combine(container.Rootfs, "written-by-container"), "kept");
        string record = ContainerRecordFile(world, container.Id);
        File.WriteAllText(record, "{\"id\":\"" + container.Id + "\",\"pod_sandbox");

        await world.RestartAsync();

        var quarantined = Assert.Single(world.Recovery.Quarantined);
        Assert.Equal(record, quarantined.Path);
        Assert.False(File.Exists(record));
        Assert.Null(world.Containers.Find(container.Id));
        // The old sweep detached the rootfs and deleted the bundle and the writable layer of a record it could not read.
        Assert.True(Mounts.IsMountPoint(container.Rootfs), "the rootfs of a container whose record was unreadable was unmounted");
        Assert.Equal("kept", File.ReadAllText(Path.Combine(container.WritableLayerDir, "upper", "written-by-container")));

        // No record names the image any more, so it can go; its layer is still under the mounted rootfs and stays.
        Assert.True(await world.Images.RemoveAsync(world.Image.Id.ToString(), CancellationToken.None));
        Assert.True(world.Layers.TryGet(world.Image.ChainIds[0], out _), "a layer under a mounted rootfs was collected");
        Assert.Equal("test\n", File.ReadAllText(Path.Combine(container.Rootfs, "etc", "hostname")));

        await world.RestartAsync();
        Assert.True(Mounts.IsMountPoint(container.Rootfs), "the next start-up swept the directories of a record quarantined before");
        Assert.Single(Directory.GetFiles(Path.Combine(Path.GetDirectoryName(record)!, "quarantine")));
    }

    [Fact]
    public async Task A_container_whose_clean_up_keeps_failing_is_quarantined_after_three_start_ups()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("stuck");
        world.Runtime.OnCreate = _ => throw new OciRuntimeException("fake create failed");
        world.Runtime.DeleteFailure = "fake delete failed: runtime busy";
        await Assert.ThrowsAsync<OciRuntimeException>(() => world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None));
        string record = Assert.Single(world.ContainerRecordFiles());

        for (int startUp = 1; startUp < ContainerRecovery.MaxCleanupAttempts; startUp++)
        {
            await world.RestartAsync();
            Assert.Equal([record], world.ContainerRecordFiles());
            Assert.Equal(startUp, JsonNode.Parse(File.ReadAllText(record))!["cleanup_attempts"]!.GetValue<int>());
            Assert.Empty(world.Recovery.Quarantined);
        }

        await world.RestartAsync();
        Assert.Empty(world.ContainerRecordFiles());
        var quarantined = Assert.Single(world.Recovery.Quarantined);
        Assert.Equal(record, quarantined.Path);
        Assert.Contains("fake delete failed", quarantined.Reason, StringComparison.Ordinal);
        Assert.True(File.Exists(quarantined.MovedTo));

        // Not tried again, and the name is free.
        int deletes = world.Runtime.Calls.Count(c => c.StartsWith("delete ", StringComparison.Ordinal));
        world.Runtime.OnCreate = null;
        world.Runtime.DeleteFailure = null;
        await world.RestartAsync();
        Assert.Equal(deletes, world.Runtime.Calls.Count(c => c.StartsWith("delete ", StringComparison.Ordinal)));
        Assert.True(File.Exists(quarantined.MovedTo));
        var again = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        Assert.Equal(ContainerPhase.Created, again.Phase);
    }

    [Fact]
    public async Task A_pod_whose_clean_up_keeps_failing_is_quarantined_after_three_start_ups_and_its_name_released()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("stuck-pod");
        // A half-made pod whose infra process the runtime will not delete (as a CNI DEL that always fails would).
        string exitDir = Path.Combine(world.StateDir, "fake-exits");
        Directory.CreateDirectory(exitDir);
        await world.Runtime.CreateAsync(new RuntimeCreateRequest { Id = pod.Id, BundleDir = exitDir, LogPath = Path.Combine(exitDir, "log"), ExitDir = exitDir }, CancellationToken.None);
        await world.Pods.PutRecordAsync(pod with { Phase = PodSandboxPhase.Creating, InfraId = pod.Id }, CancellationToken.None);
        world.Runtime.DeleteFailure = "fake delete failed: runtime busy";
        string record = PodRecordFile(world, pod.Id);

        for (int startUp = 1; startUp < PodRecovery.MaxCleanupAttempts; startUp++)
        {
            await world.RestartAsync();
            Assert.True(File.Exists(record));
            Assert.Equal(startUp, JsonNode.Parse(File.ReadAllText(record))!["cleanup_attempts"]!.GetValue<int>());
            Assert.Null(world.Pods.Find(pod.Id));
        }

        await world.RestartAsync();
        Assert.False(File.Exists(record));
        var quarantined = Assert.Single(world.Recovery.Quarantined);
        Assert.Equal(record, quarantined.Path);
        Assert.Contains("fake delete failed", quarantined.Reason, StringComparison.Ordinal);
        Assert.True(File.Exists(quarantined.MovedTo));

        world.Runtime.DeleteFailure = null;
        await world.RestartAsync();
        Assert.True(File.Exists(quarantined.MovedTo));
        var again = await world.RunPodAsync("stuck-pod");
        Assert.Equal(PodSandboxPhase.Ready, again.Phase);
    }

    [Fact]
    public async Task A_pod_record_of_a_newer_version_is_left_alone_with_its_directory_and_its_containers()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("future");
        var container = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        string podRecord = PodRecordFile(world, pod.Id);
        EditJson(podRecord, json => json["schema_version"] = 99);
        byte[] podBytes = File.ReadAllBytes(podRecord);
        string containerRecord = ContainerRecordFile(world, container.Id);
        byte[] containerBytes = File.ReadAllBytes(containerRecord);

        await world.RestartAsync();

        Assert.Null(world.Pods.Find(pod.Id));
        Assert.Equal(podBytes, File.ReadAllBytes(podRecord));
        Assert.True(Directory.Exists(pod.PodStateDir), "the pod directory of a newer record was swept");
        var newer = Assert.Single(world.Recovery.Newer);
        Assert.Equal((podRecord, 99, RecordSchema.Current), (newer.Path, newer.Version, newer.Supported));

        // Its container is neither shown without its pod nor removed.
        Assert.Null(world.Containers.Find(container.Id));
        Assert.Equal(containerBytes, File.ReadAllBytes(containerRecord));
        Assert.Equal(containerRecord, Assert.Single(world.Recovery.HeldBack).Path);
        Assert.Contains(container.Id, world.Runtime.Known);
        Assert.True(Mounts.IsMountPoint(container.Rootfs));
        Assert.True(Directory.Exists(container.WritableLayerDir));
        Assert.DoesNotContain(world.Runtime.Calls, c => c == $"delete {container.Id}");
    }

    [Fact]
    public async Task A_container_record_of_a_newer_version_is_left_alone_and_stops_layer_collection()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("future-c");
        var container = await world.Containers.CreateAsync(pod.Id, world.ContainerConfig("c"), CancellationToken.None);
        OverlayMount.Unmount(container.Rootfs);
        string record = ContainerRecordFile(world, container.Id);
        EditJson(record, json => json["schema_version"] = 7);
        byte[] bytes = File.ReadAllBytes(record);

        await world.RestartAsync();

        Assert.Null(world.Containers.Find(container.Id));
        Assert.Equal(bytes, File.ReadAllBytes(record));
        Assert.True(Directory.Exists(container.Bundle) && Directory.Exists(container.WritableLayerDir), "a newer record's directories were swept");
        Assert.Equal(7, Assert.Single(world.Recovery.Newer).Version);
        Assert.True(await world.Images.RemoveAsync(world.Image.Id.ToString(), CancellationToken.None));
        Assert.True(world.Layers.TryGet(world.Image.ChainIds[0], out _), "a layer was collected while a newer daemon's container may use it");
    }

    [Fact]
    public async Task A_pod_record_whose_embedded_config_does_not_parse_is_quarantined_at_load()
    {
        await using var world = await PodWorld.CreateAsync();
        var pod = await world.RunPodAsync("garbled");
        string record = PodRecordFile(world, pod.Id);
        // Valid JSON, but the protobuf inside it is not a PodSandboxConfig: every use of the record would fail.
        EditJson(record, json => json["config_bytes"] = Convert.ToBase64String([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]));

        await world.RestartAsync();

        Assert.Null(world.Pods.Find(pod.Id));
        Assert.False(File.Exists(record));
        Assert.Equal(record, Assert.Single(world.Recovery.Quarantined).Path);
        Assert.True(Directory.Exists(pod.PodStateDir), "the directory of a quarantined pod record was swept");
    }

    private static string ContainerRecordFile(PodWorld world, string id) => Path.Combine(world.RootDir, "containers", "records", id + ".json");

    private static string PodRecordFile(PodWorld world, string id) => Path.Combine(world.RootDir, "pods", id + ".json");

    private static void EditJson(string file, Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        edit(json);
        File.WriteAllText(file, json.ToJsonString());
    }
}
