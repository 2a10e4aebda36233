using CriRuntime.Containers;

namespace CriRuntime.Checkpoint;

/// <summary>
/// CheckpointContainer (the kubelet's forensic /checkpoint). So far this checks everything the checkpoint needs (the
/// request, the container, CRIU on this node) and says precisely which is missing; writing the archive (runc checkpoint
/// --leave-running into CRI-O's layout) is not done yet because CRIU 3.17 cannot run on the kernel it was developed on.
/// </summary>
public static class ContainerCheckpoints
{
    /// <summary>How long a checkpoint may take when the request gives no timeout.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(4);

    /// <summary>
    /// The container to checkpoint, after checking the request (InvalidArgument), that the container exists (NotFound)
    /// and runs (FailedPrecondition), and that CRIU works on this node (FailedPrecondition naming what fails).
    /// </summary>
    public static async Task<ContainerRecord> CheckAsync(ContainerManager containers, string containerId, string location, long timeoutSeconds,
        CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(containerId))
            throw new InvalidArgumentException("container_id is empty: give the id of the running container to checkpoint (ListContainers shows them)");
        var timeout = CheckpointRequestValidation.TimeoutOf(timeoutSeconds, DefaultTimeout);
        CheckpointRequestValidation.ValidateLocation(location, Directory.Exists);
        var container = containers.Get(containerId);
        if (container.Phase != ContainerPhase.Running || container.Pid <= 0)
            throw new FailedPreconditionException(
                $"container {container.Id} is {ContainerManager.StateName(container.Phase)}, not RUNNING; only a running container can be checkpointed");
        if (await CriuAvailability.ProblemAsync(timeout, ct).ConfigureAwait(false) is { } problem)
            throw new FailedPreconditionException(problem);
        return container;
    }
}
