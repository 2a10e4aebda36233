using System.Text.Json;
using System.Text.Json.Nodes;
using CriRuntime.Pods;
using CriRuntime.State;
using Google.Protobuf;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Pods;

public sealed class PodSandboxRecordTests
{
    private static PodSandboxConfig Config(string name, string hostname) => new()
    {
        Metadata = new PodSandboxMetadata { Name = name, Namespace = "ns", Uid = "uid" },
        Hostname = hostname,
    };

    private static PodSandboxRecord Record(PodSandboxConfig config, string? chosen) => new()
    {
        Id = "id",
        ConfigBytes = config.ToByteArray(),
        RuntimeHandler = "runc",
        Phase = PodSandboxPhase.Ready,
        CreatedAt = 1,
        PodStateDir = "/run/x",
        CgroupParent = "/kubepods/pod",
        ChosenHostname = chosen,
    };

    [Fact]
    public void ChooseHostname_is_the_configs_else_the_nodes_never_the_pod_name()
    {
        Assert.Equal("node-1", PodSandboxRecord.ChooseHostname(Config(new string('p', 100), ""), () => "node-1"));
        Assert.Equal("web", PodSandboxRecord.ChooseHostname(Config("pod", "web"), () => throw new InvalidOperationException("not asked")));
    }

    [Fact]
    public void Stored_hostname_survives_a_round_trip_and_old_records_keep_the_hostname_they_were_given()
    {
        var record = Record(Config("pod", ""), "node-1");
        var json = JsonSerializer.Serialize(record, PodJsonContext.Default.PodSandboxRecord);
        Assert.Equal("node-1", JsonSerializer.Deserialize(json, PodJsonContext.Default.PodSandboxRecord)!.Hostname);

        // A record written before the hostname was stored: that pod's UTS namespace got its name (or its config's hostname).
        var old = JsonNode.Parse(JsonSerializer.Serialize(Record(Config("pod", ""), null), PodJsonContext.Default.PodSandboxRecord))!.AsObject();
        Assert.True(old.Remove("chosen_hostname"), $"no chosen_hostname in {old}");
        var legacy = JsonSerializer.Deserialize(old.ToJsonString(), PodJsonContext.Default.PodSandboxRecord)!;
        Assert.Null(legacy.ChosenHostname);
        Assert.Equal("pod", legacy.Hostname);
        Assert.Equal("web", Record(Config("pod", "web"), null).Hostname);
    }

    [Fact]
    public void Cgroup_levels_that_existed_survive_a_round_trip_and_old_records_have_none()
    {
        var record = Record(Config("pod", ""), null) with
        {
            CgroupLevelsExisting = new Dictionary<string, int> { ["/sys/fs/cgroup/memory"] = 1, ["/sys/fs/cgroup/unified"] = 0 },
        };
        var json = JsonNode.Parse(JsonSerializer.Serialize(record, PodJsonContext.Default.PodSandboxRecord))!.AsObject();
        var back = JsonSerializer.Deserialize(json.ToJsonString(), PodJsonContext.Default.PodSandboxRecord)!;
        Assert.Equal(1, back.CgroupLevelsExisting!["/sys/fs/cgroup/memory"]);
        Assert.Equal(0, back.CgroupLevelsExisting["/sys/fs/cgroup/unified"]);

        Assert.True(json.Remove("cgroup_levels_existing"), $"no cgroup_levels_existing in {json}");
        Assert.Null(JsonSerializer.Deserialize(json.ToJsonString(), PodJsonContext.Default.PodSandboxRecord)!.CgroupLevelsExisting);
    }

    [Fact]
    public void Pod_state_dir_keeps_the_json_name_records_were_first_written_with()
    {
        var json = JsonNode.Parse(JsonSerializer.Serialize(Record(Config("pod", ""), null), PodJsonContext.Default.PodSandboxRecord))!.AsObject();
        Assert.Equal("/run/x", (string?)json["Directory"]);
        Assert.Equal("/run/x", JsonSerializer.Deserialize(json.ToJsonString(), PodJsonContext.Default.PodSandboxRecord)!.PodStateDir);
    }
}
