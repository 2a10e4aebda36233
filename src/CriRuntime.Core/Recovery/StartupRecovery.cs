using Microsoft.Extensions.Logging;

namespace CriRuntime.Recovery;

/// <summary>One step of start-up recovery; steps run one after another, in the order <see cref="StartupRecovery"/> states.</summary>
public interface IRecoveryStep
{
    /// <summary>What the step recovers, for the log.</summary>
    string Name { get; }

    Task RunAsync(RecoveryReport report, CancellationToken cancellationToken);
}

/// <summary>
/// Brings the daemon's memory in line with its disk before the socket is served, so the first List the kubelet
/// sends is already right. The order matters:
/// <list type="number">
/// <item><b>Images</b> (<see cref="ImageRecovery"/>): blobs, layers and the image index are loaded, nothing is freed.
/// Containers need the layer store to say which layers their mounted rootfs uses.</item>
/// <item><b>Pods</b> (<see cref="PodRecovery"/>): before containers, because a container is judged by its pod (gone,
/// or not loaded).</item>
/// <item><b>Containers</b> (<see cref="ContainerRecovery"/>): after pods.</item>
/// <item><b>Image and layer garbage collection</b> (<see cref="ImageGarbageCollection"/>) last: only now does the
/// daemon know every container, and containers protect their rootfs layers even when their image record is gone.
/// Collecting earlier deleted layers under running containers.</item>
/// </list>
/// Each step reports what it quarantined or left alone into one <see cref="RecoveryReport"/>.
/// </summary>
public sealed class StartupRecovery
{
    private readonly IReadOnlyList<IRecoveryStep> steps;
    private readonly RecoveryReport report;
    private readonly ILogger logger;

    public StartupRecovery(ImageRecovery images, PodRecovery pods, ContainerRecovery containers, ImageGarbageCollection collection,
        RecoveryReport report, ILogger<StartupRecovery> logger)
    {
        steps = [images, pods, containers, collection];
        this.report = report;
        this.logger = logger;
    }

    public IReadOnlyList<IRecoveryStep> Steps => steps;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        foreach (var step in steps)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            await step.RunAsync(report, cancellationToken).ConfigureAwait(false);
            logger.LogDebug("Recovery step {Step} took {Elapsed:F1} ms", step.Name, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        if (report.Quarantined.Count > 0 || report.Newer.Count > 0 || report.HeldBack.Count > 0)
            logger.LogWarning("Start-up recovery: {Quarantined} item(s) quarantined, {Newer} record(s) of a newer daemon left alone, {HeldBack} held back with them; Status (verbose) lists them",
                report.Quarantined.Count, report.Newer.Count, report.HeldBack.Count);
    }
}
