namespace CriRuntime.Checkpoint;

/// <summary>
/// The checks on a CheckpointContainerRequest that need no container and no CRIU: where the archive goes and how long
/// the call may take. The kubelet names a file such as
/// /var/lib/kubelet/checkpoints/checkpoint-&lt;pod&gt;_&lt;namespace&gt;-&lt;container&gt;-&lt;time&gt;.tar and creates its directory first.
/// </summary>
public static class CheckpointRequestValidation
{
    /// <summary>Longer than Linux's PATH_MAX cannot be opened anyway; refusing it here keeps the message readable.</summary>
    public const int MaxLocationChars = 4096;

    /// <summary>
    /// InvalidArgument unless <paramref name="location"/> is an absolute path of a file (not a directory) whose directory
    /// exists. <paramref name="directoryExists"/> is Directory.Exists outside unit tests.
    /// </summary>
    public static void ValidateLocation(string location, Func<string, bool> directoryExists)
    {
        if (string.IsNullOrEmpty(location))
            throw new InvalidArgumentException("location is empty: give the absolute path of the checkpoint archive to write (a .tar file)");
        if (location.Length > MaxLocationChars)
            throw new InvalidArgumentException($"location is {location.Length} characters long, more than {MaxLocationChars}: give a shorter path");
        if (location.Contains('\0'))
            throw new InvalidArgumentException("location contains a NUL character: give a plain absolute path");
        if (!Path.IsPathRooted(location) || location[0] != '/')
            throw new InvalidArgumentException($"location '{Echo.Of(location)}' is not an absolute path: give the absolute path of the archive to write");
        if (location.EndsWith('/') || directoryExists(location))
            throw new InvalidArgumentException($"location '{Echo.Of(location)}' names a directory: give the path of the archive file to write in it");
        string directory = Path.GetDirectoryName(location) ?? "/";
        if (!directoryExists(directory))
            throw new InvalidArgumentException(
                $"location '{Echo.Of(location)}': directory '{Echo.Of(directory)}' does not exist; create it first (the kubelet creates its checkpoints directory)");
    }

    /// <summary>The request's timeout in seconds as a span; 0 means <paramref name="defaultTimeout"/>, a negative value is InvalidArgument.</summary>
    public static TimeSpan TimeoutOf(long seconds, TimeSpan defaultTimeout)
    {
        if (seconds < 0)
            throw new InvalidArgumentException($"timeout {seconds} is negative: give the time the checkpoint may take in seconds, or 0 for the default");
        // Longer than a .NET timer holds (int.MaxValue ms) is cut to that rather than throwing (INTERNAL).
        return seconds == 0 ? defaultTimeout
            : seconds > int.MaxValue / 1000 ? TimeSpan.FromMilliseconds(int.MaxValue)
            : TimeSpan.FromSeconds(seconds);
    }
}
