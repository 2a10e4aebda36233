namespace CriRuntime;

// Failures the CRI layer turns into specific gRPC codes. The message says what was wrong and what to do.

/// <summary>The object the caller named does not exist (gRPC NotFound).</summary>
public sealed class NotFoundException(string message) : Exception(message);

/// <summary>An object with that identity already exists (gRPC AlreadyExists).</summary>
public sealed class AlreadyExistsException(string message) : Exception(message);

/// <summary>The object is not in a state that allows the call (gRPC FailedPrecondition).</summary>
public sealed class FailedPreconditionException(string message) : Exception(message);
