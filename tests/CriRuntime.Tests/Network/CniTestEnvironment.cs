using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using CriRuntime.Network.Cni;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace CriRuntime.Tests.Network;

/// <summary>
/// Everything one CNI test needs, unique to it: a scratch dir (conf dir, host-local data dir, cache dir, a bin
/// dir for script plugins), a bridge name, a /24 subnet, and network namespaces. Dispose removes all of it,
/// including any iptables rules that mention one of its sandbox ids, even when the test failed half way.
/// </summary>
internal sealed class CniTestEnvironment : IDisposable
{
    public const string SystemPluginDir = "/usr/lib/cni";

    // Third octets handed out in order from a random start, second octet 240-249: parallel test classes in one
    // process never share a subnet, and a leftover from a crashed run is unlikely to collide.
    private static int nextSubnet = RandomNumberGenerator.GetInt32(0, 2560);

    private readonly List<string> namespaces = [];
    private readonly List<string> sandboxIds = [];

    public CniTestEnvironment()
    {
        if (Environment.UserName != "root")
            Assert.Fail("CNI tests need root (network namespaces, bridges, iptables)");
        Id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        Root = Path.Combine("/var/tmp/criruntime-tests", "cni-" + Id);
        Directory.CreateDirectory(ConfDir);
        Directory.CreateDirectory(BinDir);
        Bridge = "crt" + Id;
        int n = Interlocked.Increment(ref nextSubnet) % 2560;
        SubnetPrefix = $"10.{240 + n / 256}.{n % 256}";
    }

    public string Id { get; }
    public string Root { get; }
    public string ConfDir => Path.Combine(Root, "net.d");
    public string BinDir => Path.Combine(Root, "bin");
    public string CacheDir => Path.Combine(Root, "cache");
    public string IpamDir => Path.Combine(Root, "ipam");
    public string Bridge { get; }

    /// <summary>"10.x.y": the subnet is <c>{SubnetPrefix}.0/24</c>.</summary>
    public string SubnetPrefix { get; }
    public string Subnet => SubnetPrefix + ".0/24";
    public string NetworkName => "crt-test-" + Id;

    public CniManager Manager(TimeSpan? timeout = null) =>
        new(ConfDir, [BinDir, SystemPluginDir], CacheDir, NullLogger<CniManager>.Instance, timeout ?? TimeSpan.FromSeconds(30));

    /// <summary>The bridge plugin config of this test's network (host-local in this test's data dir).</summary>
    public JsonObject BridgePlugin(bool isGateway = false, bool ipMasq = false) => new()
    {
        ["type"] = "bridge",
        ["bridge"] = Bridge,
        ["isGateway"] = isGateway,
        ["ipMasq"] = ipMasq,
        ["ipam"] = new JsonObject
        {
            ["type"] = "host-local",
            ["ranges"] = new JsonArray(new JsonArray(new JsonObject { ["subnet"] = Subnet })),
            ["dataDir"] = IpamDir,
        },
    };

    public string WriteConfList(string fileName, string cniVersion, params JsonObject[] plugins)
    {
        var list = new JsonObject { ["cniVersion"] = cniVersion, ["name"] = NetworkName, ["plugins"] = new JsonArray(plugins) };
        string path = Path.Combine(ConfDir, fileName);
        File.WriteAllText(path, list.ToJsonString());
        return path;
    }

    /// <summary>Writes an executable shell script plugin into the test's bin dir.</summary>
    public string WritePlugin(string type, string script)
    {
        string path = Path.Combine(BinDir, type);
        File.WriteAllText(path, "#!/bin/sh\n" + script);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    /// <summary>A new network namespace (removed on dispose) and a request for it.</summary>
    public PodNetworkRequest NewPod(IReadOnlyList<PodPortMapping>? ports = null)
    {
        string sandboxId = Id + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        string ns = "crt-" + sandboxId[..16];
        Run("ip", "netns", "add", ns);
        namespaces.Add(ns);
        sandboxIds.Add(sandboxId);
        return new PodNetworkRequest(sandboxId, "/var/run/netns/" + ns, "pod-" + Id, "ns-" + Id, "uid-" + sandboxId[..8], ports ?? []);
    }

    public static string NamespaceName(PodNetworkRequest pod) => Path.GetFileName(pod.NetnsPath);

    public void DeleteNamespace(PodNetworkRequest pod) => Run("ip", "netns", "delete", NamespaceName(pod));

    /// <summary>IPs host-local holds for this network (one file per address).</summary>
    public IReadOnlyList<string> AllocatedIps()
    {
        string dir = Path.Combine(IpamDir, NetworkName);
        return Directory.Exists(dir)
            ? Directory.GetFiles(dir).Select(Path.GetFileName).Where(f => f!.StartsWith(SubnetPrefix + ".", StringComparison.Ordinal)).Select(f => f!).ToList()
            : [];
    }

    public static bool LinkExists(string name, string? netns = null) =>
        (netns is null ? Run("ip", "link", "show", "dev", name) : Run("ip", "-n", netns, "link", "show", "dev", name)).ExitCode == 0;

    public static (int ExitCode, string Stdout, string Stderr) Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            process.Kill(true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 30s");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    public static string MustRun(string file, params string[] args)
    {
        var (code, stdout, stderr) = Run(file, args);
        Assert.True(code == 0, $"{file} {string.Join(' ', args)} exited {code}: {stderr}");
        return stdout;
    }

    /// <summary>iptables-save lines mentioning one of this test's sandbox ids.</summary>
    public IReadOnlyList<string> IptablesRulesOf(string sandboxId) =>
        MustRun("iptables-save").Split('\n').Where(l => l.Contains(sandboxId, StringComparison.Ordinal)).ToList();

    public void Dispose()
    {
        foreach (var ns in namespaces) Run("ip", "netns", "delete", ns);
        if (LinkExists(Bridge)) Run("ip", "link", "delete", Bridge);
        foreach (var id in sandboxIds) RemoveIptablesRules(id);
        try { Directory.Delete(Root, recursive: true); }
        catch (DirectoryNotFoundException) { }
    }

    /// <summary>Safety net for a test that failed before DEL: deletes nat/filter rules whose comment names the
    /// sandbox and the per-sandbox chains they jump to (portmap's CNI-DN-*, bridge's masquerade CNI-*).</summary>
    private static void RemoveIptablesRules(string sandboxId)
    {
        foreach (var table in new[] { "nat", "filter" })
        {
            var lines = Run("iptables", "-t", table, "-S").Stdout.Split('\n');
            var chains = new HashSet<string>();
            foreach (var rule in lines.Where(l => l.StartsWith("-A ", StringComparison.Ordinal) && l.Contains(sandboxId, StringComparison.Ordinal)))
            {
                var words = rule.Split(' ');
                int jump = Array.IndexOf(words, "-j");
                if (jump >= 0 && jump + 1 < words.Length && words[jump + 1].StartsWith("CNI-", StringComparison.Ordinal) && words[jump + 1].Length > 20)
                    chains.Add(words[jump + 1]);
                // iptables -S quotes comments the way the command line wants them; let a shell split it back.
                Run("sh", "-c", $"iptables -t {table} {("-D" + rule[2..])}");
            }
            foreach (var chain in chains)
            {
                Run("iptables", "-t", table, "-F", chain);
                Run("iptables", "-t", table, "-X", chain);
            }
        }
    }
}
