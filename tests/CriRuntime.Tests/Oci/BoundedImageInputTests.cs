using System.Text;
using CriRuntime.Oci;
using Xunit;

namespace CriRuntime.Tests.Oci;

/// <summary>An image's /etc/passwd and /etc/group are read with caps; ExecSync output is cut to one gRPC message.</summary>
public sealed class BoundedImageInputTests : IDisposable
{
    private readonly string rootfs = Directory.CreateTempSubdirectory("criruntime-passwd-").FullName;

    public BoundedImageInputTests() => Directory.CreateDirectory(Path.Combine(rootfs, "etc"));

    public void Dispose() => Directory.Delete(rootfs, recursive: true);

    private void Write(string file, string content) => File.WriteAllText(Path.Combine(rootfs, "etc", file), content);

    [Fact]
    public void Ordinary_passwd_and_group_resolve_as_before()
    {
        Write("passwd", "root:x:0:0:root:/root:/bin/sh\r\napp:x:1000:1001::/home/app:/bin/sh\n");
        Write("group", "root:x:0:\napp:x:1001:\nextra:x:2000:app\n");
        var user = ContainerUser.Resolve(rootfs, "app");
        Assert.Equal((1000u, 1001u), (user.Uid, user.Gid));
        Assert.Equal([1001u, 2000u], user.AdditionalGids);
    }

    [Fact]
    public void A_passwd_larger_than_4_MiB_is_refused_with_a_message_naming_the_file_and_cap()
    {
        var sb = new StringBuilder("root:x:0:0:root:/root:/bin/sh\n");
        while (sb.Length <= ImageTextFile.MaxBytes) sb.Append("filler:x:1:1:").Append('g', 1000).Append(":/:/bin/false\n");
        Write("passwd", sb.ToString());

        var e = Assert.Throws<FailedPreconditionException>(() => ContainerUser.Resolve(rootfs, "root"));
        Assert.Equal($"the image's /etc/passwd is larger than {ImageTextFile.MaxBytes} bytes; the daemon reads at most that much: shrink it or use numeric ids", e.Message);
    }

    [Fact]
    public void A_group_line_over_64_KiB_is_refused()
    {
        Write("passwd", "root:x:0:0:root:/root:/bin/sh\n");
        Write("group", "root:x:0:\nbig:x:5:" + new string('m', 70_000) + "\n");

        var e = Assert.Throws<FailedPreconditionException>(() => ContainerUser.Resolve(rootfs, "root"));
        Assert.Contains("the image's /etc/group has a line of 70008 bytes (line 2); at most 65536 are read", e.Message);
    }

    [Fact]
    public void A_file_that_is_only_one_endless_line_stops_at_the_size_cap()
    {
        string path = Path.Combine(rootfs, "etc", "endless");
        File.WriteAllBytes(path, new byte[1000]);
        Assert.Throws<FailedPreconditionException>(() => ImageTextFile.ReadLines(path, "/etc/endless", maxBytes: 999));
        Assert.Single(ImageTextFile.ReadLines(path, "/etc/endless", maxBytes: 1000, maxLineBytes: 1000));
    }

    [Fact]
    public void Exec_output_within_the_budget_is_kept_whole()
    {
        var (o, e, cut) = ExecOutputBudget.Fit(new byte[10], new byte[5], budget: 15);
        Assert.Equal((10, 5, false), (o.Length, e.Length, cut));
    }

    [Theory]
    [InlineData(100, 0, 20, 20, 0)]    // only stdout: it gets all of the budget
    [InlineData(0, 100, 20, 0, 20)]
    [InlineData(100, 100, 20, 10, 10)] // both over: half each
    [InlineData(3, 100, 20, 3, 17)]    // what one leaves, the other may use
    [InlineData(100, 4, 20, 16, 4)]
    public void Exec_output_over_the_budget_is_cut_to_fit_together(int stdout, int stderr, int budget, int keptOut, int keptErr)
    {
        var outBytes = Enumerable.Range(0, stdout).Select(i => (byte)i).ToArray();
        var (o, e, cut) = ExecOutputBudget.Fit(outBytes, new byte[stderr], budget);
        Assert.True(cut);
        Assert.Equal((keptOut, keptErr), (o.Length, e.Length));
        Assert.Equal(outBytes[..keptOut], o); // the start is kept
    }

    [Fact]
    public void The_budget_leaves_room_for_the_message_framing_under_16_MiB()
    {
        var response = new Runtime.V1.ExecSyncResponse
        {
            Stdout = Google.Protobuf.ByteString.CopyFrom(new byte[ExecOutputBudget.MaxOutputBytes / 2]),
            Stderr = Google.Protobuf.ByteString.CopyFrom(new byte[ExecOutputBudget.MaxOutputBytes - ExecOutputBudget.MaxOutputBytes / 2]),
            ExitCode = int.MinValue,
        };
        Assert.InRange(response.CalculateSize(), 0, 16 * 1024 * 1024);
    }
}
