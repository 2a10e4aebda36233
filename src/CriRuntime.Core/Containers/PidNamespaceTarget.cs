namespace CriRuntime.Containers;

/// <summary>
/// namespace_options.pid TARGET (kubectl debug --target): the new container joins the PID namespace of another container
/// of its pod, through that container's init process, as containerd's validateTargetContainer allows it.
/// </summary>
public static class PidNamespaceTarget
{
    /// <summary>
    /// /proc/&lt;init pid&gt;/ns/pid of <paramref name="target"/> (looked up by <paramref name="targetId"/>); NotFound when
    /// there is no such container, InvalidArgument when it belongs to another pod, FailedPrecondition when it is not running.
    /// </summary>
    public static string PathOf(string targetId, ContainerRecord? target, string podSandboxId, Func<int, bool> processExists)
    {
        if (string.IsNullOrEmpty(targetId))
            throw new InvalidArgumentException(
                "config.linux.security_context.namespace_options.pid is TARGET but target_id is empty: name the container whose PID namespace to join",
                "config.linux.security_context.namespace_options.target_id");
        if (target is null)
            throw new NotFoundException(
                $"namespace_options.target_id: container '{Echo.Of(targetId)}' not found; the target of a PID namespace must be a container of the same pod (ListContainers shows them)");
        if (target.PodSandboxId != podSandboxId)
            throw new InvalidArgumentException(
                $"namespace_options.target_id: container {target.Id} belongs to pod sandbox {target.PodSandboxId}, not {podSandboxId}; only a container of the same pod can be targeted",
                "config.linux.security_context.namespace_options.target_id");
        if (target.Phase != ContainerPhase.Running || target.Pid <= 0 || !processExists(target.Pid))
            throw new FailedPreconditionException(
                $"namespace_options.target_id: container {target.Id} is {(target.Phase == ContainerPhase.Running ? "exiting" : ContainerManager.StateName(target.Phase))}, not RUNNING; start it, or target a running container");
        return $"/proc/{target.Pid}/ns/pid";
    }
}
