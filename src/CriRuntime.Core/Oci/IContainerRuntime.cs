using Runtime.V1;

namespace CriRuntime.Oci;

/// <summary>What creating a container needs besides its bundle's config.json.</summary>
public sealed record RuntimeCreateRequest
{
    public required string Id { get; init; }

    /// <summary>Holds config.json; the monitor's pid files, FIFOs and attach socket go here too.</summary>
    public required string BundleDir { get; init; }

    /// <summary>The CRI log file; the caller creates its directory.</summary>
    public required string LogPath { get; init; }

    /// <summary>Where the exit file &lt;ExitDir&gt;/&lt;Id&gt; is written when the container exits.</summary>
    public required string ExitDir { get; init; }

    public bool Terminal { get; init; }
    public bool Stdin { get; init; }
    public bool StdinOnce { get; init; }
}

/// <summary>
/// The low-level runtime the managers drive, as containerd's shim or CRI-O's OCI runtime interface: one per runtime
/// handler. The managers know nothing of conmon or runc command lines, so they can be tested with a fake of it.
/// Port forwarding and checkpoint would be added here.
/// </summary>
public interface IContainerRuntime
{
    /// <summary>The runtime handler's name from the config (runc, crun, ...).</summary>
    string HandlerName { get; }

    /// <summary>Creates the container under a monitor (not started); returns the pid of its init process.</summary>
    Task<int> CreateAsync(RuntimeCreateRequest request, CancellationToken ct);

    /// <summary>Runs the created container's process.</summary>
    Task StartAsync(string id, CancellationToken ct);

    /// <summary>Signals the container's init (or every process in it); a stopped or unknown container is not an error.</summary>
    Task KillAsync(string id, int signal, bool all, CancellationToken ct);

    /// <summary>Deletes the runtime's state of the container; an unknown id is not an error.</summary>
    Task DeleteAsync(string id, bool force, CancellationToken ct);

    /// <summary>The runtime's view of the container; null when it does not know the id.</summary>
    Task<OciState?> StateAsync(string id, CancellationToken ct);

    /// <summary>Runs a command in the container and returns its output; a positive timeout kills it when it passes.</summary>
    Task<ExecResult> ExecSyncAsync(string id, IReadOnlyList<string> command, TimeSpan timeout, CancellationToken ct);

    /// <summary>Runs a command in the container with its stdio streamed through <paramref name="stdio"/>; returns its exit code. Cancellation kills it.</summary>
    Task<int> ExecStreamingAsync(string id, IReadOnlyList<string> command, ExecStdio stdio, CancellationToken ct);

    /// <summary>Runs a command in the container on a terminal fed and read through <paramref name="stdio"/>; returns its exit code. Cancellation kills it.</summary>
    Task<int> ExecTerminalAsync(string id, IReadOnlyList<string> command, TerminalStdio stdio, CancellationToken ct);

    /// <summary>Joins the running container's stdio until its output ends (or the client is done, see <see cref="ConmonAttach"/>); cancellation disconnects.</summary>
    Task AttachAsync(AttachTarget target, AttachStdio stdio, CancellationToken ct);

    /// <summary>Applies new resource limits to the container.</summary>
    Task UpdateResourcesAsync(string id, LinuxContainerResources resources, CancellationToken ct);

    /// <summary>Makes the monitor reopen the container's log (after rotation); with a path, waits until the new file exists.</summary>
    Task ReopenLogAsync(string bundleDir, string? logPath, CancellationToken ct);
}

/// <summary>The runtimes a pod can choose by handler name (CRI runtime_handler).</summary>
public interface IContainerRuntimes
{
    string DefaultHandler { get; }

    IEnumerable<string> Names { get; }

    /// <summary>The runtime for a CRI runtime_handler; "" or null means the default.</summary>
    IContainerRuntime Resolve(string? handler);
}

/// <summary>
/// Where a streamed exec's stdio goes: stdin is read from <see cref="ReadStdin"/> until it returns 0; stdout and
/// stderr are written, chunk by chunk, as the process produces them (never buffered whole). A null member is not
/// connected (the process's stdin is then /dev/null; its output is discarded).
/// </summary>
public sealed record ExecStdio(
    Func<Memory<byte>, CancellationToken, ValueTask<int>>? ReadStdin,
    Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? WriteStdout,
    Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? WriteStderr);
