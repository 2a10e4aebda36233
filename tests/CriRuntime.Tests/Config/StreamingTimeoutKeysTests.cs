using CriRuntime.Config;
using Xunit;

namespace CriRuntime.Tests.Config;

/// <summary>The streaming timeouts read as Go durations (the and the kubelet's spelling) or whole seconds.</summary>
public sealed class StreamingTimeoutKeysTests
{
    private const string Source = "test.toml";

    [Theory]
    [InlineData("4h", 14400)]
    [InlineData("4h0m0s", 14400)]
    [InlineData("90m", 5400)]
    [InlineData("1h30m", 5400)]
    [InlineData("1.5h", 5400)]
    [InlineData("30s", 30)]
    [InlineData("1500ms", 1.5)]
    public void IdleTimeout_ReadsGoDurations(string text, double seconds)
    {
        var config = ConfigLoader.Parse($"[streaming]\nidle_timeout = \"{text}\"\n", Source);
        Assert.Equal(TimeSpan.FromSeconds(seconds), config.Streaming.IdleTimeout);
    }

    [Fact]
    public void StreamCreationTimeout_ReadsGoDurations()
    {
        Assert.Equal(TimeSpan.FromSeconds(45), ConfigLoader.Parse("[streaming]\nstream_creation_timeout = \"45s\"\n", Source).Streaming.StreamCreationTimeout);
        Assert.Equal(TimeSpan.FromMinutes(2), ConfigLoader.Parse("[streaming]\nstream_creation_timeout = \"2m\"\n", Source).Streaming.StreamCreationTimeout);
    }

    [Theory]
    [InlineData("idle_timeout = \"4 hours\"", "idle_timeout")]
    [InlineData("idle_timeout = \"4d\"", "none of h, m, s")]
    [InlineData("idle_timeout = \"\"", "not a duration")]
    [InlineData("idle_timeout = \"100ms\"", "from 1s")]
    [InlineData("stream_creation_timeout = \"2h\"", "from 1s to 1h0m0s")]
    [InlineData("idle_timeout = 30", "string")]
    [InlineData("idle_timeout_seconds = 60", "idle_timeout")] // the spelling of an earlier build: refused, naming the key to use
    public void BadDurations_AreRefused_NamingTheKey(string line, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse($"[streaming]\n{line}\n", Source));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void DefaultConfig_WritesTheDurations_AndReadsBack()
    {
        string text = DefaultConfig.Render(new CriRuntimeConfig());
        Assert.Contains("idle_timeout = \"4h0m0s\"", text);
        Assert.Contains("stream_creation_timeout = \"30s\"", text);
        var again = ConfigLoader.Parse(text, Source);
        Assert.Equal(TimeSpan.FromHours(4), again.Streaming.IdleTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), again.Streaming.StreamCreationTimeout);
    }
}
