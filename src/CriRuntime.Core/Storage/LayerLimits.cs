using System.Text;

namespace CriRuntime.Storage;

/// <summary>A layer asks for more than the unpacker accepts (too deep, too long a name, too many entries).</summary>
public sealed class LayerLimitExceededException(string message) : CriException(CriErrorKind.FailedPrecondition, message);

/// <summary>
/// What one layer tar may hold. A tree deeper than these is no use to a container (paths past PATH_MAX
/// cannot be opened by path) and costs the daemon time and memory to create, walk and delete; Linux
/// refuses a name component over NAME_MAX anyway, so saying so up front gives a clearer error.
/// </summary>
internal static class LayerLimits
{
    /// <summary>Directory levels of one entry's path (docker images stay far below; node_modules rarely pass 50).</summary>
    public const int MaxDepth = 4096;
    /// <summary>NAME_MAX: bytes of one path component.</summary>
    public const int MaxComponentBytes = 255;
    /// <summary>Bytes of one entry's whole path (the GNU long-name cap; PAX paths up to 1 MiB would pass the filter).</summary>
    public const int MaxPathBytes = 64 * 1024;
    /// <summary>Entries (files, directories, links, whiteouts) in one layer.</summary>
    public const long MaxEntries = 1_000_000;

    /// <summary>Checks a raw tar name before it is split; <paramref name="entry"/> names it in the message.</summary>
    public static void CheckPath(string name, string entry, string what)
    {
        int bytes = Encoding.UTF8.GetByteCount(name);
        if (bytes > MaxPathBytes)
            throw new LayerLimitExceededException($"layer entry '{Shorten(entry)}' {what}has a path of {bytes} bytes; at most {MaxPathBytes} are accepted");
    }

    /// <summary>Checks one cleaned component and the depth reached with it.</summary>
    public static void CheckComponent(string part, int depth, string entry, string what)
    {
        if (depth > MaxDepth)
            throw new LayerLimitExceededException($"layer entry '{Shorten(entry)}' {what}is more than {MaxDepth} directory levels deep; at most {MaxDepth} are accepted");
        if (part.Length > MaxComponentBytes / 3 && Encoding.UTF8.GetByteCount(part) > MaxComponentBytes)
            throw new LayerLimitExceededException($"layer entry '{Shorten(entry)}' {what}has a name component of {Encoding.UTF8.GetByteCount(part)} bytes; at most {MaxComponentBytes} (NAME_MAX) are accepted");
    }

    public static void CheckEntryCount(long entries, long max = MaxEntries)
    {
        if (entries > max)
            throw new LayerLimitExceededException($"the layer has more than {max} entries; at most {max} are accepted");
    }

    /// <summary>A name for a message: the start and end of a very long one.</summary>
    internal static string Shorten(string name) =>
        name.Length <= 200 ? name : $"{name[..100]}...({name.Length} characters)...{name[^60..]}";
}
