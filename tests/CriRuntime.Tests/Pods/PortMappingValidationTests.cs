using CriRuntime.Pods;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Pods;

/// <summary>Issue #13 item 8: port protocols outside the enum and host_ip values that are not addresses.</summary>
public sealed class PortMappingValidationTests
{
    [Theory]
    [InlineData("")]
    [InlineData("127.0.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("::1")]
    [InlineData("fd00::10:1")]
    [InlineData("::ffff:10.0.0.1")]
    public void Addresses_and_every_protocol_pass(string hostIp)
    {
        PortMappingValidation.Validate(
        [
            new PortMapping { Protocol = Protocol.Tcp, ContainerPort = 80, HostPort = 8080, HostIp = hostIp },
            new PortMapping { Protocol = Protocol.Udp, ContainerPort = 53, HostPort = 5353, HostIp = hostIp },
            new PortMapping { Protocol = Protocol.Sctp, ContainerPort = 9, HostPort = 9999, HostIp = hostIp },
        ]);
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("1")]
    [InlineData("0x7f.1")]
    [InlineData("127.1")]
    [InlineData("10.0.0.1/24")]
    [InlineData("fe80::1%eth0")]
    [InlineData("[::1]")]
    [InlineData("1.2.3.4 ")]
    [InlineData("../x")]
    public void Host_ips_that_are_not_addresses_are_refused(string hostIp)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => PortMappingValidation.Validate(
            [new PortMapping { ContainerPort = 80, HostPort = 8080 }, new PortMapping { ContainerPort = 80, HostPort = 8081, HostIp = hostIp }]));
        Assert.Contains("config.port_mappings[1].host_ip", e.Message);
    }

    [Fact]
    public void Protocols_outside_the_enum_are_refused()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => PortMappingValidation.Validate(
            [new PortMapping { Protocol = (Protocol)3, ContainerPort = 80, HostPort = 8080 }]));
        Assert.Contains("config.port_mappings[0].protocol 3", e.Message);
    }
}
