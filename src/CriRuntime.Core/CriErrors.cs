namespace CriRuntime;

// What kind of failure the core reports, in terms a CRI caller can act on. The daemon maps each kind to a
// gRPC status code in one place (Server/ErrorInterceptor.cs in the daemon); the core itself knows nothing of gRPC.
// An exception without a kind is a bug or a host failure the caller cannot fix: it answers INTERNAL and
// is logged with its stack.

/// <summary>The kinds of failure the core reports; each maps to one gRPC status code of the same name.</summary>
public enum CriErrorKind
{
    /// <summary>The request itself is wrong (a malformed field, a value out of range); retrying it as is cannot help.</summary>
    InvalidArgument,

    /// <summary>The object the caller named does not exist.</summary>
    NotFound,

    /// <summary>An object with that identity already exists.</summary>
    AlreadyExists,

    /// <summary>The object or the node is not in a state that allows the call (an image that cannot be used, a pod not ready).</summary>
    FailedPrecondition,

    /// <summary>A quota or rate limit was hit (a registry's 429).</summary>
    ResourceExhausted,

    /// <summary>Something the call needs cannot be reached right now; retrying later may work.</summary>
    Unavailable,

    /// <summary>The call ran out of time.</summary>
    DeadlineExceeded,

    /// <summary>Content is corrupt: it does not hash to the digest it was supposed to have.</summary>
    DataLoss,

    /// <summary>The caller's credentials were missing or not accepted (a registry's 401).</summary>
    Unauthenticated,

    /// <summary>The caller's credentials were accepted but do not allow this (a registry's 403).</summary>
    PermissionDenied,

    /// <summary>A component outside the daemon failed (the OCI runtime, a CNI plugin, a registry's unexpected answer).</summary>
    Unknown,
}

/// <summary>
/// An exception that says which <see cref="CriErrorKind"/> it is. Implemented by <see cref="CriException"/> and by
/// the few exceptions that must keep another base class so that existing catch blocks still see them
/// (IOException for corrupt content, ArgumentException and FormatException for bad input).
/// </summary>
public interface ICriError
{
    CriErrorKind ErrorKind { get; }
}

/// <summary>Base of the core's own failures: carries the kind and a message saying what was wrong and what to do.</summary>
public class CriException(CriErrorKind kind, string message, Exception? inner = null) : Exception(message, inner), ICriError
{
    public CriErrorKind ErrorKind { get; } = kind;
}

/// <summary>The object the caller named does not exist (gRPC NotFound).</summary>
public sealed class NotFoundException(string message) : CriException(CriErrorKind.NotFound, message);

/// <summary>An object with that identity already exists (gRPC AlreadyExists).</summary>
public sealed class AlreadyExistsException(string message) : CriException(CriErrorKind.AlreadyExists, message);

/// <summary>The object is not in a state that allows the call (gRPC FailedPrecondition).</summary>
public sealed class FailedPreconditionException(string message) : CriException(CriErrorKind.FailedPrecondition, message);

/// <summary>
/// The caller's request holds a bad value (gRPC InvalidArgument). Still an <see cref="ArgumentException"/> so that
/// code catching that keeps working; a plain ArgumentException, by contrast, is a programming error (INTERNAL).
/// </summary>
public sealed class InvalidArgumentException : ArgumentException, ICriError
{
    public InvalidArgumentException(string message) : base(message) { }

    public InvalidArgumentException(string message, string? paramName) : base(message, paramName) { }

    public InvalidArgumentException(string message, Exception? inner) : base(message, inner) { }

    public CriErrorKind ErrorKind => CriErrorKind.InvalidArgument;
}

/// <summary>
/// Text the caller supplied (an image reference, a digest, a platform) does not parse (gRPC InvalidArgument).
/// Still a <see cref="FormatException"/> so that parsers' callers catching that keep working.
/// </summary>
public sealed class InvalidFormatException(string message, Exception? inner = null) : FormatException(message, inner), ICriError
{
    public CriErrorKind ErrorKind => CriErrorKind.InvalidArgument;
}
