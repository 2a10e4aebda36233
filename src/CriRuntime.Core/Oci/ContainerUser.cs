using CriRuntime.Native;

namespace CriRuntime.Oci;

/// <summary>A process identity resolved against a container's rootfs.</summary>
public sealed record ResolvedUser(uint Uid, uint Gid, IReadOnlyList<uint> AdditionalGids, string? Username);

/// <summary>
/// Resolves "user[:group]" (names or numbers) against &lt;rootfs&gt;/etc/passwd and /etc/group the way
/// containerd's oci.WithUser and WithAdditionalGIDs do: a numeric uid that is not in passwd gets gid 0;
/// a name that is not there is an error; additional gids are the primary gid followed by every group
/// listing the user as a member. The files are read with symlinks resolved inside the rootfs, so an
/// image cannot make us read host files.
/// </summary>
public static class ContainerUser
{
    public static ResolvedUser Resolve(string rootfs, string? userSpec)
    {
        string spec = string.IsNullOrEmpty(userSpec) ? "0" : userSpec;
        string[] parts = spec.Split(':');
        if (parts.Length > 2 || parts[0].Length == 0 || (parts.Length == 2 && parts[1].Length == 0))
            throw new InvalidArgumentException($"invalid user '{spec}': expected user, uid, user:group or uid:gid");

        var passwd = ReadPasswd(rootfs);
        uint uid, gid;
        string? username;
        if (uint.TryParse(parts[0], out uid))
        {
            var entry = passwd.FirstOrDefault(p => p.Uid == uid);
            gid = entry?.Gid ?? 0;
            username = entry?.Name;
        }
        else
        {
            var entry = passwd.FirstOrDefault(p => p.Name == parts[0])
                ?? throw new InvalidArgumentException($"user '{parts[0]}' is not in the image's /etc/passwd ({Path.Combine(rootfs, "etc/passwd")}); use a numeric uid or add the user to the image");
            uid = entry.Uid;
            gid = entry.Gid;
            username = entry.Name;
        }

        var groups = ReadGroups(rootfs);
        if (parts.Length == 2)
        {
            if (!uint.TryParse(parts[1], out gid))
            {
                gid = (groups.FirstOrDefault(g => g.Name == parts[1])
                    ?? throw new InvalidArgumentException($"group '{parts[1]}' is not in the image's /etc/group ({Path.Combine(rootfs, "etc/group")}); use a numeric gid or add the group to the image")).Gid;
            }
        }

        var additional = new List<uint> { gid };
        if (username is not null)
        {
            foreach (var g in groups)
                if (g.Members.Contains(username) && !additional.Contains(g.Gid)) additional.Add(g.Gid);
        }
        return new ResolvedUser(uid, gid, additional, username);
    }

    internal sealed record PasswdEntry(string Name, uint Uid, uint Gid);
    internal sealed record GroupEntry(string Name, uint Gid, IReadOnlyList<string> Members);

    internal static IReadOnlyList<PasswdEntry> ReadPasswd(string rootfs)
    {
        var result = new List<PasswdEntry>();
        foreach (var fields in ReadColonFile(rootfs, "/etc/passwd"))
        {
            // name:password:uid:gid:gecos:home:shell; malformed lines are skipped as libc does.
            if (fields.Length < 4 || !uint.TryParse(fields[2], out uint uid) || !uint.TryParse(fields[3], out uint gid)) continue;
            result.Add(new PasswdEntry(fields[0], uid, gid));
        }
        return result;
    }

    internal static IReadOnlyList<GroupEntry> ReadGroups(string rootfs)
    {
        var result = new List<GroupEntry>();
        foreach (var fields in ReadColonFile(rootfs, "/etc/group"))
        {
            // name:password:gid:member,member
            if (fields.Length < 3 || !uint.TryParse(fields[2], out uint gid)) continue;
            var members = fields.Length > 3 ? fields[3].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [];
            result.Add(new GroupEntry(fields[0], gid, members));
        }
        return result;
    }

    private static IEnumerable<string[]> ReadColonFile(string rootfs, string containerPath)
    {
        string? hostPath = RootfsPath.Resolve(rootfs, containerPath);
        if (hostPath is null || Files.TryLstat(hostPath) is not { Type: FileType.RegularFile }) yield break;
        foreach (string raw in ImageTextFile.ReadLines(hostPath, containerPath))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            yield return line.Split(':');
        }
    }
}

/// <summary>Paths inside a container rootfs, resolved as the container would see them.</summary>
public static class RootfsPath
{
    /// <summary>
    /// The host path of <paramref name="containerPath"/> with every symlink resolved relative to
    /// <paramref name="rootfs"/> (".." stops at the root, absolute targets start at the root), like
    /// Go's securejoin. Null when a component is missing.
    /// </summary>
    public static string? Resolve(string rootfs, string containerPath)
    {
        string root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(rootfs));
        var pending = new Stack<string>(containerPath.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse());
        var resolved = new List<string>();
        int links = 0;
        while (pending.Count > 0)
        {
            string part = pending.Pop();
            if (part == ".") continue;
            if (part == "..")
            {
                if (resolved.Count > 0) resolved.RemoveAt(resolved.Count - 1);
                continue;
            }
            string candidate = root + "/" + string.Join('/', resolved.Append(part));
            var st = Files.TryLstat(candidate);
            if (st is null) return null;
            if (st.Value.Type != FileType.Symlink)
            {
                resolved.Add(part);
                continue;
            }
            if (++links > 40) throw new IOException($"too many levels of symbolic links resolving {containerPath} in {rootfs}");
            string target = Files.ReadLink(candidate);
            if (target.StartsWith('/')) resolved.Clear();
            foreach (string t in target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse()) pending.Push(t);
        }
        return resolved.Count == 0 ? root : root + "/" + string.Join('/', resolved);
    }
}
