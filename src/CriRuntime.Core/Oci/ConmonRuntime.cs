using Microsoft.Extensions.Logging;
using Runtime.V1;

namespace CriRuntime.Oci;

/// <summary>An OCI runtime (runc or crun) whose containers conmon creates and monitors, as CRI-O runs them.</summary>
public sealed class ConmonRuntime(OciRuntime runtime, Conmon conmon, ILogger logger) : IContainerRuntime
{
    public string HandlerName => runtime.HandlerName;

    public async Task<int> CreateAsync(RuntimeCreateRequest request, CancellationToken ct)
    {
        var created = await conmon.CreateContainerAsync(new ConmonCreateRequest
        {
            Id = request.Id,
            Runtime = runtime,
            BundleDir = request.BundleDir,
            LogPath = request.LogPath,
            ExitDir = request.ExitDir,
            Terminal = request.Terminal,
            Stdin = request.Stdin,
            StdinOnce = request.StdinOnce,
        }, ct).ConfigureAwait(false);
        return created.ContainerPid;
    }

    public Task StartAsync(string id, CancellationToken ct) => runtime.StartAsync(id, ct);

    public Task KillAsync(string id, int signal, bool all, CancellationToken ct) => runtime.KillAsync(id, signal, all, ct);

    public Task DeleteAsync(string id, bool force, CancellationToken ct) => runtime.DeleteAsync(id, force, ct);

    public Task<OciState?> StateAsync(string id, CancellationToken ct) => runtime.StateAsync(id, ct);

    public Task<ExecResult> ExecSyncAsync(string id, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken ct) =>
        runtime.ExecSyncAsync(id, command, timeout, ct);

    public Task<int> ExecStreamingAsync(string id, IReadOnlyList<string> command, ExecStdio stdio, CancellationToken ct) =>
        runtime.ExecStreamingAsync(id, command, stdio, ct);

    public Task<int> ExecTerminalAsync(string id, IReadOnlyList<string> command, TerminalStdio stdio, CancellationToken ct) =>
        runtime.ExecTerminalAsync(id, command, stdio, ct);

    public Task AttachAsync(AttachTarget target, AttachStdio stdio, CancellationToken ct) =>
        ConmonAttach.AttachAsync(target, stdio, logger, ct);

    public Task UpdateResourcesAsync(string id, LinuxContainerResources resources, CancellationToken ct) =>
        runtime.UpdateResourcesAsync(id, resources, ct);

    public Task ReopenLogAsync(string bundleDir, string? logPath, CancellationToken ct) =>
        logPath is null ? conmon.ReopenLogAsync(bundleDir, ct) : conmon.ReopenLogAsync(bundleDir, logPath, ct);
}
