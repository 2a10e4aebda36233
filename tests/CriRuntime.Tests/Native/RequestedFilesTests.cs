using System.Diagnostics;
using CriRuntime.Native;
using CriRuntime.Oci;
using CriRuntime.Oci.Spec;
using Xunit;

namespace CriRuntime.Tests.Native;

/// <summary>Files a request names are read without blocking and without bound only when they are small regular files.</summary>
public sealed class RequestedFilesTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("criruntime-requested-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void A_regular_file_is_read_whole()
    {
        string path = Path.Combine(dir, "profile.json");
        File.WriteAllText(path, "{\"defaultAction\": \"SCMP_ACT_ALLOW\"}");
        Assert.Equal(File.ReadAllBytes(path), RequestedFiles.ReadRegularFile(path, 1024, "test field"));
    }

    [Fact]
    public async Task A_fifo_nobody_writes_is_refused_at_once_naming_field_and_path()
    {
        string path = Path.Combine(dir, "fifo");
        Files.Mknod(path, FileType.Fifo, 0x180);
        var read = Task.Run(() => RequestedFiles.ReadRegularFile(path, 1024, "test field"));
        // The old File.ReadAllText blocked in open(2) until a writer came: bound the wait instead of hanging the test.
        var e = await Assert.ThrowsAsync<InvalidArgumentException>(() => read.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("test field", e.Message);
        Assert.Contains(path, e.Message);
        Assert.Contains("FIFO", e.Message);
    }

    [Fact]
    public void Dev_zero_is_refused_as_a_device()
    {
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<InvalidArgumentException>(() => RequestedFiles.ReadRegularFile("/dev/zero", 1024, "test field"));
        Assert.Contains("/dev/zero", e.Message);
        Assert.Contains("character device", e.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
    }

    [Fact]
    public void Directories_missing_files_and_oversized_files_are_refused()
    {
        Assert.Contains("not a regular file", Assert.Throws<InvalidArgumentException>(() => RequestedFiles.ReadRegularFile(dir, 1024, "f")).Message);
        Assert.Contains("cannot be read", Assert.Throws<InvalidArgumentException>(() => RequestedFiles.ReadRegularFile(Path.Combine(dir, "none"), 1024, "f")).Message);
        string big = Path.Combine(dir, "big");
        File.WriteAllBytes(big, new byte[1025]);
        Assert.Contains("more than the 1024", Assert.Throws<InvalidArgumentException>(() => RequestedFiles.ReadRegularFile(big, 1024, "f")).Message);
        File.WriteAllBytes(big, new byte[1024]);
        Assert.Equal(1024, RequestedFiles.ReadRegularFile(big, 1024, "f").Length);
    }

    [Fact]
    public async Task Seccomp_localhost_profiles_that_are_fifos_or_devices_are_invalid_arguments()
    {
        string fifo = Path.Combine(dir, "profile-fifo");
        Files.Mknod(fifo, FileType.Fifo, 0x180);
        var fromFifo = Task.Run(() => SeccompProfiles.Localhost(fifo, []));
        var e = await Assert.ThrowsAsync<InvalidArgumentException>(() => fromFifo.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains(fifo, e.Message);
        Assert.Contains("localhost_ref", e.Message);
        Assert.Contains("/dev/zero", Assert.Throws<InvalidArgumentException>(() => SeccompProfiles.Localhost("/dev/zero", [])).Message);
        string huge = Path.Combine(dir, "huge.json");
        File.WriteAllBytes(huge, new byte[SeccompProfiles.MaxLocalhostProfileBytes + 1]);
        Assert.Contains("more than the", Assert.Throws<InvalidArgumentException>(() => SeccompProfiles.Localhost(huge, [])).Message);
    }
}
