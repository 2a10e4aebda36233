using System.Text.Json;
using System.Text.Json.Nodes;
using CriRuntime.Containers;
using CriRuntime.Pods;
using CriRuntime.State;
using Google.Protobuf;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Containers;

/// <summary>Records cache their parsed config; a copy with new config bytes must show the new config.</summary>
public sealed class RecordConfigTests
{
    [Fact]
    public void A_container_copy_with_new_config_bytes_parses_them_again()
    {
        var config = new ContainerConfig { Metadata = new ContainerMetadata { Name = "app" }, Linux = new LinuxContainerConfig { Resources = new() { CpuShares = 2 } } };
        var record = new ContainerRecord
        {
            Id = "c", PodSandboxId = "p", ConfigBytes = config.ToByteArray(), ImageId = "sha256:x", ImageRef = "", RuntimeHandler = "runc",
            Phase = ContainerPhase.Running, CreatedAt = 1, Bundle = "/b", WritableLayerDir = "/d", CgroupsPath = "/p/c",
        };
        Assert.Equal(2, record.Config.Linux.Resources.CpuShares); // parsed and cached
        config.Linux.Resources.CpuShares = 512;
        var updated = record with { ConfigBytes = config.ToByteArray() };
        Assert.Equal(512, updated.Config.Linux.Resources.CpuShares);
        Assert.Equal(2, record.Config.Linux.Resources.CpuShares);
        Assert.Equal(512, (updated with { Phase = ContainerPhase.Exited }).Config.Linux.Resources.CpuShares);
    }

    [Fact]
    public void A_pod_copy_with_new_config_bytes_parses_them_again()
    {
        var config = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "pod" }, Linux = new LinuxPodSandboxConfig { Resources = new() { MemoryLimitInBytes = 1 } } };
        var record = new PodSandboxRecord
        {
            Id = "p", ConfigBytes = config.ToByteArray(), RuntimeHandler = "runc", Phase = PodSandboxPhase.Ready, CreatedAt = 1, PodStateDir = "/d", CgroupParent = "/p",
        };
        Assert.Equal(1, record.Config.Linux.Resources.MemoryLimitInBytes);
        config.Linux.Resources.MemoryLimitInBytes = 2;
        Assert.Equal(2, (record with { ConfigBytes = config.ToByteArray() }).Config.Linux.Resources.MemoryLimitInBytes);
    }

    [Fact]
    public void Writable_layer_dir_keeps_the_json_name_records_were_first_written_with()
    {
        var record = new ContainerRecord
        {
            Id = "c", PodSandboxId = "p", ConfigBytes = [], ImageId = "sha256:x", ImageRef = "", RuntimeHandler = "runc",
            Phase = ContainerPhase.Running, CreatedAt = 1, Bundle = "/b", WritableLayerDir = "/d", CgroupsPath = "/p/c",
        };
        var json = JsonNode.Parse(JsonSerializer.Serialize(record, ContainerJsonContext.Default.ContainerRecord))!.AsObject();
        Assert.Equal("/d", (string?)json["Directory"]);
        Assert.Equal("/d", JsonSerializer.Deserialize(json.ToJsonString(), ContainerJsonContext.Default.ContainerRecord)!.WritableLayerDir);
    }
}
