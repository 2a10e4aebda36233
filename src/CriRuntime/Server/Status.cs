using System.Text.Json.Nodes;
using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriRuntimeService
{
    public override Task<StatusResponse> Status(StatusRequest request, ServerCallContext context)
    {
        var network = cni.Status;
        var status = new RuntimeStatus();
        status.Conditions.Add(new RuntimeCondition { Type = "RuntimeReady", Status = true });
        status.Conditions.Add(network.Ready
            ? new RuntimeCondition { Type = "NetworkReady", Status = true }
            : new RuntimeCondition { Type = "NetworkReady", Status = false, Reason = network.Reason ?? "NetworkPluginNotReady", Message = $"Network plugin returns error: {network.Message}" });

        var response = new StatusResponse { Status = status };
        // The empty name stands for the default handler, as the API comments define it.
        response.RuntimeHandlers.Add(new RuntimeHandler { Name = "", Features = new RuntimeHandlerFeatures() });
        foreach (var name in config.Runtime.Handlers.Keys.Order(StringComparer.Ordinal))
            response.RuntimeHandlers.Add(new RuntimeHandler { Name = name, Features = new RuntimeHandlerFeatures() });
        if (request.Verbose)
        {
            response.Info["config"] = new JsonObject
            {
                ["socket"] = config.Socket,
                ["root"] = config.Root,
                ["state"] = config.State,
                ["registryConfigPath"] = config.Registry.ConfigPath,
                ["defaultPlatform"] = config.Registry.DefaultPlatform,
                ["cniConfDir"] = config.Cni.ConfDir,
                ["cniBinDirs"] = new JsonArray([.. config.Cni.BinDirs.Select(d => (JsonNode)JsonValue.Create(d))]),
                ["cniConfig"] = network.ConfigFile,
                ["cniNetwork"] = network.NetworkName,
                ["defaultRuntimeHandler"] = config.Runtime.DefaultHandler,
                ["cniConfTemplate"] = config.Cni.ConfTemplate,
                ["podCidrs"] = new JsonArray([.. podCidr.PodCidrs.Select(c => (JsonNode)JsonValue.Create(c))]),
            }.ToJsonString();
            // What start-up recovery set aside or left alone (Recovery/RecoveryReport): the operator's to look at.
            response.Info["quarantine"] = new JsonArray([.. recovery.Quarantined.Select(q => (JsonNode)new JsonObject
            {
                ["path"] = q.Path,
                ["movedTo"] = q.MovedTo,
                ["reason"] = q.Reason,
                ["time"] = q.Time.UtcDateTime.ToString("o", System.Globalization.CultureInfo.InvariantCulture),
            })]).ToJsonString();
            response.Info["newerRecords"] = new JsonArray([.. recovery.Newer.Select(n => (JsonNode)new JsonObject
            {
                ["path"] = n.Path,
                ["version"] = n.Version,
                ["supportedVersion"] = n.Supported,
            })]).ToJsonString();
            response.Info["heldBackRecords"] = new JsonArray([.. recovery.HeldBack.Select(h => (JsonNode)new JsonObject
            {
                ["path"] = h.Path,
                ["reason"] = h.Reason,
            })]).ToJsonString();
        }
        return Task.FromResult(response);
    }
}
