using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using CriRuntime.Content;

namespace CriRuntime.Images;

/// <summary>
/// A normalized image reference, as Docker and containerd write them: <c>busybox</c> is
/// <c>docker.io/library/busybox:latest</c>. <see cref="Registry"/> is the host (with port) to pull from,
/// <see cref="Repository"/> the path inside it. A reference with a digest and no tag keeps no tag.
/// </summary>
public sealed record ImageReference(string Registry, string Repository, string? Tag, Digest? Digest)
{
    /// <summary>Docker Hub's canonical name; its API actually lives at registry-1.docker.io.</summary>
    public const string DockerHub = "docker.io";

    /// <summary>Longest name (registry/repository) a registry accepts, as distribution defines it.</summary>
    public const int MaxNameLength = 255;

    private const string DefaultTag = "latest";
    private const string OfficialPrefix = "library/";
    private const int MaxTagLength = 128;

    /// <summary>The fully qualified name, for example <c>docker.io/library/busybox</c>.</summary>
    public string Name => $"{Registry}/{Repository}";

    /// <summary><c>Name:Tag</c>, when there is a tag.</summary>
    public string? TagReference => Tag is null ? null : $"{Name}:{Tag}";

    /// <summary><c>Name@Digest</c>, when there is a digest.</summary>
    public string? DigestReference => Digest is null ? null : $"{Name}@{Digest}";

    public ImageReference WithDigest(CriRuntime.Content.Digest d) => this with { Digest = d };

    public ImageReference WithoutDigest() => this with { Digest = null };

    public override string ToString() =>
        Name + (Tag is null ? "" : ":" + Tag) + (Digest is null ? "" : "@" + Digest);

    /// <summary>Parses and normalizes <paramref name="text"/>; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static ImageReference Parse(string text) =>
        TryParse(text, out var reference, out var error) ? reference : throw new InvalidFormatException(error);

    public static bool TryParse(string text, [NotNullWhen(true)] out ImageReference? reference, [NotNullWhen(false)] out string? error)
    {
        reference = null;
        error = Validate(text, out var parsed);
        if (error is not null)
        {
            error = $"invalid image reference \"{text}\": {error}";
            return false;
        }
        reference = parsed!;
        return true;
    }

    private static string? Validate(string? text, out ImageReference? result)
    {
        result = null;
        if (string.IsNullOrEmpty(text)) return "it is empty";
        if (text.Any(char.IsWhiteSpace)) return "it contains whitespace";
        if (text.Any(char.IsControl)) return "it contains control characters";
        if (IsHex64(text))
            return "a 64-character hex string is an image id, not a reference; look images up by id separately";
        if (text.StartsWith("sha256:", StringComparison.Ordinal) && IsHex64(text["sha256:".Length..]))
            return "this is an image id (sha256:<hex>), not a reference; look images up by id separately";

        // name[:tag][@digest]: a name holds no '@', so the first one starts the digest.
        string rest = text;
        CriRuntime.Content.Digest? digest = null;
        int at = rest.IndexOf('@');
        if (at >= 0)
        {
            string digestText = rest[(at + 1)..];
            if (digestText.Length == 0) return "nothing follows '@'; a digest such as sha256:<64 hex digits> is expected";
            if (digestText.Contains('@')) return "it contains more than one '@'";
            if (!CriRuntime.Content.Digest.TryParse(digestText, out var parsedDigest))
                return $"'{digestText}' is not a valid digest: expected sha256:<64 lowercase hex digits> or sha512:<128 lowercase hex digits>";
            digest = parsedDigest;
            rest = rest[..at];
            if (rest.Length == 0) return "the repository name before '@' is missing";
        }

        // The tag follows the last ':' after the last '/' ("host:5000/app" has a port, not a tag).
        string? tag = null;
        int lastSlash = rest.LastIndexOf('/');
        int colon = rest.LastIndexOf(':');
        if (colon > lastSlash)
        {
            tag = rest[(colon + 1)..];
            rest = rest[..colon];
            if (tag.Length == 0) return "nothing follows ':'; write a tag such as :latest, or leave out the ':'";
            if (TagProblem(tag) is { } tagProblem) return tagProblem;
            if (rest.Length == 0) return "the repository name before ':' is missing";
        }

        // The first component is a registry only if it looks like a host: has '.' or ':', or is localhost.
        string registry;
        string repository;
        int slash = rest.IndexOf('/');
        string first = slash < 0 ? "" : rest[..slash];
        if (slash >= 0 && (first.Contains('.') || first.Contains(':') || first == "localhost"))
        {
            registry = first;
            repository = rest[(slash + 1)..];
            if (RegistryProblem(registry) is { } registryProblem) return registryProblem;
            if (repository.Length == 0) return $"the repository path after '{registry}/' is missing";
        }
        else
        {
            registry = DockerHub;
            repository = rest;
        }

        if (registry.Equals("index.docker.io", StringComparison.OrdinalIgnoreCase) ||
            registry.Equals("registry-1.docker.io", StringComparison.OrdinalIgnoreCase) ||
            registry.Equals(DockerHub, StringComparison.OrdinalIgnoreCase))
        {
            registry = DockerHub;
        }

        if (RepositoryProblem(repository) is { } repositoryProblem) return repositoryProblem;

        if (registry == DockerHub && !repository.Contains('/')) repository = OfficialPrefix + repository;

        int nameLength = registry.Length + 1 + repository.Length;
        if (nameLength > MaxNameLength)
            return $"the name {registry}/{repository} is {nameLength} characters long; at most {MaxNameLength} are allowed";

        // Only a bare name gets the default tag: a digest alone pins the image, so no tag is implied.
        if (tag is null && digest is null) tag = DefaultTag;

        result = new ImageReference(registry, repository, tag, digest);
        return null;
    }

    private static bool IsHex64(string s) => s.Length == 64 && s.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    private static string? TagProblem(string tag)
    {
        if (tag.Length > MaxTagLength) return $"the tag is {tag.Length} characters long; at most {MaxTagLength} are allowed";
        if (!IsWordChar(tag[0])) return $"the tag '{tag}' must start with a letter, digit or '_'";
        foreach (char c in tag)
            if (!IsWordChar(c) && c is not '.' and not '-')
                return $"the tag '{tag}' contains '{c}'; tags may only contain letters, digits, '_', '.' and '-'";
        return null;
    }

    private static bool IsWordChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    private static string? RegistryProblem(string registry)
    {
        string host = registry;
        string? port = null;
        if (registry.StartsWith('['))
        {
            int close = registry.IndexOf(']');
            if (close < 0) return $"the registry '{registry}' opens '[' for an IPv6 address but never closes it";
            string address = registry[1..close];
            if (address.Length == 0 || !address.All(c => char.IsAsciiHexDigit(c) || c == ':') ||
                !IPAddress.TryParse(address, out var ip) || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
                return $"the registry '{registry}' has '[{address}]', which is not an IPv6 address";
            string after = registry[(close + 1)..];
            if (after.Length > 0)
            {
                if (after[0] != ':') return $"the registry '{registry}' has '{after}' after the IPv6 address; only :port may follow";
                port = after[1..];
            }
        }
        else
        {
            int colon = registry.IndexOf(':');
            if (colon >= 0)
            {
                host = registry[..colon];
                port = registry[(colon + 1)..];
                if (port.Contains(':'))
                    return $"the registry '{registry}' has more than one ':'; write IPv6 addresses in brackets, like [::1]:5000";
            }
            if (host.Length == 0) return $"the registry '{registry}' has no host name before the port";
            foreach (var label in host.Split('.'))
            {
                if (label.Length == 0) return $"the registry host '{host}' has an empty label (two dots in a row, or a leading or trailing dot)";
                if (!label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-') || label[0] == '-' || label[^1] == '-')
                    return $"the registry host '{host}' is not a valid host name: labels are letters, digits and inner '-'";
            }
        }
        if (port is not null)
        {
            if (port.Length == 0 || port.Length > 5 || !port.All(char.IsAsciiDigit) || int.Parse(port, CultureInfo.InvariantCulture) > 65535)
                return $"the registry '{registry}' has port '{port}', which is not a number from 0 to 65535";
        }
        return null;
    }

    private static string? RepositoryProblem(string repository)
    {
        if (!repository.Equals(repository.ToLowerInvariant(), StringComparison.Ordinal))
            return $"the repository name '{repository}' must be lowercase (did you mean '{repository.ToLowerInvariant()}'?); only the registry host may contain capitals";
        foreach (var component in repository.Split('/'))
        {
            if (component.Length == 0)
                return $"the repository '{repository}' has an empty path component (a leading, trailing or doubled '/')";
            if (ComponentProblem(component) is { } problem) return $"the repository path component '{component}' {problem}";
        }
        return null;
    }

    /// <summary>
    /// Checks one path component against <c>[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*</c>: alphanumeric runs
    /// joined by one '.', one or two '_', or any number of '-'.
    /// </summary>
    private static string? ComponentProblem(string component)
    {
        static bool IsAlnum(char c) => c is (>= 'a' and <= 'z') or (>= '0' and <= '9');
        if (!IsAlnum(component[0])) return "must start with a lowercase letter or digit";
        if (!IsAlnum(component[^1])) return "must end with a lowercase letter or digit";
        int i = 0;
        while (i < component.Length)
        {
            char c = component[i];
            if (IsAlnum(c))
            {
                i++;
                continue;
            }
            int start = i;
            while (i < component.Length && !IsAlnum(component[i])) i++;
            string separator = component[start..i];
            bool ok = separator is "." or "_" or "__" || separator.All(s => s == '-');
            if (!ok)
            {
                return separator.Any(s => s is not '.' and not '_' and not '-')
                    ? $"contains '{separator.First(s => s is not '.' and not '_' and not '-')}'; only lowercase letters, digits, '.', '_' and '-' are allowed"
                    : $"has the separator '{separator}'; between letters and digits use one '.', one or two '_', or dashes";
            }
        }
        return null;
    }
}
