using CriRuntime.Oci;
using CriRuntime.Tests.Storage;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Oci;

/// <summary>
/// A device host_path that is a directory is walked for device nodes. The fuzz suite sent "/" and got INTERNAL
/// (UnauthorizedAccessException in /proc) after a walk of the whole host; the walk is bounded and its errors are
/// the request's fault.
/// </summary>
public sealed class DeviceDirectoryWalkTests : IDisposable
{
    private readonly TempDir tmp = new();
    private readonly string rootfs;

    public DeviceDirectoryWalkTests()
    {
        rootfs = tmp["rootfs"];
        TestRootfs.Create(rootfs);
    }

    public void Dispose() => tmp.Dispose();

    private ContainerSpecInput Input(string hostPath) => new()
    {
        Id = "c1",
        Config = new ContainerConfig
        {
            Metadata = new ContainerMetadata { Name = "app" },
            Command = { "sh" },
            Devices = { new Device { HostPath = hostPath, ContainerPath = "/dev/x", Permissions = "rw" } },
        },
        PodConfig = new PodSandboxConfig { Metadata = new PodSandboxMetadata { Name = "p", Namespace = "ns", Uid = "u1" } },
        Image = new CriRuntime.Images.ImageRuntimeConfig(),
        RootfsPath = rootfs,
        PidMode = CriRuntime.Oci.PidNamespaceMode.Container,
        CgroupsPath = "/kubepods/podu1/c1",
        Hostname = "h1",
        SwapLimitSupported = true,
    };

    [Fact]
    public void The_host_root_as_a_device_directory_is_an_invalid_argument()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input("/")));
        Assert.StartsWith("device /:", e.Message);
    }

    [Fact]
    public void A_deep_directory_is_an_invalid_argument_and_a_small_one_still_works()
    {
        string deep = tmp["deep"];
        string dir = deep;
        for (int i = 0; i < 20; i++) dir = Directory.CreateDirectory(Path.Combine(dir, "d")).FullName;
        var e = Assert.Throws<InvalidArgumentException>(() => RuntimeSpecBuilder.BuildContainer(Input(deep)));
        Assert.Contains("nest more than", e.Message);

        // The host's whole /dev is a directory of device nodes well within the bounds: its nodes come out below /dev/x.
        var spec = RuntimeSpecBuilder.BuildContainer(Input("/dev"));
        Assert.Contains(spec.Linux!.Devices!, d => d.Path == "/dev/x/null" && d.Type == "c" && d.Major == 1 && d.Minor == 3);
    }
}
