using CriRuntime.Pods;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Recovery;

/// <summary>
/// Loads pod records: rolls back pods a crash caught half made, marks NotReady those whose namespaces are gone (a
/// reboot), reserves the names of the rest, and removes pod directories that no record owns. A half-made pod whose
/// clean-up keeps failing is quarantined after <see cref="MaxCleanupAttempts"/> start-ups instead of being retried forever.
/// </summary>
public sealed class PodRecovery(PodSandboxManager pods, ILogger<PodRecovery> logger) : IRecoveryStep
{
    /// <summary>Start-ups that try to clean up a half-made pod before its record is quarantined.</summary>
    public const int MaxCleanupAttempts = 3;

    public string Name => "pod sandboxes";

    public async Task RunAsync(RecoveryReport report, CancellationToken cancellationToken)
    {
        report.Add(pods.LoadRecords());
        foreach (var pod in pods.AllRecords())
        {
            if (pod.Phase == PodSandboxPhase.Creating)
            {
                await CleanUpAsync(pod, report, cancellationToken).ConfigureAwait(false);
                continue;
            }
            pods.ReserveName(pod);
            if (pod.Phase == PodSandboxPhase.Ready && PodSandboxManager.LostToReboot(pod))
            {
                logger.LogWarning("Pod sandbox {Id} lost its namespaces or files under the state dir (the node rebooted?); it is NotReady now", pod.Id);
                await pods.PutRecordAsync(pod with { Phase = PodSandboxPhase.NotReady }, cancellationToken).ConfigureAwait(false);
            }
        }

        // Pod directories no record owns were left by a crash before the first record write. Those of records not
        // loaded (a newer daemon's, or quarantined) are theirs and stay.
        foreach (var dir in Directory.EnumerateDirectories(pods.PodStateDirs).ToList())
        {
            string id = Path.GetFileName(dir);
            if (pods.FindRecord(id) is not null) continue;
            if (pods.IsNotLoaded(id, out string why))
            {
                logger.LogInformation("Keeping pod directory {Dir}: its record is not loaded ({Why})", dir, why);
                continue;
            }
            logger.LogWarning("Removing leftover pod directory {Dir}", dir);
            foreach (var problem in PodSandboxManager.ReleaseLeftoverDirectory(dir)) logger.LogWarning("{Dir}: {Problem}", dir, problem);
        }
        logger.LogInformation("Recovered {Count} pod sandboxes", pods.AllRecords().Count);
    }

    private async Task CleanUpAsync(PodSandboxRecord pod, RecoveryReport report, CancellationToken cancellationToken)
    {
        int attempt = pod.CleanupAttempts + 1;
        logger.LogWarning("Pod sandbox {Id} was being created when the daemon stopped; removing what was made (attempt {Attempt} of {Max})",
            pod.Id, attempt, MaxCleanupAttempts);
        var problems = await pods.TryDiscardAsync(pod, cancellationToken).ConfigureAwait(false);
        if (problems.Count == 0) return;
        if (attempt >= MaxCleanupAttempts)
        {
            string reason = $"clean-up of a half-made pod sandbox failed at {attempt} start-ups: {string.Join("; ", problems)}";
            var item = pods.QuarantineRecord(pod, reason);
            logger.LogError("Pod sandbox {Id}: {Reason}; its record is quarantined ({Aside}) and its name released; what it holds must be removed by hand",
                pod.Id, reason, item?.MovedTo);
            report.Add(item);
            return;
        }
        await pods.PutRecordAsync(pod with { CleanupAttempts = attempt }, cancellationToken).ConfigureAwait(false);
        logger.LogWarning("Pod sandbox {Id} is kept for clean-up at the next start-up", pod.Id);
    }
}
