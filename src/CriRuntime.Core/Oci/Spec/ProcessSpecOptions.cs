using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>The container's process: command line, terminal, working directory, environment and user, from the CRI
/// config over the image config as containerd combines them.</summary>
internal static class ProcessSpecOptions
{
    public const string DefaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    public static void WithArgsTerminalAndCwd(RuntimeSpec spec, ContainerSpecInput input)
    {
        var config = input.Config;
        var process = spec.Process!;
        process.Terminal = config.Tty;
        process.Args = ProcessArgs(config, input.Image);
        process.Cwd = !string.IsNullOrEmpty(config.WorkingDir) ? config.WorkingDir
            : !string.IsNullOrEmpty(input.Image.WorkingDir) ? input.Image.WorkingDir : "/";
        // containerd's CRI drops the default spec's rlimits (containerd issue #515): containers inherit
        // the runtime's limits, so none are set here.
        process.Rlimits = null;
    }

    /// <summary>containerd's rule (from moby): CRI command replaces the image Entrypoint, and then CRI args replace Cmd.</summary>
    internal static List<string> ProcessArgs(ContainerConfig config, Images.ImageRuntimeConfig image)
    {
        List<string> command = [.. config.Command];
        List<string> args = [.. config.Args];
        if (command.Count == 0)
        {
            if (args.Count == 0) args = [.. image.Cmd ?? []];
            // An Entrypoint of [""] is how an image says "no entrypoint".
            if (image.Entrypoint is { } entrypoint && !(entrypoint.Count == 1 && entrypoint[0].Length == 0))
                command = [.. entrypoint];
        }
        if (command.Count == 0 && args.Count == 0)
            throw new InvalidArgumentException($"container '{config.Metadata?.Name}' has no command: neither the CRI config nor the image sets a command or args");
        return [.. command, .. args];
    }

    public static void WithEnv(RuntimeSpec spec, ContainerSpecInput input)
    {
        var env = new List<string> { DefaultPathEnv };
        MergeEnv(env, [$"HOSTNAME={input.Hostname}"]);
        // Image env first so the CRI config's envs override it.
        MergeEnv(env, [.. input.Image.Env, .. input.Config.Envs.Select(e => $"{e.Key}={e.Value.ToStringUtf8()}")]);
        spec.Process!.Env = env;
    }

    /// <summary>Replaces entries with the same key or appends; a bare "KEY" removes KEY (containerd's WithEnv).</summary>
    internal static void MergeEnv(List<string> env, IEnumerable<string> additions)
    {
        foreach (string entry in additions)
        {
            int eq = entry.IndexOf('=');
            string key = eq < 0 ? entry : entry[..eq];
            int existing = env.FindIndex(e => e == key || e.StartsWith(key + "=", StringComparison.Ordinal));
            if (eq < 0)
            {
                if (existing >= 0) env.RemoveAt(existing);
            }
            else if (existing >= 0) env[existing] = entry;
            else env.Add(entry);
        }
    }

    /// <summary>The security context's user and group over the image's USER, resolved against the rootfs's
    /// /etc/passwd and /etc/group, plus the supplemental groups.</summary>
    public static void WithUser(RuntimeSpec spec, ContainerSpecInput input)
    {
        var security = input.SecurityContext();
        string? userSpec = null;
        if (!string.IsNullOrEmpty(security.RunAsUsername)) userSpec = security.RunAsUsername;
        else if (security.RunAsUser is not null) userSpec = security.RunAsUser.Value.ToString();
        if (security.RunAsGroup is not null)
        {
            if (userSpec is null)
                throw new InvalidArgumentException($"container '{input.Config.Metadata?.Name}': run_as_group is set without run_as_user or run_as_username");
            userSpec += ":" + security.RunAsGroup.Value;
        }
        userSpec ??= input.Image.User;
        if (security.RunAsUser is { Value: < 0 }) throw new InvalidArgumentException($"run_as_user {security.RunAsUser.Value} is negative");

        var resolved = ContainerUser.Resolve(input.RootfsPath, userSpec);
        var gids = resolved.AdditionalGids.ToList();
        foreach (long g in security.SupplementalGroups)
        {
            if (g < 0 || g > uint.MaxValue) throw new InvalidArgumentException($"supplemental group {g} is out of range");
            if (!gids.Contains((uint)g)) gids.Add((uint)g);
        }
        spec.Process!.User = new SpecUser { Uid = resolved.Uid, Gid = resolved.Gid, AdditionalGids = gids };
    }
}
