using CriRuntime.Cdi;
using CriRuntime.Native;

namespace CriRuntime.Oci.Spec;

/// <summary>
/// The container edits of the CDI devices a container asked for, applied as the CDI library's ContainerEdits.Apply
/// does: environment variables (a key already set is replaced), device nodes (a node at the same path is replaced;
/// type, major, minor and file mode come from the host node when the spec leaves them out) with device cgroup rules,
/// mounts (a mount at the same destination is replaced), OCI hooks and additional groups. Runs after the CRI's own
/// devices and mounts, as containerd applies CDI last.
/// </summary>
internal static class CdiSpecOptions
{
    public static void WithCdiDevices(RuntimeSpec spec, ContainerSpecInput input)
    {
        foreach (var edits in input.CdiEdits)
        {
            foreach (string env in edits.Env ?? []) SetEnv(spec.Process!, env);
            foreach (var node in edits.DeviceNodes ?? []) AddDeviceNode(spec, node);
            foreach (var mount in edits.Mounts ?? []) AddMount(spec, mount);
            foreach (var hook in edits.Hooks ?? []) AddHook(spec, hook);
            foreach (uint gid in edits.AdditionalGids ?? [])
            {
                if (gid == 0) continue;
                var gids = spec.Process!.User.AdditionalGids ??= [];
                if (!gids.Contains(gid)) gids.Add(gid);
            }
        }
    }

    private static void SetEnv(SpecProcess process, string env)
    {
        string key = env[..(env.IndexOf('=') + 1)];
        int at = process.Env.FindIndex(e => e.StartsWith(key, StringComparison.Ordinal));
        if (at >= 0) process.Env[at] = env;
        else process.Env.Add(env);
    }

    private static void AddDeviceNode(RuntimeSpec spec, CdiDeviceNode node)
    {
        string path = node.Path!;
        string hostPath = string.IsNullOrEmpty(node.HostPath) ? path : node.HostPath;
        string? type = string.IsNullOrEmpty(node.Type) ? null : node.Type;
        long? major = node.Major, minor = node.Minor;
        uint? fileMode = node.FileMode, uid = node.Uid, gid = node.Gid;
        // As the CDI library: a node whose type and numbers are given (or a FIFO) needs no host node.
        if (type is null || (major is null or 0 && type != "p") || fileMode is null)
        {
            FileStatus status;
            try
            {
                status = Files.Lstat(Files.RealPath(hostPath));
            }
            catch (NativeException e) when (e.Errno is Errno.ENOENT or Errno.ENOTDIR)
            {
                throw new NotFoundException($"CDI device node {path}: its host node {hostPath} does not exist on this node; the device's CDI spec does not match the node");
            }
            string hostType = status.Type switch
            {
                FileType.CharacterDevice => "c",
                FileType.BlockDevice => "b",
                FileType.Fifo => "p",
                _ => throw new FailedPreconditionException($"CDI device node {path}: host path {hostPath} is not a device node"),
            };
            type ??= hostType;
            if (major is null or 0 && type != "p")
            {
                major = status.RDeviceMajor;
                minor = status.RDeviceMinor;
            }
            fileMode ??= (uint)status.Permissions;
        }
        var linux = spec.Linux!;
        var devices = linux.Devices ??= [];
        devices.RemoveAll(d => d.Path == path);
        devices.Add(new SpecDevice { Type = type, Path = path, Major = major ?? 0, Minor = minor ?? 0, FileMode = fileMode, Uid = uid, Gid = gid });
        if (type is "b" or "c" or "u")
        {
            var rules = (linux.Resources ??= new SpecLinuxResources()).Devices ??= [];
            rules.Add(new SpecDeviceCgroup
            {
                Allow = true, Type = type == "b" ? "b" : "c", Major = major ?? 0, Minor = minor ?? 0,
                Access = string.IsNullOrEmpty(node.Permissions) ? "rwm" : node.Permissions,
            });
        }
    }

    private static void AddMount(RuntimeSpec spec, CdiMount mount)
    {
        string destination = MountSpecOptions.CleanPath(mount.ContainerPath!);
        spec.Mounts.RemoveAll(m => MountSpecOptions.CleanPath(m.Destination) == destination);
        var options = mount.Options is { Count: > 0 } given ? new List<string>(given) : ["bind"];
        string type = string.IsNullOrEmpty(mount.Type) ? "bind" : mount.Type;
        if (type == "bind" && !options.Contains("bind") && !options.Contains("rbind")) options.Add("bind");
        spec.Mounts.Add(new SpecMount { Destination = destination, Type = type, Source = mount.HostPath, Options = options });
    }

    private static void AddHook(RuntimeSpec spec, CdiHook hook)
    {
        var hooks = spec.Hooks ??= new SpecHooks();
        var entry = new SpecHook { Path = hook.Path!, Args = hook.Args, Env = hook.Env, Timeout = hook.Timeout };
        var list = hook.HookName switch
        {
            "prestart" => hooks.Prestart ??= [],
            "createRuntime" => hooks.CreateRuntime ??= [],
            "createContainer" => hooks.CreateContainer ??= [],
            "startContainer" => hooks.StartContainer ??= [],
            "poststart" => hooks.Poststart ??= [],
            "poststop" => hooks.Poststop ??= [],
            _ => throw new InvalidOperationException($"CDI hook name {hook.HookName} passed validation but is unknown"),
        };
        list.Add(entry);
    }
}
