using CriRuntime.Server;
using Grpc.Core;
using Xunit;

namespace CriRuntime.Tests.Errors;

/// <summary>Request values quoted in messages are escaped and bounded, and no status message leaves the daemon unbounded.</summary>
public sealed class EchoTests
{
    [Fact]
    public void Short_printable_values_are_quoted_as_they_are()
    {
        Assert.Equal("pod-1", Echo.Of("pod-1"));
        Assert.Equal("", Echo.Of(null));
        Assert.Equal(new string('x', Echo.MaxChars), Echo.Of(new string('x', Echo.MaxChars)));
    }

    [Fact]
    public void A_megabyte_value_is_cut_to_a_bounded_quote_that_says_how_long_it_was()
    {
        string quoted = Echo.Of(new string('a', 1024 * 1024));
        Assert.True(quoted.Length < Echo.MaxChars + 40, $"{quoted.Length} characters");
        Assert.StartsWith(new string('a', Echo.MaxChars), quoted);
        Assert.EndsWith("…(1048576 characters)", quoted);
    }

    [Fact]
    public void Control_characters_are_escaped_so_a_value_cannot_forge_log_lines()
    {
        Assert.Equal(@"a\nb\0c\u001bd\\e", Echo.Of("a\nb\0c\u001bd\\e"));
    }

    [Fact]
    public void A_cut_never_splits_a_surrogate_pair()
    {
        string value = new string('a', Echo.MaxChars - 1) + "😀" + "tail";
        string quoted = Echo.Of(value);
        // The pair straddles the cut: it is left out whole, not halved.
        Assert.Equal(new string('a', Echo.MaxChars - 1) + "…(", quoted[..(Echo.MaxChars + 1)]);
    }

    [Fact]
    public void The_interceptor_caps_any_status_message_and_keeps_the_code()
    {
        var huge = new NotFoundException("pod sandbox '" + new string('z', 1024 * 1024) + "' not found");
        var status = ErrorInterceptor.ToStatus(huge, callCancelled: false);
        Assert.Equal(StatusCode.NotFound, status.StatusCode);
        Assert.True(status.Detail.Length <= ErrorInterceptor.MaxStatusMessageChars, $"{status.Detail.Length} characters");
        Assert.EndsWith("…(message cut)", status.Detail);

        var rpc = ErrorInterceptor.ToStatus(new RpcException(new Status(StatusCode.InvalidArgument, new string('r', 100_000))), false);
        Assert.Equal(StatusCode.InvalidArgument, rpc.StatusCode);
        Assert.True(rpc.Detail.Length <= ErrorInterceptor.MaxStatusMessageChars);

        var internalError = ErrorInterceptor.ToStatus(new IOException(new string('i', 100_000)), false);
        Assert.Equal(StatusCode.Internal, internalError.StatusCode);
        Assert.True(internalError.Detail.Length <= ErrorInterceptor.MaxStatusMessageChars);

        Assert.Equal("short", ErrorInterceptor.ToStatus(new NotFoundException("short"), false).Detail);
    }
}
