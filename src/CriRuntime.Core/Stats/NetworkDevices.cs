using System.Globalization;

namespace CriRuntime.Stats;

/// <summary>One interface's counters from /proc/net/dev.</summary>
public sealed record NetworkDeviceCounters(string Name, ulong RxBytes, ulong RxErrors, ulong TxBytes, ulong TxErrors)
{
    public ulong RxPackets { get; init; }
    public ulong RxDropped { get; init; }
    public ulong TxPackets { get; init; }
    public ulong TxDropped { get; init; }
}

public static class NetworkDevices
{
    /// <summary>
    /// Parses /proc/&lt;pid&gt;/net/dev: two header lines, then "name: rx_bytes rx_packets rx_errs rx_drop rx_fifo
    /// rx_frame rx_compressed rx_multicast tx_bytes tx_packets tx_errs ...". Lines that do not fit are skipped.
    /// </summary>
    public static IReadOnlyList<NetworkDeviceCounters> Parse(string text)
    {
        var devices = new List<NetworkDeviceCounters>();
        foreach (string line in text.Split('\n'))
        {
            int colon = line.IndexOf(':');
            if (colon <= 0) continue;
            string name = line[..colon].Trim();
            var fields = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (name.Length == 0 || fields.Length < 11) continue;
            var numbers = new ulong[11];
            bool ok = true;
            for (int i = 0; i < numbers.Length && ok; i++)
                ok = ulong.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out numbers[i]);
            if (ok)
                devices.Add(new NetworkDeviceCounters(name, numbers[0], numbers[2], numbers[8], numbers[10])
                {
                    RxPackets = numbers[1], RxDropped = numbers[3], TxPackets = numbers[9],
                    TxDropped = fields.Length > 11 && ulong.TryParse(fields[11], NumberStyles.None, CultureInfo.InvariantCulture, out ulong drop) ? drop : 0,
                });
        }
        return devices;
    }
}
