using CriRuntime.Native;
using System.Net;
using System.Text;
using CriRuntime.Storage;
using Microsoft.Extensions.Logging;

namespace CriRuntime.Network.Cni;

/// <summary>
/// The node's pod CIDR as the kubelet hands it out through UpdateRuntimeConfig. With <c>[cni] conf_template</c>
/// set, the template is rendered with it into the CNI config dir (as containerd's conf_template does), and the
/// CNI manager picks the new network up like any other config change.
/// </summary>
public sealed class PodCidrConfig(string confDir, string templatePath, ILogger<PodCidrConfig> logger)
{
    public const string Placeholder = "{{.PodCIDR}}";
    public const string RenderedFileName = "10-criruntime-template.conflist";

    private readonly SemaphoreSlim gate = new(1, 1);

    /// <summary>The pod CIDRs last given, in order; empty until the kubelet sends some.</summary>
    public IReadOnlyList<string> PodCidrs { get; private set; } = [];

    public string RenderedPath => Path.Combine(confDir, RenderedFileName);

    /// <summary>
    /// Takes a comma-separated list of CIDRs ("" changes nothing). Throws ArgumentException for a malformed
    /// CIDR and FailedPreconditionException when the configured template cannot be used.
    /// </summary>
    public async Task UpdateAsync(string podCidr, CancellationToken cancellationToken)
    {
        var cidrs = Parse(podCidr);
        if (cidrs.Count == 0) return;
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (templatePath.Length == 0)
            {
                if (!cidrs.SequenceEqual(PodCidrs))
                    logger.LogInformation("Pod CIDR {PodCidr}; no [cni] conf_template is set, so the CNI config in {ConfDir} is left as it is",
                        string.Join(",", cidrs), confDir);
                PodCidrs = cidrs;
                return;
            }

            string template;
            try { template = await File.ReadAllTextAsync(templatePath, cancellationToken).ConfigureAwait(false); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new FailedPreconditionException($"[cni] conf_template {templatePath} cannot be read: {e.Message}; fix the file or the key and the kubelet will retry");
            }
            string rendered = Render(template, cidrs, templatePath);
            byte[] bytes = Encoding.UTF8.GetBytes(rendered);
            byte[]? current = File.Exists(RenderedPath) ? await File.ReadAllBytesAsync(RenderedPath, cancellationToken).ConfigureAwait(false) : null;
            if (current is null || !current.AsSpan().SequenceEqual(bytes))
            {
                FileModes.CreateDirectory(confDir, FileModes.PublicDirectory);
                // A CNI network config is no secret and other node agents read it: 0644, as containerd writes it.
                await AtomicFile.WriteAllBytesAsync(RenderedPath, bytes, FileModes.PublicFile, cancellationToken).ConfigureAwait(false);
                logger.LogInformation("Wrote {Path} from {Template} for pod CIDR {PodCidr}", RenderedPath, templatePath, string.Join(",", cidrs));
            }
            PodCidrs = cidrs;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>The CIDRs of a kubelet pod_cidr value ("10.244.1.0/24" or a dual-stack "10.244.1.0/24,fd00:1::/64").</summary>
    public static IReadOnlyList<string> Parse(string podCidr)
    {
        var cidrs = new List<string>();
        foreach (string part in podCidr.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!IPNetwork.TryParse(part, out var network))
                throw new InvalidArgumentException($"pod_cidr '{part}' is not a CIDR such as 10.244.1.0/24 (or a comma-separated list of them)");
            cidrs.Add(network.ToString());
        }
        return cidrs;
    }

    /// <summary>
    /// Replaces every {{.PodCIDR}} with the first CIDR. Any other {{...}} is refused: containerd's Go template
    /// constructs (range over PodCIDRRanges, Routes) are not supported here, and writing them out verbatim
    /// would give the CNI plugins a config they cannot read.
    /// </summary>
    public static string Render(string template, IReadOnlyList<string> cidrs, string templatePath)
    {
        if (!template.Contains(Placeholder, StringComparison.Ordinal))
            throw new FailedPreconditionException($"[cni] conf_template {templatePath} has no {Placeholder}; put it where the pod subnet goes");
        string rendered = template.Replace(Placeholder, cidrs[0], StringComparison.Ordinal);
        int other = rendered.IndexOf("{{", StringComparison.Ordinal);
        if (other >= 0)
        {
            int end = rendered.IndexOf("}}", other, StringComparison.Ordinal);
            string construct = end > other ? rendered[other..(end + 2)] : rendered[other..];
            throw new FailedPreconditionException($"[cni] conf_template {templatePath} uses {construct}; only {Placeholder} is supported");
        }
        return rendered;
    }
}
