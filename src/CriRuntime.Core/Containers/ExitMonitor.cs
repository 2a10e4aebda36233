using CriRuntime.Native;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Containers;

/// <summary>
/// Turns conmon's exit files into container state changes as they appear: a watcher on the exit
/// directory for promptness, and a slow sweep as a safety net for events the watcher can drop.
/// </summary>
public sealed class ExitMonitor : IDisposable
{
    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(2);

    private readonly ContainerManager containers;
    private readonly ILogger logger;
    private readonly CancellationTokenSource stopping = new();
    private FileSystemWatcher? watcher;
    private Timer? sweep;

    public ExitMonitor(ContainerManager containers, ILogger<ExitMonitor> logger)
    {
        this.containers = containers;
        this.logger = logger;
    }

    public void Start()
    {
        FileModes.CreateDirectory(containers.ExitDir, FileModes.PrivateDirectory);
        watcher = new FileSystemWatcher(containers.ExitDir) { NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite, InternalBufferSize = 64 * 1024 };
        watcher.Created += (_, e) => Handle(e.Name);
        watcher.Changed += (_, e) => Handle(e.Name);
        watcher.Renamed += (_, e) => Handle(e.Name);
        watcher.Error += (_, e) => logger.LogWarning("Exit directory watcher: {Error}; the periodic sweep catches up", e.GetException().Message);
        watcher.EnableRaisingEvents = true;
        sweep = new Timer(_ => Sweep(), null, TimeSpan.Zero, SweepInterval);
    }

    private void Sweep()
    {
        foreach (var id in containers.ExitedButNotRecorded()) Handle(id);
    }

    private void Handle(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.StartsWith('.')) return;
        _ = Task.Run(async () =>
        {
            try
            {
                await containers.HandleExitAsync(id, stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                logger.LogWarning("Recording the exit of container {Id} failed: {Error}; will retry", id, e.Message);
            }
        });
    }

    public void Dispose()
    {
        stopping.Cancel();
        watcher?.Dispose();
        sweep?.Dispose();
    }
}
