using CriRuntime.Images;
using CriRuntime.Images.Distribution;
using CriRuntime.Native;
using CriRuntime.Network.Cni;
using CriRuntime.Oci;
using CriRuntime.Server;
using CriRuntime.Storage;
using Grpc.Core;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Errors;

/// <summary>The core's exceptions carry error kinds; the daemon maps kinds (not types) to gRPC codes.</summary>
public class ErrorKindTests
{
    /// <summary>
    /// Core exceptions that answer INTERNAL on purpose, each with the reason. Anything else the core defines
    /// must say its kind, or a new exception type would silently answer INTERNAL (as PlatformNotFoundException did).
    /// </summary>
    private static readonly Dictionary<Type, string> InternalOnPurpose = new()
    {
        [typeof(NativeException)] = "a failed system call is the daemon's or the host's failure, not the caller's: " +
            "INTERNAL, logged with its stack; it stays an IOException for the many callers that catch that",
    };

    [Fact]
    public void Every_exception_type_in_core_has_a_kind_or_a_reason_to_be_internal()
    {
        var missing = typeof(CriException).Assembly.GetTypes()
            .Where(t => typeof(Exception).IsAssignableFrom(t) && !t.IsNestedPrivate)
            .Where(t => !typeof(ICriError).IsAssignableFrom(t) && !InternalOnPurpose.ContainsKey(t))
            .Select(t => t.FullName)
            .ToList();
        Assert.True(missing.Count == 0,
            $"these core exceptions have no CriErrorKind and would answer INTERNAL: {string.Join(", ", missing)}; " +
            "derive from CriException (or implement ICriError), or add them to InternalOnPurpose with the reason");
        // The allow-list names only types that still exist and still have no kind.
        Assert.All(InternalOnPurpose.Keys, t => Assert.False(typeof(ICriError).IsAssignableFrom(t), $"{t.Name} has a kind now; drop it from the list"));
    }

    [Fact]
    public void Every_kind_maps_to_its_own_status_code_and_none_to_internal()
    {
        var kinds = Enum.GetValues<CriErrorKind>();
        var codes = kinds.Select(ErrorInterceptor.ToStatusCode).ToList();
        Assert.DoesNotContain(StatusCode.Internal, codes);
        Assert.DoesNotContain(StatusCode.OK, codes);
        Assert.Equal(kinds.Length, codes.Distinct().Count());
        // Same names on both sides, so a reader need not look the map up.
        Assert.All(kinds, k => Assert.Equal(k.ToString(), ErrorInterceptor.ToStatusCode(k).ToString()));
    }

    [Fact]
    public void Programming_errors_are_internal_and_bad_input_is_invalid_argument()
    {
        var nullArg = ErrorInterceptor.ToStatus(new ArgumentNullException("request"), callCancelled: false);
        Assert.Equal(StatusCode.Internal, nullArg.StatusCode);
        Assert.Contains("ArgumentNullException", nullArg.Detail);
        Assert.Equal(StatusCode.Internal, ErrorInterceptor.ToStatus(new ArgumentException("a guard"), false).StatusCode);
        Assert.Equal(StatusCode.Internal, ErrorInterceptor.ToStatus(new FormatException("a parser's bug"), false).StatusCode);
        Assert.Equal(StatusCode.Internal, ErrorInterceptor.ToStatus(new InvalidOperationException("x"), false).StatusCode);
        Assert.Equal(StatusCode.Internal, ErrorInterceptor.ToStatus(new NativeException("mount", "/x", Errno.EINVAL), false).StatusCode);

        var bad = ErrorInterceptor.ToStatus(new InvalidArgumentException("config.metadata.name is empty: give the pod a name"), false);
        Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
        Assert.Equal("config.metadata.name is empty: give the pod a name", bad.Detail);
        Assert.Equal(StatusCode.InvalidArgument, ErrorInterceptor.ToStatus(Assert.ThrowsAny<FormatException>(() => ImageReference.Parse("UPPER/Case")), false).StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, ErrorInterceptor.ToStatus(Assert.ThrowsAny<FormatException>(() => Digest.Parse("sha256:zz")), false).StatusCode);
    }

    [Fact]
    public void Core_exceptions_answer_their_kind()
    {
        (Exception Error, StatusCode Code)[] cases =
        [
            (new NotFoundException("pod x not found"), StatusCode.NotFound),
            (new AlreadyExistsException("x exists"), StatusCode.AlreadyExists),
            (new FailedPreconditionException("pod not ready"), StatusCode.FailedPrecondition),
            (new PlatformNotFoundException("no image for platform linux/amd64", []), StatusCode.NotFound),
            (new RegistryException(RegistryErrorKind.NotFound, "m"), StatusCode.NotFound),
            (new RegistryException(RegistryErrorKind.Unauthorized, "m"), StatusCode.Unauthenticated),
            (new RegistryException(RegistryErrorKind.Denied, "m"), StatusCode.PermissionDenied),
            (new RegistryException(RegistryErrorKind.TooManyRequests, "m"), StatusCode.ResourceExhausted),
            (new RegistryException(RegistryErrorKind.Unavailable, "m"), StatusCode.Unavailable),
            (new RegistryException(RegistryErrorKind.Invalid, "m"), StatusCode.FailedPrecondition),
            (new RegistryException(RegistryErrorKind.Other, "m"), StatusCode.Unknown),
            (new BlobVerificationException("short blob"), StatusCode.DataLoss),
            (new LayerDigestMismatchException(Digest.Parse("sha256:" + new string('a', 64)), Digest.Parse("sha256:" + new string('b', 64))), StatusCode.DataLoss),
            (new UnsafeLayerException("../x", "escapes the layer"), StatusCode.FailedPrecondition),
            (new ManifestException("bad manifest"), StatusCode.FailedPrecondition),
            (new InvalidImageException("config does not match"), StatusCode.FailedPrecondition),
            (new OciRuntimeException("runc create failed"), StatusCode.Unknown),
            (new CniException("bridge failed"), StatusCode.Unknown),
            (new TimeoutException("took too long"), StatusCode.DeadlineExceeded),
        ];
        Assert.All(cases, c =>
        {
            var status = ErrorInterceptor.ToStatus(c.Error, callCancelled: false);
            Assert.Equal(c.Code, status.StatusCode);
            Assert.Equal(c.Error.Message, status.Detail);
        });
    }

    [Fact]
    public void Cancellation_is_cancelled_only_when_the_client_cancelled()
    {
        Assert.Equal(StatusCode.Cancelled, ErrorInterceptor.ToStatus(new OperationCanceledException(), callCancelled: true).StatusCode);
        Assert.Equal(StatusCode.Internal, ErrorInterceptor.ToStatus(new OperationCanceledException(), callCancelled: false).StatusCode);
        var rpc = new RpcException(new Status(StatusCode.Aborted, "as thrown"));
        Assert.Equal(rpc.Status, ErrorInterceptor.ToStatus(rpc, false));
    }

    [Fact]
    public void Kinded_exceptions_keep_the_base_classes_callers_catch()
    {
        Assert.IsAssignableFrom<ArgumentException>(new InvalidArgumentException("x"));
        Assert.IsAssignableFrom<FormatException>(new InvalidFormatException("x"));
        Assert.IsAssignableFrom<IOException>(new BlobVerificationException("x"));
        Assert.IsAssignableFrom<IOException>(new LayerDigestMismatchException(Digest.Parse("sha256:" + new string('a', 64)), Digest.Parse("sha256:" + new string('b', 64))));
    }
}
