using CriRuntime.Checkpoint;
using Xunit;

namespace CriRuntime.Tests.Checkpoint;

public sealed class CheckpointRequestValidationTests
{
    // A pretend file system: only these directories exist.
    private static bool Exists(string path) => path is "/" or "/var/lib/kubelet/checkpoints";

    [Fact]
    public void KubeletStyleLocation_InAnExistingDirectory_IsAccepted()
    {
        CheckpointRequestValidation.ValidateLocation("/var/lib/kubelet/checkpoints/checkpoint-web_default-nginx-2026-12-03T17:30:00Z.tar", Exists);
        CheckpointRequestValidation.ValidateLocation("/archive.tar", Exists);
    }

    [Theory]
    [InlineData("", "is empty")]
    [InlineData("checkpoint.tar", "not an absolute path")]
    [InlineData("./var/lib/kubelet/checkpoints/c.tar", "not an absolute path")]
    [InlineData("/var/lib/kubelet/checkpoints/", "names a directory")]
    [InlineData("/var/lib/kubelet/checkpoints", "names a directory")]
    [InlineData("/var/lib/kubelet/missing/c.tar", "does not exist")]
    [InlineData("/var/lib/kubelet/checkpoints/c\0.tar", "NUL")]
    public void BadLocation_IsInvalidArgument_SayingWhy(string location, string expected)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => CheckpointRequestValidation.ValidateLocation(location, Exists));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void OverlongLocation_IsRefused_WithoutQuotingIt()
    {
        string location = "/" + new string('a', CheckpointRequestValidation.MaxLocationChars);
        var e = Assert.Throws<InvalidArgumentException>(() => CheckpointRequestValidation.ValidateLocation(location, Exists));
        Assert.Contains("characters long", e.Message);
        Assert.True(e.Message.Length < 200, e.Message);
    }

    [Fact]
    public void Timeout_ZeroIsTheDefault_NegativeIsRefused_HugeIsCapped()
    {
        var fallback = TimeSpan.FromMinutes(4);
        Assert.Equal(fallback, CheckpointRequestValidation.TimeoutOf(0, fallback));
        Assert.Equal(TimeSpan.FromSeconds(30), CheckpointRequestValidation.TimeoutOf(30, fallback));
        Assert.Equal(TimeSpan.FromMilliseconds(int.MaxValue), CheckpointRequestValidation.TimeoutOf(long.MaxValue, fallback));
        Assert.Throws<InvalidArgumentException>(() => CheckpointRequestValidation.TimeoutOf(-1, fallback));
    }
}
