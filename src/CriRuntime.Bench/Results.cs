using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CriRuntime.Bench;

/// <summary>The issue's goal for a figure: the first runtime over the second must be at most (or at least) Ratio.</summary>
public sealed record Goal(double Ratio, bool AtMost)
{
    public bool Met(double ratio) => AtMost ? ratio <= Ratio : ratio >= Ratio;
    public override string ToString() => (AtMost ? "≤ " : "≥ ") + Ratio.ToString("0.0#", CultureInfo.InvariantCulture) + "×";
}

/// <summary>One row of the table: a figure per runtime, the samples behind it, and the goal if the issue sets one.</summary>
public sealed class Metric(string key, string title, string unit, Goal? goal = null)
{
    public string Key { get; } = key;
    public string Title { get; } = title;
    public string Unit { get; } = unit;
    public Goal? Goal { get; } = goal;
    public Dictionary<string, double> Values { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, IReadOnlyList<double>> Samples { get; } = new(StringComparer.Ordinal);
}

/// <summary>Everything one invocation measured; printed as a table and written as JSON.</summary>
public sealed class Results(IReadOnlyList<string> names)
{
    private readonly List<Metric> metrics = [];

    public IReadOnlyList<string> Names { get; } = names;
    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;
    public JsonObject Info { get; } = new();
    public JsonObject Floor { get; } = new();

    /// <summary>The metric <paramref name="key"/>, made on first use.</summary>
    public Metric Get(string key, string title, string unit, Goal? goal = null)
    {
        var m = metrics.Find(x => x.Key == key);
        if (m is null)
        {
            m = new Metric(key, title, unit, goal);
            metrics.Add(m);
        }
        return m;
    }

    public void Set(string key, string title, string unit, string name, double value, IReadOnlyList<double>? samples = null, Goal? goal = null)
    {
        var m = Get(key, title, unit, goal);
        m.Values[name] = value;
        if (samples is not null) m.Samples[name] = samples;
    }

    private double? Ratio(Metric m) =>
        Names.Count >= 2 && m.Values.TryGetValue(Names[0], out double a) && m.Values.TryGetValue(Names[1], out double b) && b != 0
            ? a / b : null;

    public string Table()
    {
        var header = new List<string> { "figure", "unit" };
        header.AddRange(Names);
        bool ratios = Names.Count >= 2;
        if (ratios) header.AddRange([$"{Names[0]}/{Names[1]}", "target", "met"]);
        var rows = new List<List<string>> { header };
        foreach (var m in metrics)
        {
            var row = new List<string> { m.Title, m.Unit };
            foreach (var n in Names) row.Add(m.Values.TryGetValue(n, out double v) ? Format(v) : "-");
            if (ratios)
            {
                double? r = Ratio(m);
                row.Add(r is { } x ? x.ToString("0.00", CultureInfo.InvariantCulture) : "-");
                row.Add(m.Goal?.ToString() ?? "");
                row.Add(m.Goal is null || r is null ? "" : m.Goal.Met(r.Value) ? "yes" : "NO");
            }
            rows.Add(row);
        }
        var widths = Enumerable.Range(0, header.Count).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var sb = new StringBuilder();
        for (int r = 0; r < rows.Count; r++)
        {
            sb.Append("| ");
            for (int c = 0; c < header.Count; c++)
            {
                // Text left, numbers right, as a markdown table that also reads on a terminal.
                string cell = rows[r][c];
                sb.Append(c < 2 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c])).Append(" | ");
            }
            sb.Length--;
            sb.AppendLine();
            if (r == 0)
            {
                sb.Append('|');
                for (int c = 0; c < header.Count; c++) sb.Append(c < 2 ? " :" : " ").Append('-', widths[c] - 1).Append(c < 2 ? " |" : ": |");
                sb.AppendLine();
            }
        }
        if (Floor.Count > 0)
            sb.AppendLine($"floor (no daemon): runc run -d of a prepared busybox bundle: median {Format(Floor["medianMs"]!.GetValue<double>())} ms, " +
                          $"p90 {Format(Floor["p90Ms"]!.GetValue<double>())} ms over {Floor["runs"]} runs");
        return sb.ToString();
    }

    private static string Format(double v) => Math.Abs(v) switch
    {
        >= 100 => v.ToString("0", CultureInfo.InvariantCulture),
        >= 10 => v.ToString("0.0", CultureInfo.InvariantCulture),
        _ => v.ToString("0.00", CultureInfo.InvariantCulture),
    };

    public JsonObject ToJson()
    {
        var list = new JsonArray();
        foreach (var m in metrics)
        {
            var values = new JsonObject();
            foreach (var (n, v) in m.Values) values[n] = Math.Round(v, 3);
            var samples = new JsonObject();
            foreach (var (n, s) in m.Samples) samples[n] = new JsonArray(s.Select(x => (JsonNode)Math.Round(x, 3)).ToArray());
            var o = new JsonObject
            {
                ["key"] = m.Key,
                ["title"] = m.Title,
                ["unit"] = m.Unit,
                ["values"] = values,
                ["samples"] = samples,
            };
            if (Ratio(m) is { } r)
            {
                o["ratio"] = Math.Round(r, 3);
                if (m.Goal is not null)
                {
                    o["target"] = m.Goal.ToString();
                    o["met"] = m.Goal.Met(r);
                }
            }
            list.Add(o);
        }
        return new JsonObject
        {
            ["started"] = Started.ToString("O"),
            ["finished"] = DateTimeOffset.UtcNow.ToString("O"),
            ["runtimes"] = new JsonArray(Names.Select(n => (JsonNode)n).ToArray()),
            ["ratio"] = Names.Count >= 2 ? $"{Names[0]}/{Names[1]}" : null,
            ["info"] = Info.DeepClone(),
            ["metrics"] = list,
            ["floor"] = Floor.DeepClone(),
        };
    }

    public async Task WriteJsonAsync(string path, CancellationToken ct)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        string tmp = path + ".tmp";
        await File.WriteAllTextAsync(tmp, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }), ct);
        File.Move(tmp, path, overwrite: true);
    }
}
