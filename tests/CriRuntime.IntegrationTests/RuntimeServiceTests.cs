using ProtoReflection = Google.Protobuf.Reflection;
using CriRuntime.TestSupport;
using Grpc.Core;
using Runtime.V1;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.IntegrationTests;

/// <summary>Version, Status (with the CNI config dir watched live), RuntimeConfig, and the RPCs not implemented yet.</summary>
public sealed class RuntimeServiceTests(ITestOutputHelper output) : DaemonTest(output)
{
    [Fact]
    public async Task Version_NamesRuntimeAndApi()
    {
        var d = await StartDaemonAsync();
        var version = await d.Runtime.VersionAsync(new VersionRequest { Version = "0.1.0" }, deadline: Deadline());
        Assert.Equal("criruntime", version.RuntimeName);
        Assert.Equal("v1", version.RuntimeApiVersion);
        Assert.False(string.IsNullOrEmpty(version.RuntimeVersion), "runtime_version is empty");
    }

    [Fact]
    public async Task RuntimeConfig_NamesTheCgroupfsDriver()
    {
        // The kubelet (KubeletCgroupDriverFromCRI) takes its cgroup driver from here; criruntime writes cgroupfs itself.
        var d = await StartDaemonAsync();
        var config = await d.Runtime.RuntimeConfigAsync(new RuntimeConfigRequest(), deadline: Deadline());
        Assert.NotNull(config.Linux);
        Assert.Equal(CgroupDriver.Cgroupfs, config.Linux.CgroupDriver);
    }

    [Fact]
    public async Task UpdateRuntimeConfig_RendersTheConfTemplate_AndTheNetworkBecomesReady()
    {
        string confDir = TempDir("criruntime-cni-");
        string template = Path.Combine(TempDir("criruntime-cnitemplate-"), "template.conflist");
        File.WriteAllText(template, """
            {
              "cniVersion": "1.0.0",
              "name": "criruntime-template-test",
              "plugins": [
                { "type": "bridge", "bridge": "crt-tmpl", "ipam": { "type": "host-local", "ranges": [[{ "subnet": "{{.PodCIDR}}" }]] } }
              ]
            }
            """);
        var d = await StartDaemonAsync($"[cni]\nconf_dir = \"{confDir}\"\nconf_template = \"{template}\"\n");
        Assert.False(Condition(await StatusAsync(d), "NetworkReady").Status, "NetworkReady with an empty conf_dir");

        await d.Runtime.UpdateRuntimeConfigAsync(new UpdateRuntimeConfigRequest
        {
            RuntimeConfig = new RuntimeConfig { NetworkConfig = new NetworkConfig { PodCidr = "10.244.3.0/24" } },
        }, deadline: Deadline());
        string rendered = File.ReadAllText(Path.Combine(confDir, "10-criruntime-template.conflist"));
        Assert.Contains("\"subnet\": \"10.244.3.0/24\"", rendered);
        var ready = await NetworkReadyConditionAsync(d, expected: true);
        Assert.True(ready.Status, $"NetworkReady is still false after the template was rendered: {ready.Reason}: {ready.Message}");
        var verbose = await d.Runtime.StatusAsync(new StatusRequest { Verbose = true }, deadline: Deadline());
        Assert.Contains("10.244.3.0/24", verbose.Info["config"]);

        var bad = await ExpectRpcErrorAsync(d, StatusCode.InvalidArgument, "UpdateRuntimeConfig(bad CIDR)", async () =>
            await d.Runtime.UpdateRuntimeConfigAsync(new UpdateRuntimeConfigRequest
            {
                RuntimeConfig = new RuntimeConfig { NetworkConfig = new NetworkConfig { PodCidr = "10.244.3.0" } },
            }, deadline: Deadline()));
        Assert.Contains("not a CIDR", bad.Status.Detail);
        Assert.Contains("10.244.3.0/24", File.ReadAllText(Path.Combine(confDir, "10-criruntime-template.conflist")));
    }

    [Fact]
    public async Task Status_NetworkReadyFollowsCniConfDirWithoutRestart()
    {
        string confDir = TempDir("criruntime-cni-");
        var d = await StartDaemonAsync($"[cni]\nconf_dir = \"{confDir}\"\n");

        var status = await StatusAsync(d);
        Assert.True(Condition(status, "RuntimeReady").Status, "RuntimeReady is false");
        var network = Condition(status, "NetworkReady");
        Assert.False(network.Status, "NetworkReady is true with an empty CNI config dir");
        Assert.Equal("NetworkPluginNotReady", network.Reason);
        Assert.False(string.IsNullOrEmpty(network.Message), "NetworkReady=false has no message");

        File.WriteAllText(Path.Combine(confDir, "10-test.conflist"), """
            {
              "cniVersion": "1.0.0",
              "name": "criruntime-test",
              "plugins": [ { "type": "loopback" } ]
            }
            """);

        var ready = await NetworkReadyConditionAsync(d, expected: true);
        Assert.True(ready.Status, $"NetworkReady is still false after adding a conflist: {ready.Reason}: {ready.Message}");
        Assert.True(Condition(await StatusAsync(d), "RuntimeReady").Status);

        // And back: an invalid config alone is not ready.
        File.Delete(Path.Combine(confDir, "10-test.conflist"));
        File.WriteAllText(Path.Combine(confDir, "10-broken.conflist"), "{ not json");
        var broken = await NetworkReadyConditionAsync(d, expected: false);
        Assert.False(broken.Status, "NetworkReady is true with only a broken conflist");
        Assert.Equal("NetworkPluginNotReady", broken.Reason);
    }

    /// <summary>
    /// The README's RPC table is the promise: every RPC it marks UNIMPLEMENTED answers exactly that,
    /// and every other one is served (an empty request gets an answer or a validation error, never
    /// UNIMPLEMENTED, and never Internal/Unknown, which would mean a crash on bad input).
    /// </summary>
    [Fact]
    public async Task ReadmeRpcTable_IsTrue()
    {
        var table = ReadRpcTable();
        var services = new Dictionary<string, ProtoReflection.ServiceDescriptor>
        {
            ["RuntimeService"] = RuntimeService.Descriptor,
            ["ImageService"] = ImageService.Descriptor,
        };
        var listed = table.Select(r => $"{r.Service}/{r.Rpc}").ToHashSet();
        var missing = services.SelectMany(s => s.Value.Methods.Select(m => $"{s.Key}/{m.Name}")).Where(m => !listed.Contains(m)).ToList();
        Assert.True(missing.Count == 0, "README's RPC table lacks: " + string.Join(", ", missing));

        var d = await StartDaemonAsync();
        var wrong = new List<string>();
        foreach (var (service, rpc, unimplemented) in table)
        {
            var method = services[service].FindMethodByName(rpc);
            Assert.True(method is not null, $"README lists {service}/{rpc}, which the proto does not have");
            var code = await CallWithEmptyRequestAsync(d, service, method!);
            if (unimplemented && code != StatusCode.Unimplemented)
                wrong.Add($"{service}/{rpc}: README says UNIMPLEMENTED, the daemon answers {code}");
            if (!unimplemented && code is StatusCode.Unimplemented or StatusCode.Internal or StatusCode.Unknown)
                wrong.Add($"{service}/{rpc}: README says it works, an empty request gets {code}");
        }
        Assert.True(wrong.Count == 0, string.Join('\n', wrong) + "\n--- daemon log tail:\n" + d.LogTail());

        // The daemon is unharmed.
        Assert.Equal("criruntime", (await d.Runtime.VersionAsync(new VersionRequest(), deadline: Deadline())).RuntimeName);
    }

    /// <summary>Rows "| service | RPC | status |" of the README's RPC table.</summary>
    private static IReadOnlyList<(string Service, string Rpc, bool Unimplemented)> ReadRpcTable()
    {
        var rows = new List<(string, string, bool)>();
        foreach (var line in File.ReadLines(Path.Combine(DaemonProcess.RepoRoot, "README.md")))
        {
            var cells = line.Split('|', StringSplitOptions.TrimEntries);
            if (cells.Length < 5 || cells[1] is not ("RuntimeService" or "ImageService")) continue;
            rows.Add((cells[1], cells[2], cells[3].StartsWith("UNIMPLEMENTED", StringComparison.Ordinal)));
        }
        Assert.True(rows.Count > 0, "no RPC table found in README.md");
        return rows;
    }

    /// <summary>Calls any CRI method with an empty request through the raw call invoker; returns the status code.</summary>
    private static async Task<StatusCode> CallWithEmptyRequestAsync(DaemonProcess d, string service, ProtoReflection.MethodDescriptor method)
    {
        var marshaller = Marshallers.Create<byte[]>(b => b, b => b);
        var type = method.IsServerStreaming ? MethodType.ServerStreaming : method.IsClientStreaming ? MethodType.ClientStreaming : MethodType.Unary;
        var call = new Method<byte[], byte[]>(type, $"runtime.v1.{service}", method.Name, marshaller, marshaller);
        var invoker = d.Channel.CreateCallInvoker();
        // GetContainerEvents streams until the client leaves: a served one ends at the deadline.
        var options = new CallOptions(deadline: DateTime.UtcNow.AddSeconds(method.Name == "GetContainerEvents" ? 2 : 20));
        try
        {
            switch (type)
            {
                case MethodType.Unary:
                    await invoker.AsyncUnaryCall(call, null, options, []);
                    break;
                case MethodType.ServerStreaming:
                    using (var streaming = invoker.AsyncServerStreamingCall(call, null, options, []))
                        while (await streaming.ResponseStream.MoveNext(CancellationToken.None)) { }
                    break;
                default:
                    throw new InvalidOperationException($"{method.FullName}: client streaming is not used by CRI");
            }
            return StatusCode.OK;
        }
        catch (RpcException e)
        {
            return e.StatusCode;
        }
    }

    private static async Task<StatusResponse> StatusAsync(DaemonProcess d)
    {
        try
        {
            return await d.Runtime.StatusAsync(new StatusRequest(), deadline: Deadline());
        }
        catch (RpcException e)
        {
            throw new Xunit.Sdk.XunitException($"Status failed: {e.StatusCode}: {e.Status.Detail}\n{d.LogTail()}");
        }
    }

    /// <summary>
    /// The NetworkReady condition once it reads <paramref name="expected"/>, or the last one read after 10 s: the
    /// daemon learns of conf_dir changes from inotify, so a Status call right after a write may come before it.
    /// </summary>
    private static async Task<RuntimeCondition> NetworkReadyConditionAsync(DaemonProcess d, bool expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var condition = Condition(await StatusAsync(d), "NetworkReady");
            if (condition.Status == expected || DateTime.UtcNow > deadline) return condition;
            await Task.Delay(50);
        }
    }

    private static RuntimeCondition Condition(StatusResponse response, string type)
    {
        var matches = response.Status.Conditions.Where(c => c.Type == type).ToList();
        Assert.True(matches.Count == 1, $"Status has {matches.Count} {type} conditions: {response.Status}");
        return matches[0];
    }
}
