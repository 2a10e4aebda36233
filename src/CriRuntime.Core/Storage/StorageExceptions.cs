using CriRuntime.Content;

namespace CriRuntime.Storage;

/// <summary>Content did not hash to the digest it was supposed to have.</summary>
/// <remarks>An IOException because it surfaces while content is streamed; its kind is DataLoss.</remarks>
public class DigestMismatchException : IOException, ICriError
{
    public CriErrorKind ErrorKind => CriErrorKind.DataLoss;

    public DigestMismatchException(Digest expected, Digest actual, string message) : base(message)
    {
        Expected = expected;
        Actual = actual;
    }

    public Digest Expected { get; }

    public Digest Actual { get; }
}

/// <summary>An uncompressed layer's digest is not the diff ID the image config promised.</summary>
public sealed class LayerDigestMismatchException(Digest expected, Digest actual)
    : DigestMismatchException(expected, actual,
        $"layer content does not match its diff ID: expected {expected}, got {actual}");

/// <summary>A layer tar entry that would create or modify something outside the layer directory.</summary>
public sealed class UnsafeLayerException(string entry, string reason)
    : CriException(CriErrorKind.FailedPrecondition, $"entry '{entry}' {reason}")
{
    public string Entry { get; } = entry;
}

/// <summary>A layer blob that is intact (its digest matches) but is not a readable compressed tar.</summary>
public sealed class InvalidLayerException(string message, Exception inner) : CriException(CriErrorKind.FailedPrecondition, message, inner);
