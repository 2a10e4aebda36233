using CriRuntime.Bench;
using Xunit;

namespace CriRuntime.Tests.Bench;

/// <summary>The exec workload's options: crictl's path, the run count, and skipping it by name.</summary>
public class ExecBenchOptionsTests
{
    private static readonly string[] Required = ["--endpoint", "unix:///a.sock", "--name", "a", "--image", "b", "--large-image", "l", "--shared-image", "s", "--out", "o.json"];

    [Fact]
    public void Exec_figures_need_crictl_and_take_a_run_count()
    {
        var none = BenchOptions.Parse(Required);
        Assert.Null(none.Crictl);
        Assert.Equal(20, none.ExecRuns);
        Assert.True(none.Runs("exec"));

        var o = BenchOptions.Parse([.. Required, "--crictl", "/opt/crictl", "--exec-runs", "7"]);
        Assert.Equal("/opt/crictl", o.Crictl);
        Assert.Equal(7, o.ExecRuns);

        Assert.False(BenchOptions.Parse([.. Required, "--skip", "exec"]).Runs("exec"));
        Assert.Contains("--exec-runs", Assert.Throws<UsageException>(() => BenchOptions.Parse([.. Required, "--exec-runs", "0"])).Message);
        Assert.Contains("exec", BenchOptions.Usage);
    }
}
