using System.Text;
using System.Text.Json;
using CriRuntime.Streaming;
using Xunit;

namespace CriRuntime.Tests.Streaming;

/// <summary>The pure parts of port-forward: port headers and the error-stream message.</summary>
public class PortForwardHandlerTests
{
    [Theory]
    [InlineData("1", 1)]
    [InlineData("80", 80)]
    [InlineData("65535", 65535)]
    [InlineData("08080", 8080)]
    public void Port_headers_within_1_to_65535_parse(string header, int expected) =>
        Assert.Equal(expected, PortForwardHandler.ParsePort(header));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("0")]
    [InlineData("65536")]
    [InlineData("-1")]
    [InlineData("+80")]
    [InlineData(" 80")]
    [InlineData("80a")]
    [InlineData("http")]
    [InlineData("99999999999999999999")]
    [InlineData("٨٠")] // Arabic-Indic digits: not ASCII
    public void Other_port_headers_do_not(string? header) =>
        Assert.Null(PortForwardHandler.ParsePort(header));

    [Fact]
    public void The_error_message_is_the_kubelets_json_with_a_newline_and_readable_quotes()
    {
        var bytes = PortForwardHandler.ErrorJson("error forwarding port 81 to pod p, uid : in network namespace \"host\": refused", closeConnection: true);
        var text = Encoding.UTF8.GetString(bytes);
        Assert.Equal("{\"closeConnection\":true,\"message\":\"error forwarding port 81 to pod p, uid : in network namespace \\\"host\\\": refused\"}\n", text);
        using var json = JsonDocument.Parse(text);
        Assert.Equal("error forwarding port 81 to pod p, uid : in network namespace \"host\": refused", json.RootElement.GetProperty("message").GetString());

        // closeConnection is left out when false, as Go's omitempty does.
        Assert.Equal("{\"message\":\"x\"}\n", Encoding.UTF8.GetString(PortForwardHandler.ErrorJson("x", closeConnection: false)));
    }
}
