using System.Text;
using CriRuntime.Oci;
using CriRuntime.Streaming;
using Xunit;

namespace CriRuntime.Tests.Streaming;

/// <summary>The resize stream's JSON objects, as client-go's json.Encoder writes them and the kubelet's json.Decoder reads them.</summary>
public class TerminalSizeDecoderTests
{
    [Fact]
    public void Decodes_BackToBackObjects_SplitAnywhere_WithNamesInAnyCase()
    {
        var bytes = Encoding.ASCII.GetBytes("{\"Width\":80,\"Height\":24}\n{\"width\":132, \"height\":50}{\"Height\":1,\"Width\":2,\"Other\":\"}{\"}\n");
        // Fed one byte at a time, so every object is split across reads.
        var decoder = new TerminalSizeDecoder();
        var sizes = new List<TerminalSize>();
        foreach (byte b in bytes) sizes.AddRange(decoder.Feed([b]));
        Assert.Null(decoder.Failure);
        Assert.Equal([new TerminalSize(80, 24), new TerminalSize(132, 50), new TerminalSize(2, 1)], sizes);
    }

    [Theory]
    [InlineData("[1,2]")]
    [InlineData("{\"Width\":-1,\"Height\":2}")]
    [InlineData("{\"Width\":70000,\"Height\":2}")]
    [InlineData("{\"Width\":\"80\",\"Height\":2}")]
    [InlineData("{\"Width\":80,,}")]
    public void StopsAtTheFirstThingThatIsNotAWindowSize(string json)
    {
        var decoder = new TerminalSizeDecoder();
        var sizes = decoder.Feed(Encoding.ASCII.GetBytes(json + "{\"Width\":1,\"Height\":1}"));
        Assert.NotNull(decoder.Failure);
        Assert.Empty(sizes);
        Assert.Empty(decoder.Feed(Encoding.ASCII.GetBytes("{\"Width\":1,\"Height\":1}")));
    }

    [Fact]
    public void RefusesAnObjectThatNeverEnds_WithoutBufferingIt()
    {
        var decoder = new TerminalSizeDecoder();
        decoder.Feed(Encoding.ASCII.GetBytes("{\"Width\":\""));
        decoder.Feed(new byte[TerminalSizeDecoder.MaxObjectBytes]);
        Assert.Contains("over", decoder.Failure);
    }
}
