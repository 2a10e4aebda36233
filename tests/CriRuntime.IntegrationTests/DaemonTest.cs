using System.Diagnostics;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace CriRuntime.IntegrationTests;

/// <summary>
/// Base for tests that start daemons: tracks every daemon and temp dir a test makes, and on dispose
/// stops the daemons, writes their log tails to the test output (shown with a failure), and deletes
/// the dirs. xunit makes a new instance per test, so each test gets its own daemons.
/// </summary>
public abstract class DaemonTest(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Deadline for one RPC; pulls of the test images from loopback take well under a second.</summary>
    public static readonly TimeSpan RpcTimeout = TimeSpan.FromSeconds(90);

    private readonly List<DaemonProcess> daemons = [];
    private readonly List<string> dirs = [];

    protected ITestOutputHelper Output { get; } = output;

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        foreach (var d in daemons)
        {
            try
            {
                await d.DisposeAsync();
            }
            catch (Exception e)
            {
                Output.WriteLine($"stopping daemon {d.BaseDir}: {e.Message}");
            }
            Output.WriteLine($"--- daemon log tail ({d.BaseDir}):\n{d.LogTail(120)}");
            dirs.Add(d.BaseDir);
        }
        foreach (var dir in dirs.Distinct()) TryDelete(dir);
    }

    /// <summary>The umask daemons of this test start with (octal); null: the test process's.</summary>
    protected virtual string? DaemonUmask => null;

    /// <summary>Starts a daemon on a fresh base dir (deleted after the test).</summary>
    protected async Task<DaemonProcess> StartDaemonAsync(string? extraConfig = null)
    {
        string baseDir = TempDir("criruntime-integ-");
        var d = await DaemonProcess.StartAsync(extraConfig, baseDir, umask: DaemonUmask);
        daemons.Add(d);
        return d;
    }

    /// <summary>Restarts a daemon on its base dir (after it was stopped or killed).</summary>
    protected async Task<DaemonProcess> RestartDaemonAsync(DaemonProcess stopped)
    {
        var d = await DaemonProcess.StartExistingAsync(stopped.BaseDir, TimeSpan.FromSeconds(30), DaemonUmask);
        daemons.Add(d);
        return d;
    }

    /// <summary>Adopts a daemon started some other way, so it is stopped and its dir deleted after the test.</summary>
    protected DaemonProcess Track(DaemonProcess d)
    {
        daemons.Add(d);
        return d;
    }

    /// <summary>A new temp dir, deleted after the test.</summary>
    protected string TempDir(string prefix = "criruntime-integ-")
    {
        string dir = Directory.CreateTempSubdirectory(prefix).FullName;
        dirs.Add(dir);
        return dir;
    }

    private static void TryDelete(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    // ---- RPC helpers: a failure says what was asked and shows the daemon's log tail.

    protected static DateTime Deadline() => DateTime.UtcNow + RpcTimeout;

    protected static async Task<string> PullAsync(DaemonProcess d, string image, AuthConfig? auth = null)
    {
        var request = new PullImageRequest { Image = new ImageSpec { Image = image } };
        if (auth is not null) request.Auth = auth;
        try
        {
            var response = await d.Images.PullImageAsync(request, deadline: Deadline());
            return response.ImageRef;
        }
        catch (RpcException e)
        {
            throw new XunitException($"PullImage({image}) failed: {e.StatusCode}: {e.Status.Detail}\n--- daemon log tail:\n{d.LogTail()}");
        }
    }

    protected static async Task<Image?> StatusAsync(DaemonProcess d, string image)
    {
        try
        {
            var response = await d.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = image } }, deadline: Deadline());
            return response.Image;
        }
        catch (RpcException e)
        {
            throw new XunitException($"ImageStatus({image}) failed: {e.StatusCode}: {e.Status.Detail}\n--- daemon log tail:\n{d.LogTail()}");
        }
    }

    /// <summary>ImageStatus that must find the image.</summary>
    protected static async Task<Image> RequireStatusAsync(DaemonProcess d, string image)
    {
        var found = await StatusAsync(d, image);
        return found ?? throw new XunitException($"ImageStatus({image}) found no image\n--- daemon log tail:\n{d.LogTail()}");
    }

    protected static async Task<IReadOnlyList<Image>> ListAsync(DaemonProcess d, string? filter = null)
    {
        var request = new ListImagesRequest();
        if (filter is not null) request.Filter = new ImageFilter { Image = new ImageSpec { Image = filter } };
        try
        {
            var response = await d.Images.ListImagesAsync(request, deadline: Deadline());
            return response.Images;
        }
        catch (RpcException e)
        {
            throw new XunitException($"ListImages({filter}) failed: {e.StatusCode}: {e.Status.Detail}\n--- daemon log tail:\n{d.LogTail()}");
        }
    }

    protected static async Task RemoveAsync(DaemonProcess d, string image)
    {
        try
        {
            await d.Images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = image } }, deadline: Deadline());
        }
        catch (RpcException e)
        {
            throw new XunitException($"RemoveImage({image}) failed: {e.StatusCode}: {e.Status.Detail}\n--- daemon log tail:\n{d.LogTail()}");
        }
    }

    protected static async Task<FilesystemUsage> FsInfoAsync(DaemonProcess d)
    {
        try
        {
            var response = await d.Images.ImageFsInfoAsync(new ImageFsInfoRequest(), deadline: Deadline());
            Assert.True(response.ImageFilesystems.Count > 0, "ImageFsInfo returned no image_filesystems");
            return response.ImageFilesystems[0];
        }
        catch (RpcException e)
        {
            throw new XunitException($"ImageFsInfo failed: {e.StatusCode}: {e.Status.Detail}\n--- daemon log tail:\n{d.LogTail()}");
        }
    }

    /// <summary>Runs <paramref name="call"/>, which must fail with <paramref name="expected"/>; returns the exception.</summary>
    protected static async Task<RpcException> ExpectRpcErrorAsync(DaemonProcess d, StatusCode expected, string what, Func<Task> call)
    {
        try
        {
            await call();
        }
        catch (RpcException e)
        {
            if (e.StatusCode != expected)
                throw new XunitException($"{what}: expected {expected}, got {e.StatusCode}: {e.Status.Detail}\n--- daemon log tail:\n{d.LogTail()}");
            return e;
        }
        throw new XunitException($"{what}: expected {expected}, but the call succeeded\n--- daemon log tail:\n{d.LogTail()}");
    }

    protected static Task<RpcException> ExpectPullErrorAsync(DaemonProcess d, StatusCode expected, string image, AuthConfig? auth = null)
    {
        var request = new PullImageRequest { Image = new ImageSpec { Image = image } };
        if (auth is not null) request.Auth = auth;
        return ExpectRpcErrorAsync(d, expected, $"PullImage({image})",
            async () => await d.Images.PullImageAsync(request, deadline: Deadline()));
    }

    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="timeout"/> passes.</summary>
    protected static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (condition()) return true;
            if (sw.Elapsed > timeout) return false;
            await Task.Delay(50);
        }
    }
}
