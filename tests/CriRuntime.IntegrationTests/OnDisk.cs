using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using CriRuntime.TestSupport;

namespace CriRuntime.IntegrationTests;

/// <summary>
/// What the daemon's layer store looks like on disk (<c>&lt;root&gt;/overlay/&lt;chain hex&gt;/diff</c>,
/// <c>overlay/l</c>, <c>overlay/tmp</c>), and the small native look-ups the checks need (xattrs via libc,
/// device numbers via coreutils' stat), so no extra package is required.
/// </summary>
public static class OnDisk
{
    public static string Overlay(string root) => Path.Combine(root, "overlay");

    /// <summary>Chain IDs of an image's layers, bottom first (OCI image spec: chainID(n) = sha256(chainID(n-1) + " " + diffID(n))).</summary>
    public static IReadOnlyList<string> ChainIds(BuiltImage image)
    {
        var result = new List<string>();
        string? chain = null;
        foreach (var diffId in image.DiffIds)
        {
            chain = chain is null ? diffId : "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes(chain + " " + diffId)));
            result.Add(chain);
        }
        return result;
    }

    public static string Hex(string digest) => digest[(digest.IndexOf(':') + 1)..];

    public static string LayerDir(string root, string chainId) => Path.Combine(Overlay(root), Hex(chainId));

    /// <summary>Names of committed layer directories (everything in overlay/ but l/ and tmp/).</summary>
    public static IReadOnlyList<string> LayerDirNames(string root)
    {
        string overlay = Overlay(root);
        if (!Directory.Exists(overlay)) return [];
        return Directory.EnumerateFileSystemEntries(overlay)
            .Select(Path.GetFileName)
            .Where(n => n is not ("l" or "tmp"))
            .Select(n => n!)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Entries left in overlay/tmp (interrupted or failed unpacks).</summary>
    public static IReadOnlyList<string> TmpEntries(string root)
    {
        string tmp = Path.Combine(Overlay(root), "tmp");
        return Directory.Exists(tmp) ? Directory.EnumerateFileSystemEntries(tmp).ToList() : [];
    }

    /// <summary>Every path under <paramref name="dir"/> (recursively, not following symlinks) whose name is <paramref name="name"/>.</summary>
    public static IReadOnlyList<string> FindByName(string dir, string name)
    {
        var found = new List<string>();
        var pending = new Stack<string>();
        if (Directory.Exists(dir)) pending.Push(dir);
        while (pending.Count > 0)
        {
            string current = pending.Pop();
            IEnumerable<string> entries;
            try { entries = Directory.EnumerateFileSystemEntries(current).ToList(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            foreach (var entry in entries)
            {
                if (Path.GetFileName(entry) == name) found.Add(entry);
                if (!IsSymlink(entry) && Directory.Exists(entry)) pending.Push(entry);
            }
        }
        return found;
    }

    /// <summary>A dump of the overlay dir for failure messages (two levels).</summary>
    public static string Describe(string root)
    {
        string overlay = Overlay(root);
        if (!Directory.Exists(overlay)) return $"{overlay}: missing";
        var sb = new StringBuilder($"{overlay}:\n");
        foreach (var e in Directory.EnumerateFileSystemEntries(overlay).Order(StringComparer.Ordinal))
        {
            sb.Append("  ").Append(Path.GetFileName(e)).Append('\n');
            if (Directory.Exists(e) && !IsSymlink(e))
                foreach (var f in Directory.EnumerateFileSystemEntries(e).Order(StringComparer.Ordinal).Take(20))
                    sb.Append("    ").Append(Path.GetFileName(f)).Append('\n');
        }
        return sb.ToString();
    }

    private static bool IsSymlink(string path) => new FileInfo(path).LinkTarget is not null;

    /// <summary>lgetxattr(2): the value of <paramref name="name"/> on <paramref name="path"/> itself, or null if unset.</summary>
    public static byte[]? GetXattr(string path, string name)
    {
        var buffer = new byte[4096];
        long n = lgetxattr(path, name, buffer, (nuint)buffer.Length);
        if (n < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == 61 /* ENODATA */) return null;
            throw new IOException($"lgetxattr({path}, {name}) failed: errno {errno}");
        }
        return buffer[..(int)n];
    }

    /// <summary>
    /// File type and device numbers as coreutils' stat prints them: "character special file 0:0",
    /// "regular file 0:0", ... (major:minor in hex; 0:0 for non-devices).
    /// </summary>
    public static string StatTypeAndDevice(string path) => Run("stat", "-c", "%F %t:%T", "--", path);

    /// <summary>Hard link count (coreutils' stat %h).</summary>
    public static int LinkCount(string path) => int.Parse(Run("stat", "-c", "%h", "--", path));

    public static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start " + file);
        string stdout = p.StandardOutput.ReadToEnd();
        string stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {p.ExitCode}: {stderr}");
        return stdout.Trim();
    }

    [DllImport("libc", SetLastError = true)]
    private static extern long lgetxattr(string path, string name, byte[] value, nuint size);
}
