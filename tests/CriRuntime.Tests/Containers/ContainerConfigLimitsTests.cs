using CriRuntime.Containers;
using Google.Protobuf;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Containers;

public sealed class ContainerConfigLimitsTests
{
    private static ContainerConfig Typical() => new()
    {
        Metadata = new ContainerMetadata { Name = "app" },
        Image = new ImageSpec { Image = "registry.example/app:1" },
        Command = { "/bin/app" },
        Args = { "--flag", new string('x', 100_000) },
        Envs = { new KeyValue { Key = "PATH", Value = ByteString.CopyFromUtf8("/usr/bin:/bin") } },
        Devices = { new Device { ContainerPath = "/dev/fuse", HostPath = "/dev/fuse", Permissions = "rwm" } },
        Linux = new LinuxContainerConfig { Resources = new LinuxContainerResources { CpusetCpus = "0-3,8-11", CpusetMems = "0" } },
    };

    [Fact]
    public void A_kubelet_like_config_passes() => ContainerConfigLimits.Validate(Typical());

    [Theory]
    [InlineData("command", "config.command[0]")]
    [InlineData("cpuset", "config.linux.resources.cpuset_cpus")]
    [InlineData("device", "config.devices[0].container_path")]
    [InlineData("env", "config.envs[1]")]
    [InlineData("total", "config.command, config.args and config.envs")]
    [InlineData("mount", "config.mounts[0].host_path")]
    [InlineData("annotations", "config.labels and config.annotations")]
    public void Oversized_fields_are_refused_naming_the_field(string what, string field)
    {
        var c = Typical();
        switch (what)
        {
            case "command": c.Command[0] = new string('a', 1024 * 1024); break;
            case "cpuset": c.Linux.Resources.CpusetCpus = new string('a', 100_000); break;
            case "device": c.Devices[0].ContainerPath = new string('a', 1024 * 1024); break;
            case "env": c.Envs.Add(new KeyValue { Key = "BIG", Value = ByteString.CopyFrom(new byte[200_000]) }); break;
            case "total": for (int i = 0; i < 10; i++) c.Args.Add(new string('b', 120_000)); break;
            case "mount": c.Mounts.Add(new Mount { ContainerPath = "/data", HostPath = "/" + new string('m', 5000) }); break;
            case "annotations": c.Annotations["big"] = new string('z', 300_000); break;
        }
        var e = Assert.Throws<InvalidArgumentException>(() => ContainerConfigLimits.Validate(c));
        Assert.Contains(field, e.Message);
        Assert.True(e.Message.Length < 1000, "the message must not quote the huge value");
    }
}
