using CriRuntime.Containers;
using CriRuntime.Native;
using CriRuntime.Oci;
using CriRuntime.Pods;
using CriRuntime.State;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Recovery;

/// <summary>
/// Loads container records after pods: undoes half-made containers and those whose pod is gone, holds back (leaves
/// untouched, unloaded) those whose pod record is not loaded, and brings the rest up to date with what happened while
/// the daemon was down (exit files, the runtime's state). Directories no record owns are removed, except while a
/// rootfs is still mounted on them: a writable layer under a mounted rootfs is never deleted.
/// </summary>
public sealed class ContainerRecovery(ContainerManager containers, PodSandboxManager pods, IContainerRuntimes runtimes,
    ILogger<ContainerRecovery> logger) : IRecoveryStep
{
    /// <summary>Start-ups that try to clean up a container before its record is quarantined.</summary>
    public const int MaxCleanupAttempts = PodRecovery.MaxCleanupAttempts;

    public string Name => "containers";

    public async Task RunAsync(RecoveryReport report, CancellationToken cancellationToken)
    {
        report.Add(containers.LoadRecords());
        foreach (var container in containers.AllRecords())
        {
            // One container the daemon cannot make sense of (a handler removed from the config, a runtime that
            // fails) must not keep the node from serving the rest: it is logged and left as recorded.
            try
            {
                await RecoverOneAsync(container, report, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Recovering container {Id} failed; it stays as recorded ({Phase})", container.Id, container.Phase);
            }
        }

        // Bundles and writable layers no record owns were left by a crash; those of records not loaded are theirs.
        foreach (var dir in Subdirectories(containers.BundlesDir).Concat(Subdirectories(containers.WritableLayersDir).Where(d => Path.GetFileName(d) != "records")))
        {
            string id = Path.GetFileName(dir);
            if (containers.FindRecord(id) is not null) continue;
            if (containers.IsNotLoaded(id))
            {
                logger.LogInformation("Keeping container directory {Dir}: its record is not loaded", dir);
                continue;
            }
            // The rootfs is mounted in the bundle; its upper dir is the writable layer. Never delete either under a mount.
            string rootfs = Path.Combine(containers.BundlesDir, id, "rootfs");
            if (Mounts.IsMountPoint(rootfs))
            {
                logger.LogWarning("Keeping leftover container directory {Dir}: {Rootfs} is still mounted", dir, rootfs);
                continue;
            }
            // Images a half-made container mounted (read-only overlays in its bundle) go with it.
            string bundle = Path.Combine(containers.BundlesDir, id);
            foreach (var problem in ImageMounts.UnmountAll(bundle)) logger.LogWarning("Leftover container {Id}: {Problem}", id, problem);
            if (ImageMounts.AnyMounted(bundle))
            {
                logger.LogWarning("Keeping leftover container directory {Dir}: an image is still mounted under it", dir);
                continue;
            }
            logger.LogWarning("Removing leftover container directory {Dir}", dir);
            try
            {
                Files.RemoveTree(dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                logger.LogWarning("Could not remove {Dir}: {Error}", dir, e.Message);
            }
        }
        logger.LogInformation("Recovered {Count} containers", containers.AllRecords().Count);
    }

    private async Task RecoverOneAsync(ContainerRecord container, RecoveryReport report, CancellationToken cancellationToken)
    {
        if (pods.IsNotLoaded(container.PodSandboxId, out string podWhy))
        {
            // Its pod was quarantined or is a newer daemon's: the container may be running, so it is neither
            // loaded (it would show without a pod) nor removed.
            string why = $"its pod sandbox {container.PodSandboxId} is not loaded ({podWhy})";
            containers.HoldBack(container.Id, why);
            report.Add(new HeldBackRecord(containers.RecordPath(container.Id), why));
            logger.LogWarning("Container {Id} is held back: {Why}", container.Id, why);
            return;
        }
        if (container.Phase == ContainerPhase.Creating || pods.Find(container.PodSandboxId) is null)
        {
            await CleanUpAsync(container, report, cancellationToken).ConfigureAwait(false);
            return;
        }
        containers.ReserveName(container);
        if (container.Phase == ContainerPhase.Exited) return;
        if (File.Exists(Path.Combine(containers.ExitDir, container.Id)))
        {
            await containers.RecordExitFromFileAsync(container.Id, cancellationToken).ConfigureAwait(false);
            return;
        }
        var state = await runtimes.Resolve(container.RuntimeHandler).StateAsync(container.Id, cancellationToken).ConfigureAwait(false);
        if (state is null || state.Status == "stopped")
        {
            // Gone without an exit file: the node rebooted, or conmon was killed.
            await containers.PutRecordAsync(container with
            {
                Phase = ContainerPhase.Exited,
                ExitCode = 255,
                FinishedAt = CriClock.NowNanos(),
                Reason = "Unknown",
                Message = state is null ? "the container disappeared while the daemon was down (node reboot?)" : "the container stopped while the daemon was down and its exit code was lost",
            }, cancellationToken).ConfigureAwait(false);
        }
        else if (state.Status == "running" && container.Phase == ContainerPhase.Created)
        {
            // Started just before a crash, before the record said so.
            await containers.PutRecordAsync(container with { Phase = ContainerPhase.Running, StartedAt = CriClock.NowNanos() }, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task CleanUpAsync(ContainerRecord container, RecoveryReport report, CancellationToken cancellationToken)
    {
        int attempt = container.CleanupAttempts + 1;
        logger.LogWarning("Container {Id} was being created when the daemon stopped (or lost its pod); removing what was made (attempt {Attempt} of {Max})",
            container.Id, attempt, MaxCleanupAttempts);
        var problems = await containers.TryDiscardAsync(container, cancellationToken).ConfigureAwait(false);
        if (problems.Count == 0) return;
        if (attempt >= MaxCleanupAttempts)
        {
            string reason = $"clean-up of the container failed at {attempt} start-ups: {string.Join("; ", problems)}";
            var item = containers.QuarantineRecord(container, reason);
            logger.LogError("Container {Id}: {Reason}; its record is quarantined ({Aside}) and its name released; what it holds must be removed by hand",
                container.Id, reason, item?.MovedTo);
            report.Add(item);
            return;
        }
        // Hidden in the Creating phase until the next start-up tries again.
        await containers.PutRecordAsync(container with { Phase = ContainerPhase.Creating, CleanupAttempts = attempt }, CancellationToken.None).ConfigureAwait(false);
        logger.LogWarning("Container {Id} is kept for clean-up at the next start-up", container.Id);
    }

    private static IEnumerable<string> Subdirectories(string dir) =>
        Directory.Exists(dir) ? Directory.EnumerateDirectories(dir).ToList() : [];
}
