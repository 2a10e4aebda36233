using CriRuntime.Streaming;
using Xunit;

namespace CriRuntime.Tests.Streaming;

/// <summary>The v4 error stream's metav1.Status, as client-go's errorDecoderV4 reads it.</summary>
public class RemoteCommandStatusTests
{
    [Fact]
    public void Success_is_the_kubelets_exact_status()
    {
        Assert.Equal("""{"metadata":{},"status":"Success"}""", System.Text.Encoding.UTF8.GetString(RemoteCommandStatus.Success.ToStatusJson()));
    }

    [Fact]
    public void A_non_zero_exit_carries_its_code_as_the_exit_code_cause()
    {
        var json = System.Text.Encoding.UTF8.GetString(RemoteCommandStatus.NonZeroExit(["sh", "-c", "exit 3"], 3).ToStatusJson());
        Assert.Equal("""{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}""", json);
    }

    [Fact]
    public void Another_failure_is_an_internal_error_with_its_message()
    {
        var json = System.Text.Encoding.UTF8.GetString(RemoteCommandStatus.Failure("container c is stopped").ToStatusJson());
        Assert.Equal("""{"metadata":{},"status":"Failure","message":"container c is stopped","reason":"InternalError","code":500}""", json);
    }
}
