using System.Globalization;
using CriRuntime.Native;

namespace CriRuntime.Storage;

/// <summary>A file or directory that start-up could not read, moved aside instead of deleted.</summary>
public sealed record QuarantinedItem(string Path, string MovedTo, string Reason, DateTimeOffset Time);

/// <summary>A record written by a newer daemon: left where it is, untouched and unloaded.</summary>
public sealed record NewerRecord(string Path, int Version, int Supported);

/// <summary>What loading one store set aside or left alone; recovery collects these for the log and Status.</summary>
public sealed class StoreLoadReport
{
    public List<QuarantinedItem> Quarantined { get; } = [];
    public List<NewerRecord> Newer { get; } = [];
}

/// <summary>
/// Moves what cannot be read into a <c>quarantine/</c> directory beside it, under its own name plus a UTC
/// time stamp. A rename in the same file system: nothing is copied and nothing is ever deleted, so a human
/// (or a newer daemon) can still look at it, and a running container whose files are in it keeps them.
/// </summary>
public static class Quarantine
{
    public const string DirectoryName = "quarantine";

    /// <summary>Renames <paramref name="path"/> (file or directory) into its parent's quarantine/ dir; returns the new path.</summary>
    public static QuarantinedItem MoveAside(string path, string reason, DateTimeOffset now)
    {
        string full = Path.GetFullPath(path);
        string parent = Path.GetDirectoryName(full) ?? throw new ArgumentException($"'{path}' has no parent directory", nameof(path));
        string dir = Path.Combine(parent, DirectoryName);
        FileModes.CreateDirectory(dir, FileModes.PrivateDirectory);
        string stamp = now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        string name = Path.GetFileName(full);
        for (int n = 0; ; n++)
        {
            string target = Path.Combine(dir, n == 0 ? $"{name}.{stamp}" : $"{name}.{stamp}.{n}");
            try
            {
                // Never over something already set aside: that would be a deletion.
                Files.RenameNoReplace(full, target);
                Files.FsyncDirectory(parent);
                return new QuarantinedItem(full, target, reason, now);
            }
            catch (NativeException e) when (e.Errno is Errno.EEXIST or Errno.ENOTEMPTY && n < 100)
            {
            }
        }
    }
}

/// <summary>
/// Schema versions of persisted records. Every record carries one (a record written before versions existed
/// is version 1). A daemon loads only versions it knows; a newer record is left exactly as it is.
/// </summary>
public static class RecordSchema
{
    public const int Current = 1;

    /// <summary>
    /// The top-level <paramref name="property"/> of a JSON object, 1 when absent. Malformed JSON or a version that
    /// is not a positive integer throws <see cref="System.Text.Json.JsonException"/> (the record is unreadable).
    /// </summary>
    public static int ReadVersion(ReadOnlySpan<byte> json, string property)
    {
        var reader = new System.Text.Json.Utf8JsonReader(json, new System.Text.Json.JsonReaderOptions { MaxDepth = 64 });
        if (!reader.Read() || reader.TokenType != System.Text.Json.JsonTokenType.StartObject)
            throw new System.Text.Json.JsonException("the record is not a JSON object");
        while (reader.Read())
        {
            if (reader.TokenType == System.Text.Json.JsonTokenType.PropertyName && reader.CurrentDepth == 1 && reader.ValueTextEquals(property))
            {
                reader.Read();
                if (reader.TokenType == System.Text.Json.JsonTokenType.Number && reader.TryGetInt32(out int version) && version >= 1)
                    return version;
                throw new System.Text.Json.JsonException($"its {property} is not a positive integer");
            }
        }
        return 1;
    }
}
