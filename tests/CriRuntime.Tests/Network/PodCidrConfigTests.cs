using CriRuntime.Network.Cni;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace CriRuntime.Tests.Network;

/// <summary>UpdateRuntimeConfig's pod CIDR and the conf_template it renders, on a scratch directory.</summary>
public sealed class PodCidrConfigTests : IDisposable
{
    private readonly string dir = Path.Combine(Path.GetTempPath(), "criruntime-podcidr-" + Guid.NewGuid().ToString("N"));
    private string ConfDir => Path.Combine(dir, "net.d");
    private string TemplatePath => Path.Combine(dir, "template.conflist");

    public PodCidrConfigTests() => Directory.CreateDirectory(dir);

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private PodCidrConfig New(string? template) => new(ConfDir, template ?? "", NullLogger<PodCidrConfig>.Instance);

    [Fact]
    public async Task Template_is_rendered_with_the_first_cidr_and_rewritten_only_on_change()
    {
        File.WriteAllText(TemplatePath, """{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"{{.PodCIDR}}"}]]}}]}""");
        var config = New(TemplatePath);
        await config.UpdateAsync("10.244.7.0/24, fd00:7::/64", CancellationToken.None);
        string rendered = File.ReadAllText(config.RenderedPath);
        Assert.Contains("\"subnet\":\"10.244.7.0/24\"", rendered);
        Assert.Equal(["10.244.7.0/24", "fd00:7::/64"], config.PodCidrs);
        Assert.Equal(PodCidrConfig.RenderedFileName, Path.GetFileName(config.RenderedPath));

        var written = File.GetLastWriteTimeUtc(config.RenderedPath);
        File.SetLastWriteTimeUtc(config.RenderedPath, written.AddHours(-1));
        await config.UpdateAsync("10.244.7.0/24,fd00:7::/64", CancellationToken.None);
        Assert.Equal(written.AddHours(-1), File.GetLastWriteTimeUtc(config.RenderedPath)); // same content: left alone

        await config.UpdateAsync("10.244.8.0/24", CancellationToken.None);
        Assert.Contains("\"subnet\":\"10.244.8.0/24\"", File.ReadAllText(config.RenderedPath));
    }

    [Fact]
    public async Task Without_a_template_the_cidr_is_only_remembered_and_an_empty_one_changes_nothing()
    {
        var config = New(null);
        await config.UpdateAsync("", CancellationToken.None);
        Assert.Empty(config.PodCidrs);
        await config.UpdateAsync("10.1.2.0/24", CancellationToken.None);
        Assert.Equal(["10.1.2.0/24"], config.PodCidrs);
        Assert.False(Directory.Exists(ConfDir));
    }

    [Theory]
    [InlineData("10.1.2.0")]
    [InlineData("10.1.2.0/33")]
    [InlineData("banana")]
    [InlineData("10.1.2.0/24,nope")]
    public async Task A_malformed_cidr_is_refused_and_nothing_changes(string podCidr)
    {
        var config = New(null);
        var e = await Assert.ThrowsAsync<InvalidArgumentException>(() => config.UpdateAsync(podCidr, CancellationToken.None));
        Assert.Contains("not a CIDR", e.Message);
        Assert.Empty(config.PodCidrs);
    }

    [Theory]
    [InlineData("""{"subnet":"10.0.0.0/8"}""", "has no {{.PodCIDR}}")]
    [InlineData("""{"subnet":"{{.PodCIDR}}","routes":[{{range .Routes}}{{end}}]}""", "uses {{range .Routes}}")]
    public async Task An_unusable_template_is_a_failed_precondition_naming_it(string template, string problem)
    {
        File.WriteAllText(TemplatePath, template);
        var config = New(TemplatePath);
        var e = await Assert.ThrowsAsync<FailedPreconditionException>(() => config.UpdateAsync("10.1.2.0/24", CancellationToken.None));
        Assert.Contains(TemplatePath, e.Message);
        Assert.Contains(problem, e.Message);
        Assert.False(File.Exists(config.RenderedPath));
        Assert.Empty(config.PodCidrs);
    }

    [Fact]
    public async Task A_missing_template_is_a_failed_precondition()
    {
        var config = New(Path.Combine(dir, "missing.conflist"));
        var e = await Assert.ThrowsAsync<FailedPreconditionException>(() => config.UpdateAsync("10.1.2.0/24", CancellationToken.None));
        Assert.Contains("cannot be read", e.Message);
    }
}
