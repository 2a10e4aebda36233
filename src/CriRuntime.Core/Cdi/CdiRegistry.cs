using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Cdi;

/// <summary>The edits one container gets from its CDI devices, in the order they apply: each spec's own edits once,
/// then each device's.</summary>
public sealed record CdiResolution(IReadOnlyList<CdiContainerEdits> Edits, IReadOnlyList<string> Devices)
{
    public static CdiResolution None { get; } = new([], []);
}

/// <summary>
/// The CDI specs in <c>[cdi] spec_dirs</c> and the devices they define, read afresh when a container asks for a
/// device (so a driver that writes a spec is seen without a restart, as the CDI cache's directory watch does), and
/// not at all otherwise. As in the CDI library: only <c>*.json</c>, <c>*.yaml</c> and <c>*.yml</c> files are read;
/// a device in a later directory overrides the same device in an earlier one; two specs of one directory that
/// define the same device make it unresolvable (a conflict); a spec that does not parse or validate is skipped and
/// named when a device cannot be found. Bounded: files over <see cref="MaxSpecBytes"/> and files past
/// <see cref="MaxSpecFilesPerDir"/> in a directory are skipped, and the YAML reader limits depth and size.
/// </summary>
public sealed class CdiRegistry(IReadOnlyList<string> specDirs, ILogger<CdiRegistry> logger)
{
    public const long MaxSpecBytes = 1024 * 1024;
    public const int MaxSpecFilesPerDir = 1024;
    public const int MaxDevicesPerSpec = 4096;
    public const int MaxEditsPerList = 1024;

    private static readonly string[] HookNames = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

    public IReadOnlyList<string> SpecDirs { get; } = specDirs;

    /// <summary>The edits of <paramref name="devices"/>; nothing is read when none is asked for.</summary>
    /// <exception cref="NotFoundException">A device no valid spec defines, or one two specs define (named).</exception>
    public CdiResolution Resolve(IReadOnlyList<CdiDeviceName> devices)
    {
        if (devices.Count == 0) return CdiResolution.None;
        var loaded = Load();
        var edits = new List<CdiContainerEdits>();
        var specsUsed = new HashSet<LoadedSpec>();
        var missing = new List<string>();
        foreach (var device in devices)
        {
            string key = device.ToString();
            if (!loaded.Devices.TryGetValue(key, out var found))
            {
                missing.Add(loaded.Conflicts.TryGetValue(key, out string? conflict) ? $"{key} (defined twice: {conflict})" : key);
                continue;
            }
            // A spec's own edits apply once, however many of its devices the container gets.
            if (specsUsed.Add(found.Spec) && found.Spec.File.ContainerEdits is { } specEdits) edits.Add(specEdits);
            if (found.Device.ContainerEdits is { } deviceEdits) edits.Add(deviceEdits);
        }
        if (missing.Count > 0)
        {
            string skipped = loaded.Problems.Count == 0 ? "" : $"; specs skipped: {string.Join("; ", loaded.Problems.Take(5))}";
            throw new NotFoundException(
                $"unresolvable CDI devices {string.Join(", ", missing)}: no CDI spec in {string.Join(", ", SpecDirs)} defines them{skipped}; " +
                "install the device's driver or its CDI spec, or ask for a device that exists");
        }
        return new CdiResolution(edits, [.. devices.Select(d => d.ToString())]);
    }

    private sealed record LoadedSpec(string Path, CdiSpecFile File);

    private sealed record Loaded(
        Dictionary<string, (LoadedSpec Spec, CdiDevice Device)> Devices, Dictionary<string, string> Conflicts, List<string> Problems);

    private Loaded Load()
    {
        var devices = new Dictionary<string, (LoadedSpec Spec, CdiDevice Device)>(StringComparer.Ordinal);
        var conflicts = new Dictionary<string, string>(StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (string dir in SpecDirs)
        {
            // Devices of this directory, which override earlier directories' as a whole.
            var here = new Dictionary<string, (LoadedSpec Spec, CdiDevice Device)>(StringComparer.Ordinal);
            var hereConflicts = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (string path in SpecFiles(dir, problems))
            {
                LoadedSpec spec;
                try
                {
                    spec = new LoadedSpec(path, ReadSpec(path));
                }
                catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException or IOException or UnauthorizedAccessException)
                {
                    problems.Add($"{path}: {e.Message}");
                    logger.LogWarning("CDI spec {Path} skipped: {Error}", path, e.Message);
                    continue;
                }
                foreach (var device in spec.File.Devices!)
                {
                    string key = $"{spec.File.Kind}={device.Name}";
                    if (hereConflicts.ContainsKey(key)) continue;
                    if (here.Remove(key, out var other))
                    {
                        hereConflicts[key] = $"{other.Spec.Path} and {path}";
                        continue;
                    }
                    here[key] = (spec, device);
                }
            }
            foreach (var (key, value) in here)
            {
                devices[key] = value;
                conflicts.Remove(key);
            }
            foreach (var (key, value) in hereConflicts)
            {
                devices.Remove(key);
                conflicts[key] = value;
            }
        }
        return new Loaded(devices, conflicts, problems);
    }

    private static IEnumerable<string> SpecFiles(string dir, List<string> problems)
    {
        List<string> files;
        try
        {
            files = [.. Directory.EnumerateFiles(dir)
                .Where(f => f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal))
                .Take(MaxSpecFilesPerDir + 1)];
        }
        catch (DirectoryNotFoundException)
        {
            return [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problems.Add($"{dir}: cannot list: {e.Message}");
            return [];
        }
        if (files.Count > MaxSpecFilesPerDir)
        {
            problems.Add($"{dir}: holds more than {MaxSpecFilesPerDir} spec files; only the first {MaxSpecFilesPerDir} by name are read");
            files = [.. files.Order(StringComparer.Ordinal).Take(MaxSpecFilesPerDir)];
        }
        files.Sort(StringComparer.Ordinal);
        return files;
    }

    /// <summary>Reads and validates one spec file.</summary>
    /// <exception cref="FormatException">Too large, not JSON/YAML, or not a valid spec (the message says why).</exception>
    internal static CdiSpecFile ReadSpec(string path)
    {
        // Non-blocking and regular files only: a FIFO or device named *.json must not hang or flood the call.
        byte[] bytes;
        try
        {
            bytes = CriRuntime.Native.RequestedFiles.ReadRegularFile(path, (int)MaxSpecBytes, "CDI spec");
        }
        catch (InvalidArgumentException e)
        {
            throw new FormatException(e.Message, e);
        }
        return Parse(bytes, isJson: path.EndsWith(".json", StringComparison.Ordinal));
    }

    /// <summary>Parses and validates a spec's bytes (JSON, or YAML, which JSON also is).</summary>
    internal static CdiSpecFile Parse(byte[] bytes, bool isJson)
    {
        CdiSpecFile? spec;
        if (isJson)
        {
            spec = JsonSerializer.Deserialize(bytes, CdiJsonContext.Default.CdiSpecFile);
        }
        else
        {
            var tree = CdiYaml.ToJson(Encoding.UTF8.GetString(bytes));
            spec = tree is null ? null : tree.Deserialize(CdiJsonContext.Default.CdiSpecFile);
        }
        if (spec is null) throw new FormatException("is empty");
        Validate(spec);
        return spec;
    }

    private static void Validate(CdiSpecFile spec)
    {
        if (string.IsNullOrEmpty(spec.CdiVersion)) throw new FormatException("has no cdiVersion");
        if (CdiDeviceNames.KindProblem(spec.Kind) is { } kindProblem) throw new FormatException(kindProblem);
        if (spec.Devices is not { Count: > 0 } devices) throw new FormatException("defines no devices");
        if (devices.Count > MaxDevicesPerSpec) throw new FormatException($"defines more than {MaxDevicesPerSpec} devices");
        var names = new HashSet<string>(StringComparer.Ordinal);
        if (spec.ContainerEdits is { } specEdits) ValidateEdits(specEdits, "containerEdits");
        foreach (var device in devices)
        {
            if (device is null) throw new FormatException("has an empty device entry");
            if (CdiDeviceNames.NameProblem(device.Name) is { } nameProblem) throw new FormatException(nameProblem);
            if (!names.Add(device.Name!)) throw new FormatException($"defines device {device.Name} twice");
            if (device.ContainerEdits is not { } edits) throw new FormatException($"device {device.Name} has no containerEdits");
            ValidateEdits(edits, $"device {device.Name}");
        }
    }

    private static void ValidateEdits(CdiContainerEdits edits, string where)
    {
        Cap(edits.Env?.Count, where, "env");
        Cap(edits.DeviceNodes?.Count, where, "deviceNodes");
        Cap(edits.Hooks?.Count, where, "hooks");
        Cap(edits.Mounts?.Count, where, "mounts");
        Cap(edits.AdditionalGids?.Count, where, "additionalGids");
        foreach (string? env in edits.Env ?? [])
            if (string.IsNullOrEmpty(env) || env.IndexOf('=') <= 0 || env.Contains('\0'))
                throw new FormatException($"{where}: env entry '{Echo.Of(env ?? "")}' is not KEY=VALUE");
        foreach (var node in edits.DeviceNodes ?? [])
        {
            if (node is null || !IsAbsolute(node.Path)) throw new FormatException($"{where}: a device node has no absolute path");
            if (node.HostPath is { Length: > 0 } hostPath && !IsAbsolute(hostPath)) throw new FormatException($"{where}: device node {node.Path}: hostPath '{Echo.Of(hostPath)}' is not absolute");
            if (node.Type is { Length: > 0 } type && type is not ("b" or "c" or "u" or "p")) throw new FormatException($"{where}: device node {node.Path}: type '{Echo.Of(type)}' is not b, c, u or p");
            if (node.Permissions is { Length: > 0 } permissions && permissions.Any(c => c is not ('r' or 'w' or 'm')))
                throw new FormatException($"{where}: device node {node.Path}: permissions '{Echo.Of(permissions)}' are not letters of rwm");
        }
        foreach (var hook in edits.Hooks ?? [])
        {
            if (hook is null || !HookNames.Contains(hook.HookName)) throw new FormatException($"{where}: hook name '{Echo.Of(hook?.HookName ?? "")}' is not one of {string.Join(", ", HookNames)}");
            if (!IsAbsolute(hook.Path)) throw new FormatException($"{where}: {hook.HookName} hook path '{Echo.Of(hook.Path ?? "")}' is not absolute");
            Cap(hook.Args?.Count, where, "hook args");
            Cap(hook.Env?.Count, where, "hook env");
        }
        foreach (var mount in edits.Mounts ?? [])
        {
            if (mount is null || !IsAbsolute(mount.HostPath)) throw new FormatException($"{where}: a mount has no absolute hostPath");
            if (!IsAbsolute(mount.ContainerPath)) throw new FormatException($"{where}: mount of {mount.HostPath}: containerPath '{Echo.Of(mount.ContainerPath ?? "")}' is not absolute");
            if (mount.ContainerPath!.Split('/').Contains("..")) throw new FormatException($"{where}: mount containerPath {mount.ContainerPath} holds '..'");
        }
    }

    private static void Cap(int? count, string where, string what)
    {
        if (count > MaxEditsPerList) throw new FormatException($"{where}: more than {MaxEditsPerList} {what}");
    }

    private static bool IsAbsolute(string? path) => path is { Length: > 0 } && path[0] == '/' && !path.Contains('\0');
}
