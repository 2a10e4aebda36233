using System.Runtime.InteropServices;

namespace CriRuntime.Native;

/// <summary>
/// A failed system call: carries errno, the call's name and the path it acted on, so a log line
/// reads like <c>mount overlay on /x: EINVAL (Invalid argument)</c>.
/// </summary>
public sealed class NativeException : IOException
{
    public NativeException(string call, string? path, int errno, string? operation = null)
        : base(Format(operation ?? call, path, errno))
    {
        Call = call;
        Path = path;
        Errno = errno;
        HResult = errno;
    }

    /// <summary>The libc function that failed, e.g. <c>mount</c>.</summary>
    public string Call { get; }

    public string? Path { get; }

    public int Errno { get; }

    /// <summary>The symbolic name, e.g. <c>ENOENT</c>.</summary>
    public string ErrnoName => Native.Errno.Name(Errno);

    private static string Format(string operation, string? path, int errno) =>
        $"{operation}{(path is null ? "" : " " + path)}: {Native.Errno.Name(errno)} ({Native.Errno.Describe(errno)})";

    /// <summary>Throws for the calling thread's last P/Invoke errno.</summary>
    internal static NativeException Last(string call, string? path, string? operation = null) =>
        new(call, path, Marshal.GetLastPInvokeError(), operation);
}

/// <summary>Linux errno values (the generic table shared by x86-64 and arm64) and their names.</summary>
public static class Errno
{
    public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, ENOEXEC = 8,
        EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, ENOTBLK = 15, EBUSY = 16,
        EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENFILE = 23, EMFILE = 24,
        ENOTTY = 25, ETXTBSY = 26, EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EMLINK = 31, EPIPE = 32,
        EDOM = 33, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36, ENOLCK = 37, ENOSYS = 38, ENOTEMPTY = 39,
        ELOOP = 40, ENODATA = 61, EOVERFLOW = 75, EOPNOTSUPP = 95, ENOTSUP = 95, ENOTCONN = 107,
        ETIMEDOUT = 110, ECONNREFUSED = 111, ESTALE = 116, EDQUOT = 122;

    private static readonly Dictionary<int, string> Names = new()
    {
        [EPERM] = "EPERM", [ENOENT] = "ENOENT", [ESRCH] = "ESRCH", [EINTR] = "EINTR", [EIO] = "EIO",
        [ENXIO] = "ENXIO", [E2BIG] = "E2BIG", [ENOEXEC] = "ENOEXEC", [EBADF] = "EBADF", [ECHILD] = "ECHILD",
        [EAGAIN] = "EAGAIN", [ENOMEM] = "ENOMEM", [EACCES] = "EACCES", [EFAULT] = "EFAULT", [ENOTBLK] = "ENOTBLK",
        [EBUSY] = "EBUSY", [EEXIST] = "EEXIST", [EXDEV] = "EXDEV", [ENODEV] = "ENODEV", [ENOTDIR] = "ENOTDIR",
        [EISDIR] = "EISDIR", [EINVAL] = "EINVAL", [ENFILE] = "ENFILE", [EMFILE] = "EMFILE", [ENOTTY] = "ENOTTY",
        [ETXTBSY] = "ETXTBSY", [EFBIG] = "EFBIG", [ENOSPC] = "ENOSPC", [ESPIPE] = "ESPIPE", [EROFS] = "EROFS",
        [EMLINK] = "EMLINK", [EPIPE] = "EPIPE", [EDOM] = "EDOM", [ERANGE] = "ERANGE", [EDEADLK] = "EDEADLK",
        [ENAMETOOLONG] = "ENAMETOOLONG", [ENOLCK] = "ENOLCK", [ENOSYS] = "ENOSYS", [ENOTEMPTY] = "ENOTEMPTY",
        [ELOOP] = "ELOOP", [ENODATA] = "ENODATA", [EOVERFLOW] = "EOVERFLOW", [EOPNOTSUPP] = "EOPNOTSUPP",
        [ENOTCONN] = "ENOTCONN", [ETIMEDOUT] = "ETIMEDOUT", [ECONNREFUSED] = "ECONNREFUSED", [ESTALE] = "ESTALE",
        [EDQUOT] = "EDQUOT",
    };

    public static string Name(int errno) => Names.TryGetValue(errno, out var name) ? name : $"errno {errno}";

    /// <summary>strerror(3) text.</summary>
    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
