namespace CriRuntime.Oci;

/// <summary>
/// ExecSync's output must fit one gRPC message: the kubelet (and this daemon) send and receive at most 16 MiB,
/// and a response over that is answered RESOURCE_EXHAUSTED with the output lost. The API says output over the
/// cap is dropped, so stdout and stderr together are cut to fit, with room left for the message's framing.
/// </summary>
public static class ExecOutputBudget
{
    /// <summary>The gRPC message size both ends use.</summary>
    public const int MaxMessageBytes = 16 * 1024 * 1024;

    /// <summary>Bytes of stdout and stderr together: the message less room for field tags, lengths and exit_code.</summary>
    public const int MaxOutputBytes = MaxMessageBytes - 1024;

    /// <summary>
    /// Cuts <paramref name="stdout"/> and <paramref name="stderr"/> to <see cref="MaxOutputBytes"/> together: each keeps
    /// up to half, and what one does not use the other may (a command that only writes stdout keeps all of the budget).
    /// </summary>
    public static (byte[] Stdout, byte[] Stderr, bool Truncated) Fit(byte[] stdout, byte[] stderr, int budget = MaxOutputBytes)
    {
        if ((long)stdout.Length + stderr.Length <= budget) return (stdout, stderr, false);
        int half = budget / 2;
        int keepErr = Math.Min(stderr.Length, Math.Max(half, budget - stdout.Length));
        int keepOut = Math.Min(stdout.Length, budget - keepErr);
        return (stdout.Length == keepOut ? stdout : stdout[..keepOut], stderr.Length == keepErr ? stderr : stderr[..keepErr], true);
    }
}
