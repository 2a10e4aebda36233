using System.Diagnostics;
using System.Text.Json.Nodes;
using CriRuntime.Network.Cni;
using Xunit;

namespace CriRuntime.Tests.Network;

public sealed class CniStatusTests : IDisposable
{
    private readonly CniTestEnvironment env = new();

    public void Dispose() => env.Dispose();

    [Fact]
    public async Task Status_follows_the_conf_dir_missing_then_valid_then_invalid_then_passing_over_a_bad_file()
    {
        Directory.Delete(env.ConfDir);
        using var cni = env.Manager();

        var status = cni.Status;
        Assert.False(status.Ready);
        Assert.Equal(CniStatus.NotReadyReason, status.Reason);
        Assert.Contains($"{env.ConfDir} does not exist", status.Message);
        Assert.Null(status.NetworkName);

        Directory.CreateDirectory(env.ConfDir);
        Assert.Contains("no CNI network config", (await WaitForAsync(cni, s => s.Message?.Contains("no CNI network config") == true)).Message);

        string good = env.WriteConfList("20-good.conflist", "1.0.0", env.BridgePlugin());
        status = await WaitForAsync(cni, s => s.Ready);
        Assert.Equal(env.NetworkName, status.NetworkName);
        Assert.Equal(good, status.ConfigFile);
        Assert.Null(status.Reason);
        Assert.Null(status.Message);

        File.Delete(good);
        File.WriteAllText(Path.Combine(env.ConfDir, "30-broken.conflist"), "{\"cniVersion\": \"1.0.0\", \"name\": ");
        status = await WaitForAsync(cni, s => !s.Ready && s.Message?.Contains("30-broken.conflist") == true);
        Assert.Equal(CniStatus.NotReadyReason, status.Reason);
        Assert.Contains("invalid JSON", status.Message);

        // The lexically first usable file wins; unusable ones before it are passed over.
        good = env.WriteConfList("40-good.conflist", "1.0.0", env.BridgePlugin());
        status = await WaitForAsync(cni, s => s.Ready);
        Assert.Equal(good, status.ConfigFile);
    }

    [Fact]
    public void A_single_plugin_conf_is_used_as_a_one_plugin_list_and_conflist_sorts_by_file_name()
    {
        var single = env.BridgePlugin();
        single["cniVersion"] = "0.4.0";
        single["name"] = "single";
        File.WriteAllText(Path.Combine(env.ConfDir, "05-single.conf"), single.ToJsonString());
        env.WriteConfList("10-list.conflist", "1.0.0", env.BridgePlugin());
        using var cni = env.Manager();

        var status = cni.Status;
        Assert.True(status.Ready);
        Assert.Equal("single", status.NetworkName);
        Assert.EndsWith("05-single.conf", status.ConfigFile);
    }

    [Theory]
    [InlineData("""{"cniVersion":"0.2.0","name":"n","type":"bridge"}""", "cniVersion \"0.2.0\" is not supported")]
    [InlineData("""{"cniVersion":"1.0.0","name":"n","plugins":[]}""", "\"plugins\" is missing or empty")]
    [InlineData("""{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}""", "no \"name\"")]
    [InlineData("""{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../../bin/sh"}]}""", "invalid type")]
    [InlineData("""[1, 2]""", "not a JSON object")]
    public void An_unusable_file_is_reported_with_its_problem(string json, string problem)
    {
        File.WriteAllText(Path.Combine(env.ConfDir, "10-bad.json"), json);
        using var cni = env.Manager();

        var status = cni.Status;
        Assert.False(status.Ready);
        Assert.Contains("10-bad.json", status.Message);
        Assert.Contains(problem, status.Message);
    }

    private static async Task<CniStatus> WaitForAsync(CniManager cni, Func<CniStatus, bool> condition)
    {
        // The watcher makes this immediate; the periodic re-check bounds it at a few seconds.
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var status = cni.Status;
            if (condition(status)) return status;
            if (clock.Elapsed > TimeSpan.FromSeconds(8)) Assert.Fail($"status did not change as expected within 8s; last: {status}");
            await Task.Delay(50);
        }
    }
}
