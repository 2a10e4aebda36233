namespace CriRuntime.Oci;

/// <summary>The exit files conmon writes: &lt;exitDir&gt;/&lt;id&gt; holding the container's exit status as text.</summary>
public static class ExitFiles
{
    /// <summary>Reads &lt;exitDir&gt;/&lt;id&gt;: the exit code, and the file's mtime as the finish time.
    /// False when there is no such file (the container has not exited, or conmon died before it could say).</summary>
    public static bool TryRead(string exitDir, string id, out int exitCode, out DateTimeOffset finishedAt)
    {
        exitCode = -1;
        finishedAt = default;
        string path = Path.Combine(exitDir, id);
        string text;
        DateTime modified;
        try
        {
            // conmon writes the file whole (g_file_set_contents: temp file + rename), so it is never torn.
            text = File.ReadAllText(path).Trim();
            modified = File.GetLastWriteTimeUtc(path);
        }
        catch (FileNotFoundException) { return false; }
        catch (DirectoryNotFoundException) { return false; }
        if (!int.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out exitCode))
            throw new InvalidDataException($"exit file {path} does not hold an exit code: '{text}'");
        finishedAt = new DateTimeOffset(modified, TimeSpan.Zero);
        return true;
    }
}
