using CriRuntime.Native;
using System.Text.Json;
using System.Text.Json.Nodes;
using CriRuntime.Storage;

namespace CriRuntime.Network.Cni;

/// <summary>One network a sandbox is attached to, with the config it was attached with and its result (null
/// while ADD has not finished).</summary>
internal sealed class CniAttachment(string ifName, CniNetwork network, string? configFile)
{
    public string IfName { get; } = ifName;
    public CniNetwork Network { get; } = network;
    public string? ConfigFile { get; } = configFile;
    public JsonObject? Result { get; set; }
}

/// <summary>What was set up for a sandbox: enough to run DEL and CHECK exactly as ADD ran, after a restart or a
/// config change.</summary>
internal sealed class CniCacheEntry(string sandboxId, string netnsPath, string podName, string podNamespace, string podUid,
    JsonObject capabilityArgs, IReadOnlyList<CniAttachment> attachments)
{
    public string SandboxId { get; } = sandboxId;
    public string NetnsPath { get; } = netnsPath;
    public string PodName { get; } = podName;
    public string PodNamespace { get; } = podNamespace;
    public string PodUid { get; } = podUid;

    /// <summary>The runtimeConfig values offered to plugins (portMappings, bandwidth, dns, ips).</summary>
    public JsonObject CapabilityArgs { get; } = capabilityArgs;

    /// <summary>In ADD order: loopback first (when present), then the pod network.</summary>
    public IReadOnlyList<CniAttachment> Attachments { get; } = attachments;
}

/// <summary>Result cache entries, one file per sandbox (<c>&lt;dir&gt;/&lt;sandbox id&gt;.json</c>), replaced atomically.</summary>
internal sealed class CniResultCache(string directory)
{
    private const string Kind = "criruntime.cni-result/v1";

    public string PathOf(string sandboxId) => Path.Combine(directory, sandboxId + ".json");

    public async Task WriteAsync(CniCacheEntry entry, CancellationToken ct)
    {
        FileModes.CreateDirectory(directory, FileModes.PrivateDirectory);
        var attachments = new JsonArray();
        foreach (var a in entry.Attachments)
        {
            attachments.Add((JsonNode)new JsonObject
            {
                ["ifName"] = a.IfName,
                ["configFile"] = a.ConfigFile,
                ["network"] = a.Network.Json.DeepClone(),
                ["result"] = a.Result?.DeepClone(),
            });
        }
        var root = new JsonObject
        {
            ["kind"] = Kind,
            ["sandboxId"] = entry.SandboxId,
            ["netnsPath"] = entry.NetnsPath,
            ["podName"] = entry.PodName,
            ["podNamespace"] = entry.PodNamespace,
            ["podUid"] = entry.PodUid,
            ["capabilityArgs"] = entry.CapabilityArgs.DeepClone(),
            ["attachments"] = attachments,
        };
        await AtomicFile.WriteAllBytesAsync(PathOf(entry.SandboxId), System.Text.Encoding.UTF8.GetBytes(root.ToJsonString()), ct).ConfigureAwait(false);
    }

    /// <summary>The entry, or null when there is none.</summary>
    /// <exception cref="FormatException">The file exists but is not a valid entry.</exception>
    public CniCacheEntry? TryRead(string sandboxId)
    {
        string path = PathOf(sandboxId);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        try
        {
            if (JsonNode.Parse(bytes) is not JsonObject root || (string?)root["kind"] != Kind)
                throw new FormatException($"{path} is not a {Kind} entry");
            var attachments = new List<CniAttachment>();
            foreach (var node in root["attachments"] as JsonArray ?? throw new FormatException($"{path} has no attachments"))
            {
                if (node is not JsonObject a || a["network"] is not JsonObject network)
                    throw new FormatException($"{path} has an attachment without a network");
                var attachment = new CniAttachment(
                    (string?)a["ifName"] ?? throw new FormatException($"{path} has an attachment without ifName"),
                    CniNetwork.FromList(network), (string?)a["configFile"])
                {
                    Result = a["result"] as JsonObject,
                };
                if (attachment.Result is not null) attachment.Result = (JsonObject)attachment.Result.DeepClone();
                attachments.Add(attachment);
            }
            return new CniCacheEntry(
                (string?)root["sandboxId"] ?? sandboxId,
                (string?)root["netnsPath"] ?? "",
                (string?)root["podName"] ?? "",
                (string?)root["podNamespace"] ?? "",
                (string?)root["podUid"] ?? "",
                root["capabilityArgs"] is JsonObject args ? (JsonObject)args.DeepClone() : new JsonObject(),
                attachments);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new FormatException($"{path} is corrupt: {e.Message}", e);
        }
    }

    public void Delete(string sandboxId)
    {
        try
        {
            File.Delete(PathOf(sandboxId));
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
