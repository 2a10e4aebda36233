using System.Security.Cryptography;

namespace CriRuntime.Content;

/// <summary>
/// A content digest such as <c>sha256:0123...</c>. Only sha256 and sha512 are accepted: they are the
/// algorithms the OCI image spec registers, and an unknown algorithm could not be verified anyway.
/// </summary>
public readonly record struct Digest(string Algorithm, string Hex)
{
    public static Digest Parse(string text) =>
        TryParse(text, out var digest)
            ? digest
            : throw new InvalidFormatException($"'{text}' is not a valid digest: expected sha256:<64 lowercase hex digits> or sha512:<128>");

    public static bool TryParse(string? text, out Digest digest)
    {
        digest = default;
        if (string.IsNullOrEmpty(text)) return false;
        int colon = text.IndexOf(':');
        if (colon <= 0) return false;
        string algorithm = text[..colon];
        string hex = text[(colon + 1)..];
        int expected = algorithm switch { "sha256" => 64, "sha512" => 128, _ => -1 };
        if (expected < 0 || hex.Length != expected) return false;
        foreach (char c in hex)
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c)) return false;
        digest = new Digest(algorithm, hex);
        return true;
    }

    public static Digest Sha256(ReadOnlySpan<byte> data) => new("sha256", Convert.ToHexStringLower(SHA256.HashData(data)));

    public static Digest Sha256(string text) => Sha256(System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>A fresh incremental hasher for this digest's algorithm.</summary>
    public IncrementalHash CreateHasher() => Algorithm switch
    {
        "sha256" => IncrementalHash.CreateHash(HashAlgorithmName.SHA256),
        "sha512" => IncrementalHash.CreateHash(HashAlgorithmName.SHA512),
        _ => throw new InvalidOperationException($"unsupported digest algorithm {Algorithm}"),
    };

    public Digest WithHash(ReadOnlySpan<byte> hash) => new(Algorithm, Convert.ToHexStringLower(hash));

    public bool IsEmpty => Algorithm is null;

    public override string ToString() => $"{Algorithm}:{Hex}";
}

/// <summary>An OCI content descriptor: what a manifest says about a blob it points to.</summary>
public sealed record Descriptor(string MediaType, Digest Digest, long Size)
{
    public Platform? Platform { get; init; }
    public IReadOnlyList<string>? Urls { get; init; }
    public IReadOnlyDictionary<string, string>? Annotations { get; init; }
}

/// <summary>An OCI platform (os/architecture[/variant]).</summary>
public sealed record Platform(string Os, string Architecture, string? Variant = null)
{
    public string? OsVersion { get; init; }

    /// <summary>Parses <c>linux/amd64</c> or <c>linux/arm64/v8</c>.</summary>
    public static Platform Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length is < 2 or > 3 || parts.Any(string.IsNullOrWhiteSpace))
            throw new InvalidFormatException($"'{text}' is not a platform: expected os/architecture[/variant], for example linux/amd64");
        return new Platform(parts[0], parts[1], parts.Length == 3 ? parts[2] : null);
    }

    /// <summary>The platform of this machine, in OCI's names (GOARCH style).</summary>
    public static Platform Current => new("linux", System.Runtime.InteropServices.RuntimeInformation.OSArchitecture switch
    {
        System.Runtime.InteropServices.Architecture.X64 => "amd64",
        System.Runtime.InteropServices.Architecture.Arm64 => "arm64",
        System.Runtime.InteropServices.Architecture.Arm => "arm",
        System.Runtime.InteropServices.Architecture.X86 => "386",
        System.Runtime.InteropServices.Architecture.S390x => "s390x",
        System.Runtime.InteropServices.Architecture.Ppc64le => "ppc64le",
        System.Runtime.InteropServices.Architecture.RiscV64 => "riscv64",
        var other => other.ToString().ToLowerInvariant(),
    });

    public override string ToString() => Variant is null ? $"{Os}/{Architecture}" : $"{Os}/{Architecture}/{Variant}";
}
