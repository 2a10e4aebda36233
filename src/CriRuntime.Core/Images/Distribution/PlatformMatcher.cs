using CriRuntime.Content;
namespace CriRuntime.Images.Distribution;

/// <summary>No manifest in an index fits the wanted platform.</summary>
/// <remarks>NotFound, as containerd answers (its "no match for platform in manifest: not found"): the image exists,
/// but not for this node.</remarks>
public sealed class PlatformNotFoundException(string message, IReadOnlyList<Platform> offered) : CriException(CriErrorKind.NotFound, message)
{
    public IReadOnlyList<Platform> Offered { get; } = offered;
}

/// <summary>
/// Picks the manifest for a platform out of an index, following containerd's rules: os and
/// architecture must match; among variants the exact one wins, then the best compatible one.
/// </summary>
public static class PlatformMatcher
{
    /// <summary>Docker marks attestations (SBOM, provenance) in an index with this annotation.</summary>
    public const string ReferenceTypeAnnotation = "vnd.docker.reference.type";

    public static Descriptor Choose(ImageIndex index, Platform wanted, string? what = null) => Choose(index.Manifests, wanted, what);

    public static Descriptor Choose(IReadOnlyList<Descriptor> manifests, Platform wanted, string? what = null)
    {
        if (TryChoose(manifests, wanted, out var chosen)) return chosen;
        var offered = manifests.Where(IsCandidate).Select(m => Normalize(m.Platform!)).Distinct().ToList();
        string where = what is null ? "the index" : $"the index of {what}";
        string list = offered.Count == 0 ? "none (it lists no platforms)" : string.Join(", ", offered);
        throw new PlatformNotFoundException($"no image for platform {wanted} in {where}; it offers: {list}", offered);
    }

    public static bool TryChoose(IReadOnlyList<Descriptor> manifests, Platform wanted, out Descriptor chosen)
    {
        chosen = null!;
        int best = 0;
        foreach (var candidate in manifests)
        {
            if (!IsCandidate(candidate)) continue;
            int score = Score(candidate.Platform!, wanted);
            // Strictly better only: among equals the index's order decides, as in containerd.
            if (score > best)
            {
                best = score;
                chosen = candidate;
            }
        }
        return best > 0;
    }

    /// <summary>
    /// How well <paramref name="candidate"/> fits <paramref name="wanted"/>: 0 when it cannot run,
    /// higher is better.
    /// </summary>
    public static int Score(Platform candidate, Platform wanted)
    {
        var c = Normalize(candidate);
        var w = Normalize(wanted);
        if (!string.Equals(c.Os, w.Os, StringComparison.OrdinalIgnoreCase) || c.Architecture != w.Architecture) return 0;

        // The literal variant text as published, before normalization: "exact" beats "equivalent".
        int literal = string.Equals(candidate.Variant, wanted.Variant, StringComparison.OrdinalIgnoreCase) ? 1 : 0;
        if (c.Variant == w.Variant) return 1000 + literal;

        switch (w.Architecture)
        {
            case "arm":
            case "arm64":
                // Newer ARM cores run older variants' code: take the highest variant not above the wanted one.
                if (VariantVersion(c.Variant) is { } cv && VariantVersion(w.Variant) is { } wv && cv <= wv)
                    return 500 + (int)Math.Min(cv * 10, 400);
                return 0;
            default:
                // amd64 (v1..v4) and the rest: the variant is a tuning hint, not a requirement.
                if (c.Variant is null) return 900;
                if (w.Variant is null) return 100;
                if (VariantVersion(c.Variant) is { } lower && VariantVersion(w.Variant) is { } upper && lower <= upper)
                    return 500 + (int)Math.Min(lower * 10, 300);
                return 100;
        }
    }

    /// <summary>Entries that are images at all: attestations and platform-less entries are skipped.</summary>
    public static bool IsCandidate(Descriptor descriptor) =>
        descriptor.Platform is { } p
        && !string.IsNullOrEmpty(p.Os) && !string.IsNullOrEmpty(p.Architecture)
        && p.Os != "unknown" && p.Architecture != "unknown"
        && descriptor.Annotations?.ContainsKey(ReferenceTypeAnnotation) != true;

    /// <summary>Canonical names (x86_64 → amd64, aarch64 → arm64, arm64 defaults to v8, arm to v7).</summary>
    public static Platform Normalize(Platform platform)
    {
        string os = platform.Os.ToLowerInvariant();
        string arch = platform.Architecture.ToLowerInvariant();
        string? variant = string.IsNullOrEmpty(platform.Variant) ? null : platform.Variant.ToLowerInvariant();
        switch (arch)
        {
            case "i386": arch = "386"; break;
            case "x86_64": case "x86-64": arch = "amd64"; break;
            case "aarch64": arch = "arm64"; break;
            case "armhf": arch = "arm"; variant = "v7"; break;
            case "armel": arch = "arm"; variant = "v6"; break;
        }
        if (arch == "amd64" && variant == "v1") variant = null; // v1 is plain x86-64
        if (arch == "arm64")
        {
            if (variant is null or "8") variant = "v8";
        }
        else if (arch == "arm")
        {
            if (variant is null) variant = "v7";
            else if (variant is "5" or "6" or "7" or "8") variant = "v" + variant;
        }
        return new Platform(os, arch, variant);
    }

    /// <summary>"v8" → 8, "v8.2" → 8.2; null when the variant is not of that form.</summary>
    private static double? VariantVersion(string? variant)
    {
        if (variant is null || variant.Length < 2 || variant[0] != 'v') return null;
        return double.TryParse(variant.AsSpan(1), System.Globalization.NumberStyles.AllowDecimalPoint,
            System.Globalization.CultureInfo.InvariantCulture, out double v) ? v : null;
    }
}
