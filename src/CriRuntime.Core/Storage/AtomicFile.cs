using System.Security.Cryptography;
using CriRuntime.Native;

namespace CriRuntime.Storage;

/// <summary>
/// Whole-file replacement that survives crashes: write a temp file in the same file system, fsync
/// it, rename it over the target, fsync the directory. A crash leaves the old or the new content,
/// never a torn file. Temp files are named <c>.NAME.tmp-RANDOM</c>.
/// </summary>
public static class AtomicFile
{
    public static Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> data, CancellationToken ct) =>
        WriteAllBytesAsync(path, data, tempDirectory: null, ct);

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> data)
    {
        var (full, dir, temp) = Names(path, null);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1))
            {
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
    internal static async Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> data, string? tempDirectory, CancellationToken ct)
    {
        var (full, dir, temp) = Names(path, tempDirectory);
        try
        {
            await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous))
            {
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
