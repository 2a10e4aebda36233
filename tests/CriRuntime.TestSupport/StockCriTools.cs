namespace CriRuntime.TestSupport;

/// <summary>Stock crictl and critest v1.26.1 (grpc-go clients), put in _output/critools by hack/install-critools.sh.</summary>
public static class StockCriTools
{
    /// <summary>_output/critools/crictl of this checkout; throws (so a test fails, never skips) when it is missing.</summary>
    public static string Crictl => Locate("crictl");

    private static string Locate(string tool)
    {
        string path = Path.Combine(DaemonProcess.RepoRoot, "_output", "critools", tool);
        if (!File.Exists(path))
            throw new InvalidOperationException($"{path} is missing: run hack/install-critools.sh (stock {tool} v1.26.1; " +
                "CRITOOLS_DIR=DIR picks an unpacked copy) before these tests");
        return path;
    }
}
