using System.Net;
using System.Net.Sockets;
using CriRuntime.TestSupport;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests.Pods;

/// <summary>Pod networking through the CNI bridge and portmap plugins: the pod IP, host ports, the pod's own localhost.</summary>
[Collection(RegistryCollection.Name)]
public sealed class PodNetworkTests(RegistryFixture registry, ITestOutputHelper output) : PodTest(registry, output)
{
    [Fact]
    public async Task PodIp_HostPort_AndLocalhostBetweenContainers()
    {
        await StartPodDaemonAsync();
        int hostPort = FreeLoopbackPort();
        var pod = await RunPodAsync("net", c => c.PortMappings.Add(new PortMapping
        {
            Protocol = Protocol.Tcp,
            ContainerPort = 8080,
            HostPort = hostPort,
            HostIp = "127.0.0.1",
        }));
        string web = await CreateAndStartAsync(pod, "web",
            Sh("echo hi-from-web > /tmp/index.html; exec /bin/busybox httpd -f -p 8080 -h /tmp"));
        // Listens on the pod's loopback only: reachable from the pod's other containers, not from outside.
        string local = await CreateAndStartAsync(pod, "local",
            Sh("echo hi-from-localhost > /tmp/index.html; exec /bin/busybox httpd -f -p 127.0.0.1:9000 -h /tmp"));
        string client = await CreateAndStartAsync(pod, "client", ["sleep", "3600"]);
        var ip = await PodIpAsync(pod.Id);

        Assert.Equal("hi-from-web\n", await HttpGetAsync($"http://{ip}:8080/index.html"));
        Assert.Equal("hi-from-web\n", await HttpGetAsync($"http://127.0.0.1:{hostPort}/index.html"));

        string fromClient = "";
        bool answered = await EventuallyAsync(async () =>
        {
            var r = await ExecSyncAsync(client, ["wget", "-qO-", "http://127.0.0.1:9000/index.html"], timeoutSeconds: 10);
            fromClient = $"exit {r.ExitCode}: {r.Stdout.ToStringUtf8()}{r.Stderr.ToStringUtf8()}";
            return r.ExitCode == 0 && r.Stdout.ToStringUtf8() == "hi-from-localhost\n";
        }, TimeSpan.FromSeconds(15));
        Assert.True(answered, $"container 'client' did not reach 'local' on 127.0.0.1:9000 of their pod: {fromClient}");
        var refused = await Assert.ThrowsAnyAsync<SocketException>(() => ConnectAsync(ip, 9000));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);

        // The pod's containers share its UTS namespace too.
        Assert.Equal("net\n", await ExecOkAsync(client, "hostname"));

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [web, local, client], [ip.ToString()]);
        // With the portmap rules gone, nothing answers on the host port any more.
        await Assert.ThrowsAnyAsync<SocketException>(() => ConnectAsync(IPAddress.Loopback, hostPort));
    }

    [Theory]
    [InlineData(NamespaceMode.Pod)]
    [InlineData(NamespaceMode.Node)]
    public async Task HostNetworkPod_SharesTheNodesNetworkAndHostname(NamespaceMode ipc)
    {
        await StartPodDaemonAsync();
        var pod = await RunPodAsync("hostnet", c =>
        {
            c.Linux.SecurityContext.NamespaceOptions.Network = NamespaceMode.Node;
            c.Linux.SecurityContext.NamespaceOptions.Ipc = ipc;
        });
        string app = await CreateAndStartAsync(pod, "app", ["sleep", "3600"]);

        string nodeNet = new FileInfo("/proc/self/ns/net").LinkTarget!;
        Assert.Equal(nodeNet + "\n", await ExecOkAsync(app, "busybox", "readlink", "/proc/self/ns/net"));
        Assert.Equal(File.ReadAllText("/proc/sys/kernel/hostname"), await ExecOkAsync(app, "hostname"));
        var response = await PodStatusAsync(pod.Id);
        var status = response.Status;
        Assert.Equal(PodSandboxState.SandboxReady, status.State);
        // With a timestamp the kubelet's evented PLEG reads the containers from this answer alone.
        Assert.True(response.Timestamp > 0);
        Assert.Equal(ContainerState.ContainerRunning, Assert.Single(response.ContainersStatuses, c => c.Id == app).State);
        Assert.Equal(NamespaceMode.Node, status.Linux.Namespaces.Options.Network);

        await StopPodAsync(pod.Id);
        await RemovePodAsync(pod.Id);
        await AssertNothingLeftAsync([pod], [app], []);
    }

    /// <summary>A port nothing listens on at 127.0.0.1 right now.</summary>
    private static int FreeLoopbackPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static async Task ConnectAsync(IPAddress address, int port)
    {
        using var tcp = new TcpClient();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await tcp.ConnectAsync(address, port, cts.Token);
    }
}
