using System.Text;

namespace CriRuntime.Oci;

/// <summary>
/// Reads a small text file the image supplies (/etc/passwd, /etc/group) with a cap on its size and on each line, so
/// an image cannot make the daemon read gigabytes or hold one endless line in memory. Go's bufio.Scanner, which
/// containerd reads these files with, refuses lines over 64 KiB too.
/// </summary>
internal static class ImageTextFile
{
    public const int MaxBytes = 4 * 1024 * 1024;
    public const int MaxLineBytes = 64 * 1024;

    /// <param name="path">The host path to read.</param>
    /// <param name="containerPath">The file's path in the image, for messages.</param>
    public static List<string> ReadLines(string path, string containerPath, int maxBytes = MaxBytes, int maxLineBytes = MaxLineBytes)
    {
        byte[] content;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1))
        {
            // Read until one byte past the cap (whatever the size said when opened) to tell an over-long file apart.
            var kept = new MemoryStream();
            var buffer = new byte[64 * 1024];
            int n;
            while (kept.Length <= maxBytes && (n = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, maxBytes + 1 - kept.Length))) > 0)
                kept.Write(buffer, 0, n);
            if (kept.Length > maxBytes)
                throw new FailedPreconditionException($"the image's {containerPath} is larger than {maxBytes} bytes; the daemon reads at most that much: shrink it or use numeric ids");
            content = kept.ToArray();
        }
        var lines = new List<string>();
        int start = 0;
        while (start < content.Length)
        {
            int end = Array.IndexOf(content, (byte)'\n', start);
            if (end < 0) end = content.Length;
            if (end - start > maxLineBytes)
                throw new FailedPreconditionException($"the image's {containerPath} has a line of {end - start} bytes (line {lines.Count + 1}); at most {maxLineBytes} are read: fix the file or use numeric ids");
            lines.Add(Encoding.UTF8.GetString(content, start, end - start).TrimEnd('\r'));
            start = end + 1;
        }
        return lines;
    }
}
