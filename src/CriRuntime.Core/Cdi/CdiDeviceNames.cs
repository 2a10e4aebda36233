namespace CriRuntime.Cdi;

/// <summary>A fully qualified CDI device name, <c>vendor/class=name</c>; <see cref="Kind"/> is <c>vendor/class</c>.</summary>
public readonly record struct CdiDeviceName(string Kind, string Name)
{
    public override string ToString() => $"{Kind}={Name}";
}

/// <summary>
/// The CDI name rules (the CDI library's pkg/parser) and the two ways a CRI container asks for devices:
/// <c>ContainerConfig.CDI_devices</c> and <c>cdi.k8s.io/*</c> annotations, each holding a comma-separated list.
/// </summary>
public static class CdiDeviceNames
{
    public const string AnnotationPrefix = "cdi.k8s.io/";

    // A container asks for a handful of devices; this many is a mistake or an attack on the spec cache.
    public const int MaxDevicesPerContainer = 128;

    /// <summary>
    /// The devices a container asks for, CDI_devices first, then annotations in key order, each once, in that order
    /// (containerd merges the two lists the same way).
    /// </summary>
    /// <exception cref="InvalidArgumentException">A name that is not fully qualified, or too many.</exception>
    public static IReadOnlyList<CdiDeviceName> Requested(global::Runtime.V1.ContainerConfig config)
    {
        var names = new List<CdiDeviceName>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Add(string text, string field)
        {
            var name = Parse(text, field);
            if (seen.Add(name.ToString())) names.Add(name);
            if (names.Count > MaxDevicesPerContainer)
                throw new InvalidArgumentException($"the container asks for more than {MaxDevicesPerContainer} CDI devices");
        }
        foreach (var device in config.CDIDevices) Add(device.Name, "config.CDI_devices");
        foreach (var (key, value) in config.Annotations.OrderBy(a => a.Key, StringComparer.Ordinal))
        {
            if (!key.StartsWith(AnnotationPrefix, StringComparison.Ordinal)) continue;
            if (key.Length == AnnotationPrefix.Length)
                throw new InvalidArgumentException($"annotation '{AnnotationPrefix}' has no name after the prefix; CDI annotations are {AnnotationPrefix}<name>");
            foreach (string part in value.Split(',', StringSplitOptions.TrimEntries))
                Add(part, $"annotation {Echo.Of(key)}");
        }
        return names;
    }

    /// <summary>Parses <c>vendor/class=name</c>.</summary>
    /// <exception cref="InvalidArgumentException">Not a fully qualified, valid name.</exception>
    public static CdiDeviceName Parse(string text, string field)
    {
        int slash = text.IndexOf('/'), equals = text.IndexOf('=');
        if (slash <= 0 || equals <= slash + 1 || equals == text.Length - 1)
            throw new InvalidArgumentException($"{field}: '{Echo.Of(text)}' is not a fully qualified CDI device name; write vendor.com/class=device");
        string vendor = text[..slash], @class = text[(slash + 1)..equals], name = text[(equals + 1)..];
        string? problem = VendorProblem(vendor) ?? ClassProblem(@class) ?? NameProblem(name);
        if (problem is not null)
            throw new InvalidArgumentException($"{field}: '{Echo.Of(text)}' is not a valid CDI device name: {problem}");
        return new CdiDeviceName($"{vendor}/{@class}", name);
    }

    /// <summary>Why a spec's kind is not <c>vendor/class</c>, or null.</summary>
    public static string? KindProblem(string? kind)
    {
        if (string.IsNullOrEmpty(kind)) return "it has no kind";
        int slash = kind.IndexOf('/');
        if (slash <= 0 || slash == kind.Length - 1) return $"kind '{Echo.Of(kind)}' is not vendor/class";
        return VendorProblem(kind[..slash]) ?? ClassProblem(kind[(slash + 1)..]);
    }

    public static string? NameProblem(string? name)
    {
        if (string.IsNullOrEmpty(name)) return "a device has no name";
        if (name.Length > 255) return "a device name is longer than 255 characters";
        if (!char.IsAsciiLetterOrDigit(name[0]) || !char.IsAsciiLetterOrDigit(name[^1]))
            return $"device name '{Echo.Of(name)}' must start and end with a letter or digit";
        if (name.Any(c => !char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_' or '.' or ':')))
            return $"device name '{Echo.Of(name)}' may hold only letters, digits, '-', '_', '.' and ':'";
        return null;
    }

    private static string? VendorProblem(string vendor) => Part(vendor, "vendor");

    private static string? ClassProblem(string @class) => Part(@class, "class");

    private static string? Part(string text, string what)
    {
        if (text.Length > 255) return $"{what} is longer than 255 characters";
        if (!char.IsAsciiLetter(text[0])) return $"{what} '{Echo.Of(text)}' must start with a letter";
        if (!char.IsAsciiLetterOrDigit(text[^1])) return $"{what} '{Echo.Of(text)}' must end with a letter or digit";
        if (text.Any(c => !char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_' or '.')))
            return $"{what} '{Echo.Of(text)}' may hold only letters, digits, '-', '_' and '.'";
        return null;
    }
}
