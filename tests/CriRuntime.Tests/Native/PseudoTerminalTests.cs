using System.Text;
using CriRuntime.Native;
using Xunit;

namespace CriRuntime.Tests.Native;

/// <summary>The daemon's own pseudo-terminals, against the real kernel.</summary>
public class PseudoTerminalTests
{
    [Fact]
    public void PassesBytesBothWaysRaw_SetsTheWindowSize_AndEndsWhenTheSlaveCloses()
    {
        using var terminal = PseudoTerminal.Open();
        Assert.StartsWith("/dev/pts/", terminal.SlavePath);
        terminal.SetWindowSize(40, 100);
        Assert.Equal((40, 100), terminal.GetWindowSize());

        using var slave = new FileStream(terminal.Slave, FileAccess.ReadWrite, 1);
        // Raw: no echo, no line buffering, no \n -> \r\n.
        terminal.Write("ab\n"u8, CancellationToken.None);
        var got = new byte[3];
        slave.ReadExactly(got);
        Assert.Equal("ab\n", Encoding.ASCII.GetString(got));
        slave.Write("out\n"u8);
        slave.Flush();
        var buffer = new byte[64];
        int n = terminal.Read(buffer, CancellationToken.None);
        Assert.Equal("out\n", Encoding.ASCII.GetString(buffer, 0, n));

        // Nothing to read: a read waits, and gives up when cancelled.
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        Assert.Throws<OperationCanceledException>(() => terminal.Read(buffer, cancel.Token));

        // What was written before the slave closed is still read, then EOF.
        slave.Write("last"u8);
        slave.Flush();
        slave.Dispose();
        var rest = new StringBuilder();
        while ((n = terminal.Read(buffer, CancellationToken.None)) > 0) rest.Append(Encoding.ASCII.GetString(buffer, 0, n));
        Assert.Equal("last", rest.ToString());
    }
}
