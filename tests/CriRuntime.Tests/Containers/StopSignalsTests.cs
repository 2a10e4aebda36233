using CriRuntime.Containers;
using Xunit;

namespace CriRuntime.Tests.Containers;

public class StopSignalsTests
{
    [Theory]
    [InlineData("SIGTERM", 15)]
    [InlineData("TERM", 15)]
    [InlineData("sigint", 2)]
    [InlineData("SIGQUIT", 3)]
    [InlineData("9", 9)]
    [InlineData("SIGRTMIN", 34)]
    [InlineData("SIGRTMIN+3", 37)]
    [InlineData("SIGRTMAX-1", 63)]
    [InlineData(" SIGWINCH ", 28)]
    public void Parses_names_and_numbers(string name, int expected) => Assert.Equal(expected, StopSignals.Parse(name, "StopSignal"));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    public void Empty_means_none(string? name) => Assert.Null(StopSignals.Parse(name, "StopSignal"));

    [Theory]
    [InlineData("SIGNOPE")]
    [InlineData("0")]
    [InlineData("65")]
    [InlineData("SIGRTMIN+40")]
    public void Unknown_names_the_field_and_value(string name)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => StopSignals.Parse(name, "the image's StopSignal"));
        Assert.Contains("the image's StopSignal", e.Message);
        Assert.Contains(name, e.Message);
    }
}
