using CriRuntime.Containers;
using Xunit;

namespace CriRuntime.Tests.Containers;

/// <summary>The fuzz suite's ExecSync with a 1 MiB argument reached runc and came back UNKNOWN (E2BIG).</summary>
public sealed class ExecCommandLimitsTests
{
    [Fact]
    public void One_argument_over_the_kernels_limit_is_named()
    {
        var e = Assert.Throws<InvalidArgumentException>(() => ExecCommandLimits.Validate(["sh", new string('p', 1024 * 1024)]));
        Assert.StartsWith("cmd[1] is 1048577 bytes", e.Message);
    }

    [Fact]
    public void Many_arguments_over_the_total_are_refused_and_a_kubelet_probe_passes()
    {
        var many = Enumerable.Repeat(new string('a', 100 * 1024), 11).ToList();
        var e = Assert.Throws<InvalidArgumentException>(() => ExecCommandLimits.Validate(many));
        Assert.Contains("together", e.Message);
        ExecCommandLimits.Validate(["sh", "-c", "cat /tmp/healthy"]);
        ExecCommandLimits.Validate(Enumerable.Repeat("-", 3000).ToList());
    }
}
