using System.Globalization;

namespace CriRuntime.Network.Cni;

/// <summary>
/// The pod annotations <c>kubernetes.io/ingress-bandwidth</c> and <c>kubernetes.io/egress-bandwidth</c> as the
/// <c>bandwidth</c> capability's args, computed as containerd does (its toCNIBandWidth over the kubelet's
/// ExtractPodBandwidthResources): each value is a Kubernetes resource quantity in bits per second, rounded up to a
/// whole number, between 1k and 1P; a direction that is given gets a burst of 2^32-1 bits, one that is not gets 0
/// (the plugin then leaves it unshaped).
/// </summary>
public static class PodBandwidthAnnotations
{
    public const string IngressAnnotation = "kubernetes.io/ingress-bandwidth";
    public const string EgressAnnotation = "kubernetes.io/egress-bandwidth";

    private const long MinimumBits = 1_000;
    private const long MaximumBits = 1_000_000_000_000_000;
    private const long BurstBits = uint.MaxValue;

    /// <summary>The shaping the annotations ask for, or null when neither is present.</summary>
    /// <exception cref="InvalidArgumentException">A value that is not a quantity, or one outside 1k..1P.</exception>
    public static PodBandwidth? FromAnnotations(IReadOnlyDictionary<string, string> annotations)
    {
        ArgumentNullException.ThrowIfNull(annotations);
        long? ingress = Read(annotations, IngressAnnotation);
        long? egress = Read(annotations, EgressAnnotation);
        if (ingress is null && egress is null) return null;
        return new PodBandwidth(ingress ?? 0, ingress is null ? 0 : BurstBits, egress ?? 0, egress is null ? 0 : BurstBits);
    }

    private static long? Read(IReadOnlyDictionary<string, string> annotations, string key)
    {
        if (!annotations.TryGetValue(key, out string? text)) return null;
        if (!ResourceQuantity.TryParse(text, out decimal value))
            throw new InvalidArgumentException(
                $"annotation {key}: '{Echo.Of(text)}' is not a resource quantity; write bits per second such as 10M, 1Gi or 500k");
        decimal bits = decimal.Ceiling(value);
        if (bits < MinimumBits)
            throw new InvalidArgumentException($"annotation {key}: {Echo.Of(text)} is unreasonably small (< 1kbit); give at least 1k");
        if (bits > MaximumBits)
            throw new InvalidArgumentException($"annotation {key}: {Echo.Of(text)} is unreasonably large (> 1Pbit); give at most 1P");
        return (long)bits;
    }
}

/// <summary>
/// Kubernetes resource quantities (k8s.io/apimachinery resource.Quantity): a signed decimal number followed by a
/// binary suffix (Ki, Mi, Gi, Ti, Pi, Ei), a decimal suffix (n, u, m, k, M, G, T, P, E) or a decimal exponent
/// (e3, E-2). Values past what <see cref="decimal"/> holds are refused rather than saturated.
/// </summary>
public static class ResourceQuantity
{
    // A quantity is short; a longer string is refused before it is looked at (Kubernetes' own parser has no cap,
    // but no real value comes near this).
    private const int MaxLength = 64;

    public static bool TryParse(string? text, out decimal value)
    {
        value = 0;
        if (string.IsNullOrEmpty(text) || text.Length > MaxLength) return false;
        int i = 0;
        if (text[i] is '+' or '-') i++;
        int digitsStart = i;
        while (i < text.Length && char.IsAsciiDigit(text[i])) i++;
        int integerDigits = i - digitsStart;
        int fractionDigits = 0;
        if (i < text.Length && text[i] == '.')
        {
            i++;
            int fractionStart = i;
            while (i < text.Length && char.IsAsciiDigit(text[i])) i++;
            fractionDigits = i - fractionStart;
        }
        if (integerDigits + fractionDigits == 0) return false;
        if (!decimal.TryParse(text.AsSpan(0, i), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal number))
            return false;
        string suffix = text[i..];
        try
        {
            value = suffix switch
            {
                "" => number,
                "Ki" => number * (1L << 10),
                "Mi" => number * (1L << 20),
                "Gi" => number * (1L << 30),
                "Ti" => number * (1L << 40),
                "Pi" => number * (1L << 50),
                "Ei" => number * (1L << 60),
                "n" => number / 1_000_000_000m,
                "u" => number / 1_000_000m,
                "m" => number / 1_000m,
                "k" => number * 1_000m,
                "M" => number * 1_000_000m,
                "G" => number * 1_000_000_000m,
                "T" => number * 1_000_000_000_000m,
                "P" => number * 1_000_000_000_000_000m,
                "E" => number * 1_000_000_000_000_000_000m,
                _ when suffix.Length > 1 && suffix[0] is 'e' or 'E' => Scale(number, suffix[1..]),
                _ => throw new FormatException(),
            };
            return true;
        }
        catch (Exception e) when (e is OverflowException or FormatException)
        {
            value = 0;
            return false;
        }
    }

    private static decimal Scale(decimal number, string exponentText)
    {
        if (!int.TryParse(exponentText, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int exponent) || exponentText.StartsWith('+') && exponentText.Length == 1)
            throw new FormatException();
        // decimal holds about 28 digits; anything further out is no bandwidth.
        if (exponent is > 28 or < -28) throw new OverflowException();
        decimal result = number;
        for (int k = 0; k < Math.Abs(exponent); k++) result = exponent > 0 ? result * 10 : result / 10;
        return result;
    }
}
