using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using CriRuntime.Api;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>Start-up, the socket, shutdown, configuration errors, and the command line.</summary>
public sealed class LifecycleTests(ITestOutputHelper output) : DaemonTest(output)
{
    [Fact]
    public async Task Socket_HasMode0660()
    {
        var d = await StartDaemonAsync();
        var mode = File.GetUnixFileMode(d.Socket);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, mode);
    }

    [Fact]
    public async Task StaleSocketFile_IsReplaced()
    {
        string baseDir = TempDir();
        string socket = Path.Combine(baseDir, "run", "criruntime.sock");
        Directory.CreateDirectory(Path.GetDirectoryName(socket)!);
        BindAndCloseUnixSocket(socket);
        Assert.True(Path.Exists(socket), "the stale socket file was not left behind");
        Assert.Throws<SocketException>(() =>
        {
            using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            probe.Connect(new UnixDomainSocketEndPoint(socket));
        });

        var d = Track(await DaemonProcess.StartAsync(baseDir: baseDir));

        var version = await d.Runtime.VersionAsync(new VersionRequest(), deadline: Deadline());
        Assert.Equal("criruntime", version.RuntimeName);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(socket));
    }

    [Fact]
    public async Task SecondDaemonOnSameSocket_FailsAndFirstKeepsServing()
    {
        var first = await StartDaemonAsync();
        string otherBase = TempDir();
        string config = Path.Combine(otherBase, "config.toml");
        File.WriteAllText(config, $"""
            socket = "{first.Socket}"
            root = "{Path.Combine(otherBase, "root")}"
            state = "{Path.Combine(otherBase, "state")}"

            [metrics]
            address = "127.0.0.1:0"

            """);

        var run = await RunBinaryAsync(TimeSpan.FromSeconds(30), "--config", config);

        Assert.True(run.ExitCode != 0, $"the second daemon exited {run.ExitCode}\n{run}");
        Assert.Contains("already", run.Stdout + run.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.True(Path.Exists(first.Socket), "the second daemon removed the first one's socket");
        Assert.False(first.HasExited, "the first daemon exited");
        // A new connection (not the client's pooled one) reaches the first daemon.
        using var channel = CriChannel.ForUnixSocket(first.Socket);
        var version = await new RuntimeService.RuntimeServiceClient(channel).VersionAsync(new VersionRequest(), deadline: Deadline());
        Assert.Equal("criruntime", version.RuntimeName);
    }

    [Fact]
    public async Task Sigterm_ExitsZeroWithinTenSeconds()
    {
        var d = await StartDaemonAsync();
        var sw = Stopwatch.StartNew();
        int code;
        try
        {
            code = await d.StopAsync(TimeSpan.FromSeconds(10));
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException($"the daemon did not exit within 10 s of SIGTERM\n{d.LogTail()}");
        }
        Assert.True(code == 0, $"exit code {code} after SIGTERM ({sw.Elapsed})\n{d.LogTail()}");
    }

    [Theory]
    [InlineData("bogus_top_key = 1\n", "bogus_top_key")]
    [InlineData("[registry]\nbogus_registry_key = \"x\"\n", "bogus_registry_key")]
    public async Task UnknownConfigKey_ExitsNonZeroNamingTheKey(string extra, string key)
    {
        string baseDir = TempDir();
        string config = Path.Combine(baseDir, "config.toml");
        File.WriteAllText(config, $"""
            socket = "{Path.Combine(baseDir, "run", "criruntime.sock")}"
            root = "{Path.Combine(baseDir, "root")}"
            state = "{Path.Combine(baseDir, "state")}"
            {extra}
            """);

        var run = await RunBinaryAsync(TimeSpan.FromSeconds(30), "--config", config);

        Assert.True(run.ExitCode != 0, $"exit code {run.ExitCode}\n{run}");
        Assert.True(run.Stderr.Contains(key, StringComparison.Ordinal), $"stderr does not name {key}\n{run}");
        Assert.False(Path.Exists(Path.Combine(baseDir, "run", "criruntime.sock")), "a socket was created despite the bad config");
    }

    [Fact]
    public async Task DefaultConfig_IsAcceptedAsConfigFile()
    {
        var run = await RunBinaryAsync(TimeSpan.FromSeconds(30), "config", "default");
        Assert.True(run.ExitCode == 0, run.ToString());

        string baseDir = TempDir();
        string text = run.Stdout;
        text = ReplaceKey(text, "socket", Path.Combine(baseDir, "run", "criruntime.sock"));
        text = ReplaceKey(text, "root", Path.Combine(baseDir, "root"));
        text = ReplaceKey(text, "state", Path.Combine(baseDir, "state"));
        // The default metrics port could be taken on this machine.
        var metricsAddress = new Regex(@"(\[metrics\][^\[]*?^address = )""[^""]*""", RegexOptions.Multiline | RegexOptions.Singleline);
        Assert.True(metricsAddress.IsMatch(text), "the default config has no [metrics] address\n" + run.Stdout);
        text = metricsAddress.Replace(text, "$1\"127.0.0.1:0\"");
        File.WriteAllText(Path.Combine(baseDir, "config.toml"), text);

        var d = Track(await DaemonProcess.StartExistingAsync(baseDir, TimeSpan.FromSeconds(30)));

        var version = await d.Runtime.VersionAsync(new VersionRequest(), deadline: Deadline());
        Assert.Equal("criruntime", version.RuntimeName);
        Assert.True(Path.Exists(Path.Combine(baseDir, "run", "criruntime.sock")));
        Assert.True(Directory.Exists(Path.Combine(baseDir, "root")));
    }

    [Fact]
    public async Task Version_PrintsName()
    {
        var run = await RunBinaryAsync(TimeSpan.FromSeconds(30), "--version");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("criruntime", run.Stdout);
    }

    /// <summary>Replaces the one top-level line "key = ..." with a quoted <paramref name="value"/>.</summary>
    private static string ReplaceKey(string toml, string key, string value)
    {
        var line = new Regex($"^{Regex.Escape(key)} = .*$", RegexOptions.Multiline);
        int matches = line.Matches(toml).Count;
        Assert.True(matches == 1, $"the default config has {matches} '{key} = ' lines, expected 1:\n{toml}");
        return line.Replace(toml, $"{key} = \"{value}\"");
    }

    public sealed record RunResult(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout:\n{Stdout}\n--- stderr:\n{Stderr}";
    }

    /// <summary>Runs the daemon binary to completion (killed after <paramref name="timeout"/>).</summary>
    public static async Task<RunResult> RunBinaryAsync(TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo(DaemonProcess.BinaryPath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start " + psi.FileName);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill();
            await p.WaitForExitAsync();
            throw new Xunit.Sdk.XunitException(
                $"criruntime {string.Join(' ', args)} did not exit within {timeout}\n--- stdout:\n{await stdout}\n--- stderr:\n{await stderr}");
        }
        return new RunResult(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>Leaves a unix socket file with nobody listening: bind, then close without unlinking.</summary>
    private static void BindAndCloseUnixSocket(string path)
    {
        int fd = socket(1 /* AF_UNIX */, 1 /* SOCK_STREAM */, 0);
        Assert.True(fd >= 0, $"socket() failed: errno {Marshal.GetLastPInvokeError()}");
        try
        {
            // struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; }
            var address = new byte[110];
            BitConverter.GetBytes((ushort)1).CopyTo(address, 0);
            var pathBytes = Encoding.UTF8.GetBytes(path);
            Assert.True(pathBytes.Length < 108, "socket path too long");
            pathBytes.CopyTo(address, 2);
            int rc = bind(fd, address, 2 + pathBytes.Length + 1);
            Assert.True(rc == 0, $"bind({path}) failed: errno {Marshal.GetLastPInvokeError()}");
            Assert.True(listen(fd, 1) == 0, $"listen failed: errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            close(fd);
        }
    }

    [DllImport("libc", SetLastError = true)] private static extern int socket(int domain, int type, int protocol);
    [DllImport("libc", SetLastError = true)] private static extern int bind(int fd, byte[] address, int length);
    [DllImport("libc", SetLastError = true)] private static extern int listen(int fd, int backlog);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);
}
