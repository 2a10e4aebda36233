using CriRuntime.Bench;
using Xunit;

namespace CriRuntime.Tests.Bench;

public class SampleStatisticsTests
{
    [Theory]
    [InlineData(new[] { 1.0, 2, 3, 4 }, 50, 2.5)]
    [InlineData(new[] { 1.0, 2, 3, 4 }, 90, 3.7)]
    [InlineData(new[] { 4.0, 1, 3, 2 }, 0, 1)]
    [InlineData(new[] { 4.0, 1, 3, 2 }, 100, 4)]
    [InlineData(new[] { 7.0 }, 90, 7)]
    [InlineData(new[] { 10.0, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110 }, 90, 100)]
    public void Percentile_interpolates_between_closest_ranks(double[] samples, double p, double expected) =>
        Assert.Equal(expected, SampleStatistics.Percentile(samples, p), 9);

    [Fact]
    public void Percentile_refuses_no_samples_and_out_of_range()
    {
        Assert.Throws<ArgumentException>(() => SampleStatistics.Percentile([], 50));
        Assert.Throws<ArgumentOutOfRangeException>(() => SampleStatistics.Percentile([1.0], 101));
        Assert.Throws<ArgumentOutOfRangeException>(() => SampleStatistics.Percentile([1.0], -1));
    }
}

public class BenchOptionsTests
{
    private static readonly string[] Required = ["--image", "b", "--large-image", "l", "--shared-image", "s", "--out", "o.json"];

    [Fact]
    public void Per_endpoint_options_pair_with_endpoints_in_order()
    {
        var o = BenchOptions.Parse([
            "--endpoint", "unix:///a.sock", "--name", "criruntime", "--helpers", "conmon, catatonit",
            "--endpoint", "unix:///b.sock", "--name", "containerd", "--helpers", "containerd-shim-runc-v2",
            "--concurrency", "4,8", .. Required]);
        Assert.Equal(["criruntime", "containerd"], o.Endpoints.Select(e => e.Name));
        Assert.Equal(["conmon", "catatonit"], o.Endpoints[0].Helpers);
        Assert.Equal(["containerd-shim-runc-v2"], o.Endpoints[1].Helpers);
        Assert.Equal([4, 8], o.Concurrency);
        Assert.Equal("unix:///b.sock", o.Endpoints[1].Endpoint);
    }

    [Theory]
    [InlineData(new[] { "--endpoint", "unix:///a", "--image", "b", "--out", "o" }, "--name")]
    [InlineData(new[] { "--endpoint", "unix:///a", "--name", "x", "--pods", "0" }, "--pods")]
    [InlineData(new[] { "--endpoint", "unix:///a", "--name", "x", "--concurrency", "4,z" }, "'z'")]
    [InlineData(new[] { "--endpoint", "unix:///a", "--name", "x", "--bogus" }, "--bogus")]
    [InlineData(new[] { "--endpoint", "unix:///a", "--name", "x", "--endpoint", "unix:///b", "--name", "x" }, "differ")]
    [InlineData(new[] { "--name", "x" }, "--endpoint")]
    public void Bad_arguments_say_which(string[] args, string mentioned)
    {
        var e = Assert.Throws<UsageException>(() => BenchOptions.Parse(args));
        Assert.Contains(mentioned, e.Message);
    }
}
