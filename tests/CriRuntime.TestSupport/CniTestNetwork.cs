using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace CriRuntime.TestSupport;

/// <summary>
/// A CNI network of its own for one test: a temp conf dir holding one conflist (bridge on a unique
/// bridge name with host-local IPAM on a unique 10.200.X.0/24 and a temp dataDir, then portmap with
/// SNAT for localhost host ports). Disposing deletes the bridge (and any veth still enslaved to it),
/// the dataDir and the conf dir.
/// </summary>
/// <remarks>
/// The /24 is reserved with an exclusive lock file in /tmp, so parallel tests and parallel test runs
/// never share a subnet, and subnets the host already routes are skipped.
/// </remarks>
public sealed class CniTestNetwork : IAsyncDisposable
{
    /// <summary>Where the Debian containernetworking-plugins package puts the plugins.</summary>
    public const string PluginDir = "/usr/lib/cni";

    /// <summary>The interface name CRI runtimes give the pod side of the veth.</summary>
    public const string PodInterface = "eth0";

    private const string ConflistFileName = "10-criruntime-test.conflist";

    private readonly FileStream subnetLock;
    private readonly string rootDir;
    private int disposed;

    private CniTestNetwork(string name, string bridgeName, int thirdOctet, FileStream subnetLock, string rootDir)
    {
        Name = name;
        BridgeName = bridgeName;
        ThirdOctet = thirdOctet;
        this.subnetLock = subnetLock;
        this.rootDir = rootDir;
        ConfDir = Path.Combine(rootDir, "net.d");
        DataDir = Path.Combine(rootDir, "ipam");
    }

    /// <summary>The CNI network name (also host-local's subdirectory of <see cref="DataDir"/>).</summary>
    public string Name { get; }

    /// <summary>The Linux bridge the bridge plugin creates ("crt" + 8 hex digits).</summary>
    public string BridgeName { get; }

    /// <summary>X in 10.200.X.0/24.</summary>
    public int ThirdOctet { get; }

    /// <summary>The directory to point the daemon's <c>[cni] conf_dir</c> at.</summary>
    public string ConfDir { get; }

    /// <summary>host-local's dataDir: one file per reserved IP under <c>DataDir/Name</c>.</summary>
    public string DataDir { get; }

    public string Subnet => $"10.200.{ThirdOctet}.0/24";

    /// <summary>The bridge's address (isGateway).</summary>
    public IPAddress Gateway => new([10, 200, (byte)ThirdOctet, 1]);

    public string ConflistPath => Path.Combine(ConfDir, ConflistFileName);

    /// <summary>TOML for the daemon: the [cni] section pointing at this network.</summary>
    public string DaemonConfig => $"[cni]\nconf_dir = \"{ConfDir}\"\nbin_dirs = [\"{PluginDir}\"]\n";

    /// <summary>Makes the conf dir and conflist on a free 10.200.X.0/24. Nothing is created on the host until a pod is added.</summary>
    public static CniTestNetwork Create()
    {
        var routed = HostIPv4Routes();
        int start = Random.Shared.Next(256);
        for (int i = 0; i < 256; i++)
        {
            int octet = (start + i) % 256;
            uint subnet = (10u << 24) | (200u << 16) | ((uint)octet << 8);
            if (routed.Any(r => Overlaps(r.Network, r.Mask, subnet, 0xFFFFFF00u))) continue;
            var held = TryLockSubnet(octet);
            if (held is null) continue;

            string hex = Guid.NewGuid().ToString("N")[..8];
            string rootDir = Directory.CreateTempSubdirectory($"criruntime-cni-{hex}-").FullName;
            var network = new CniTestNetwork($"criruntime-test-{hex}", "crt" + hex, octet, held, rootDir);
            try
            {
                Directory.CreateDirectory(network.ConfDir);
                Directory.CreateDirectory(network.DataDir);
                File.WriteAllText(network.ConflistPath, network.ConflistJson());
                return network;
            }
            catch
            {
                network.DeleteFiles();
                held.Dispose();
                throw;
            }
        }
        throw new InvalidOperationException(
            "no free 10.200.X.0/24 for a test CNI network: every one is routed on this host or locked by another test " +
            $"(lock files {LockPath(0)} .. {LockPath(255)})");
    }

    /// <summary>The conflist: bridge + host-local, then portmap (portMappings capability, SNAT for localhost).</summary>
    public string ConflistJson()
    {
        var conflist = new JsonObject
        {
            ["cniVersion"] = "1.0.0",
            ["name"] = Name,
            ["plugins"] = new JsonArray(
                new JsonObject
                {
                    ["type"] = "bridge",
                    ["bridge"] = BridgeName,
                    ["isGateway"] = true,
                    ["ipMasq"] = false,
                    ["hairpinMode"] = true,
                    ["ipam"] = new JsonObject
                    {
                        ["type"] = "host-local",
                        ["ranges"] = new JsonArray(new JsonArray(new JsonObject { ["subnet"] = Subnet })),
                        ["routes"] = new JsonArray(new JsonObject { ["dst"] = "0.0.0.0/0" }),
                        ["dataDir"] = DataDir,
                    },
                },
                new JsonObject
                {
                    ["type"] = "portmap",
                    ["capabilities"] = new JsonObject { ["portMappings"] = true },
                    ["snat"] = true,
                }),
        };
        return conflist.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>True if <paramref name="ip"/> is an IPv4 address in <see cref="Subnet"/>.</summary>
    public bool Contains(IPAddress ip)
    {
        if (ip.AddressFamily != AddressFamily.InterNetwork) return false;
        var b = ip.GetAddressBytes();
        return b[0] == 10 && b[1] == 200 && b[2] == ThirdOctet;
    }

    /// <summary>IPs host-local still holds (its files named by address under <see cref="DataDir"/>).</summary>
    public IReadOnlyList<string> ReservedAddresses()
    {
        if (!Directory.Exists(DataDir)) return [];
        return Directory.EnumerateFiles(DataDir, "*", SearchOption.AllDirectories)
            .Where(f => IPAddress.TryParse(Path.GetFileName(f), out _))
            .ToList();
    }

    /// <summary>Host-side interfaces (veths) enslaved to the bridge now.</summary>
    public IReadOnlyList<string> BridgePorts()
    {
        string brif = $"/sys/class/net/{BridgeName}/brif";
        return Directory.Exists(brif) ? Directory.EnumerateFileSystemEntries(brif).Select(p => Path.GetFileName(p)).ToList() : [];
    }

    public bool BridgeExists => Directory.Exists($"/sys/class/net/{BridgeName}");

    /// <summary>Lines of <c>iptables-save -t nat</c> that contain any of <paramref name="needles"/> (pod ids, pod IPs).</summary>
    public static async Task<IReadOnlyList<string>> NatRulesMentioningAsync(IEnumerable<string> needles, CancellationToken cancellationToken = default)
    {
        var wanted = needles.Where(n => n.Length > 0).ToList();
        if (wanted.Count == 0) return [];
        var run = await HostCommand.RunAsync("iptables-save", ["-t", "nat"], cancellationToken: cancellationToken);
        if (run.ExitCode != 0) throw new InvalidOperationException($"iptables-save -t nat failed: {run}");
        return run.Stdout.Split('\n')
            .Where(line => wanted.Any(n => ContainsAddressOrId(line, n)))
            .ToList();
    }

    // "10.200.1.2" must not match "10.200.1.23" (a needle ending in a dot, "10.200.1.", matches the whole subnet).
    private static bool ContainsAddressOrId(string line, string needle)
    {
        for (int at = line.IndexOf(needle, StringComparison.Ordinal); at >= 0; at = line.IndexOf(needle, at + 1, StringComparison.Ordinal))
        {
            int end = at + needle.Length;
            if (end == line.Length || !char.IsAsciiDigit(needle[^1]) || !char.IsAsciiDigit(line[end])) return true;
        }
        return false;
    }

    /// <summary>
    /// Runs CNI DEL for <paramref name="containerId"/> through every plugin of the list, last first, without a
    /// netns (allowed for DEL): releases host-local's IP and portmap's iptables chains. Cleanup of last resort
    /// for a pod the daemon failed to tear down; it assumes the daemon used the pod sandbox id as CNI_CONTAINERID.
    /// </summary>
    public async Task<string?> DeleteAttachmentAsync(string containerId, CancellationToken cancellationToken = default)
    {
        var plugins = (JsonArray)JsonNode.Parse(ConflistJson())!["plugins"]!;
        var failures = new StringBuilder();
        foreach (var plugin in plugins.Reverse())
        {
            var config = (JsonObject)plugin!.DeepClone();
            config["cniVersion"] = "1.0.0";
            config["name"] = Name;
            string type = config["type"]!.GetValue<string>();
            // portmap's DEL does nothing without port mappings in runtimeConfig (as the daemon must pass them on
            // DEL too); its chains are named from the network name and container id, so any mapping will do.
            if (type == "portmap")
                config["runtimeConfig"] = new JsonObject
                {
                    ["portMappings"] = new JsonArray(new JsonObject { ["hostPort"] = 1, ["containerPort"] = 1, ["protocol"] = "tcp" }),
                };
            var env = new Dictionary<string, string>
            {
                ["CNI_COMMAND"] = "DEL",
                ["CNI_CONTAINERID"] = containerId,
                ["CNI_NETNS"] = "",
                ["CNI_IFNAME"] = PodInterface,
                ["CNI_PATH"] = PluginDir,
            };
            var run = await HostCommand.RunAsync(Path.Combine(PluginDir, type), [], config.ToJsonString(), env, cancellationToken);
            if (run.ExitCode != 0) failures.AppendLine($"{type} DEL: {run}");
        }
        return failures.Length == 0 ? null : failures.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0) return;
        try
        {
            // Veths normally vanish with their pod's netns; any left would keep addresses on the bridge's subnet.
            foreach (var port in BridgePorts())
                await HostCommand.RunAsync("ip", ["link", "del", port]);
            if (BridgeExists)
            {
                var run = await HostCommand.RunAsync("ip", ["link", "del", BridgeName]);
                if (run.ExitCode != 0 && BridgeExists)
                    throw new InvalidOperationException($"cannot delete test bridge {BridgeName}: {run}");
            }
        }
        finally
        {
            DeleteFiles();
            subnetLock.Dispose();
            try
            {
                File.Delete(subnetLock.Name);
            }
            catch (IOException)
            {
            }
        }
    }

    private void DeleteFiles()
    {
        try
        {
            if (Directory.Exists(rootDir)) Directory.Delete(rootDir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private static string LockPath(int octet) => Path.Combine(Path.GetTempPath(), $"criruntime-test-subnet-10.200.{octet}.lock");

    // .NET takes an exclusive flock for FileShare.None, which other processes (and other opens in this one) respect.
    private static FileStream? TryLockSubnet(int octet)
    {
        try
        {
            return new FileStream(LockPath(octet), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static bool Overlaps(uint networkA, uint maskA, uint networkB, uint maskB)
    {
        uint mask = maskA & maskB;
        return (networkA & mask) == (networkB & mask);
    }

    /// <summary>IPv4 routes of the host (except default routes), from /proc/net/route (little-endian hex).</summary>
    private static List<(uint Network, uint Mask)> HostIPv4Routes()
    {
        var routes = new List<(uint, uint)>();
        foreach (var line in File.ReadLines("/proc/net/route").Skip(1))
        {
            var f = line.Split('\t', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (f.Length < 8) continue;
            uint dest = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(Convert.ToUInt32(f[1], 16));
            uint mask = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(Convert.ToUInt32(f[7], 16));
            if (mask == 0) continue;
            routes.Add((dest, mask));
        }
        return routes;
    }
}
