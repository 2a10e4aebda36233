using CriRuntime.Oci;

namespace CriRuntime.Containers;

/// <summary>The streaming server's entry points that need a container: exec on a terminal and attach.</summary>
public sealed partial class ContainerManager
{
    /// <summary>Runs a command on a terminal in a running container (the streaming server's exec with tty); returns its exit code.</summary>
    public async Task<int> ExecTerminalAsync(string containerId, IReadOnlyList<string> command, TerminalStdio stdio, CancellationToken cancellationToken)
    {
        if (command.Count == 0 || string.IsNullOrEmpty(command[0]))
            throw new InvalidArgumentException("cmd is empty: give the command to run in the container");
        RequireRunningForExec(containerId);
        var container = Get(containerId);
        return await runtimes.Resolve(container.RuntimeHandler).ExecTerminalAsync(container.Id, command, stdio, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The container an attach joins: it must exist (NotFound) and run (FailedPrecondition), as containerd checks.
    /// Its tty and stdin settings are the ones it was created with.
    /// </summary>
    public AttachTarget RequireAttachable(string containerId)
    {
        var container = Get(containerId);
        if (container.Phase != ContainerPhase.Running)
            throw new FailedPreconditionException($"container {container.Id} is {StateName(container.Phase)}; only a running container can be attached to");
        var config = container.Config;
        return new AttachTarget(container.Id, container.Bundle, config.Tty, config.Stdin, config.StdinOnce);
    }

    /// <summary>Attaches to a running container's stdio (the streaming server's attach) until its output ends or the client is done.</summary>
    public async Task AttachAsync(string containerId, AttachStdio stdio, CancellationToken cancellationToken)
    {
        var target = RequireAttachable(containerId);
        var container = Get(containerId);
        await runtimes.Resolve(container.RuntimeHandler).AttachAsync(target, stdio, cancellationToken).ConfigureAwait(false);
    }
}
