using System.Security.Cryptography;
using CriRuntime.Native;

namespace CriRuntime.Storage;

/// <summary>
/// Whole-file replacement that survives crashes: write a temp file in the same file system, fsync
/// it, rename it over the target, fsync the directory. A crash leaves the old or the new content,
/// never a torn file. Temp files are named <c>.NAME.tmp-RANDOM</c>. Files are 0600 unless a caller says otherwise
/// (records, bundles and caches hold container configs, secrets included; issue #11), whatever the umask.
/// </summary>
public static class AtomicFile
{
    public static Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> data, CancellationToken ct) =>
        WriteAllBytesAsync(path, data, tempDirectory: null, ct);

    /// <summary>As <see cref="WriteAllBytesAsync(string, ReadOnlyMemory{byte}, CancellationToken)"/>, with the file's mode.</summary>
    public static Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> data, UnixFileMode mode, CancellationToken ct) =>
        WriteAllBytesAsync(path, data, tempDirectory: null, ct, mode);

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> data, UnixFileMode mode = FileModes.PrivateFile)
    {
        var (full, dir, temp) = Names(path, null);
        try
        {
            using (var stream = new FileStream(temp, CreateOptions(mode, FileOptions.None)))
            {
                // Exact, not narrowed by the umask.
                File.SetUnixFileMode(stream.SafeFileHandle, mode);
                stream.Write(data);
                stream.Flush();
                Files.Fsync(stream.SafeFileHandle);
            }
            Files.Rename(temp, full);
        }
        catch
        {
            DeleteIgnoringErrors(temp);
            throw;
        }
        Files.FsyncDirectory(dir);
    }

    /// <summary>As above, with the temp file in <paramref name="tempDirectory"/> (same file system) so
    /// a crash's leftovers collect in one place that can be swept.</summary>
    internal static async Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> data, string? tempDirectory, CancellationToken ct,
        UnixFileMode mode = FileModes.PrivateFile)
    {
        var (full, dir, temp) = Names(path, tempDirectory);
        try
        {
            await using (var stream = new FileStream(temp, CreateOptions(mode, FileOptions.Asynchronous)))
            {
                File.SetUnixFileMode(stream.SafeFileHandle, mode);
                await stream.WriteAsync(data, ct).ConfigureAwait(false);
                await stream.FlushAsync(ct).ConfigureAwait(false);
                Files.Fsync(stream.SafeFileHandle);
            }
            // Last point at which giving up is free; after the rename the new content is committed.
            ct.ThrowIfCancellationRequested();
            Files.Rename(temp, full);
        }
        catch
        {
            DeleteIgnoringErrors(temp);
            throw;
        }
        Files.FsyncDirectory(dir);
    }

    // Created with the final mode, so the content is never readable by others even for a moment.
    private static FileStreamOptions CreateOptions(UnixFileMode mode, FileOptions options) => new()
    {
        Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 1, Options = options, UnixCreateMode = mode,
    };

    private static (string Full, string Dir, string Temp) Names(string path, string? tempDirectory)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? throw new ArgumentException($"'{path}' has no parent directory", nameof(path));
        string temp = Path.Combine(tempDirectory ?? dir,
            $".{Path.GetFileName(full)}.tmp-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}");
        return (full, dir, temp);
    }

    private static void DeleteIgnoringErrors(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
