using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace CriRuntime.Tests.Layering;

/// <summary>
/// Core's folders must depend on each other one way (issue #12): the graph read from the sources' usings and
/// qualified names has no cycle, and the low folders know no manager. The test prints the graph it read,
/// which is the one docs/architecture.md draws.
/// </summary>
public sealed partial class CoreDependencyTests(ITestOutputHelper output)
{
    // Folders that must know no other Core folder.
    private static readonly string[] Leaves = ["Native", "Content", "Concurrency", "Events", "Memory"];

    // Folders whose users are above them: nothing below may reach them.
    private static readonly Dictionary<string, string[]> NotBelow = new()
    {
        ["Recovery"] = ["Containers", "Pods", "Images", "Lifecycle", "Oci", "Storage", "State", "Network"],
        ["Lifecycle"] = ["Containers", "Pods", "Images", "Oci", "Storage", "State", "Network", "Recovery"],
        ["Containers"] = ["Pods", "Images", "Oci", "Storage", "State", "Network", "Events", "Config"],
        ["Pods"] = ["Images", "Oci", "Storage", "State", "Network", "Events", "Config"],
    };

    [Fact]
    public void Cores_folders_form_an_acyclic_graph_with_managers_above_subsystems()
    {
        var graph = ReadGraph();
        output.WriteLine(string.Join('\n', graph.OrderBy(g => g.Key).Select(g => $"{g.Key} -> {string.Join(' ', g.Value.Order())}")));

        Assert.True(graph.Count >= 15, $"read only {graph.Count} folders: is the source tree where this test looks?");
        foreach (var leaf in Leaves)
            Assert.True(graph.GetValueOrDefault(leaf, []).Count == 0, $"{leaf}/ must not use other Core folders, but uses {string.Join(", ", graph[leaf])}");
        foreach (var (upper, lower) in NotBelow)
            foreach (var folder in lower)
                Assert.False(Reaches(graph, folder, upper), $"{folder}/ reaches {upper}/, which sits above it");

        var cycle = FindCycle(graph);
        Assert.True(cycle is null, $"dependency cycle between Core's folders: {string.Join(" -> ", cycle ?? [])}");
    }

    [Fact]
    public void The_cycle_finder_finds_a_cycle()
    {
        var graph = new Dictionary<string, HashSet<string>> { ["A"] = ["B"], ["B"] = ["C"], ["C"] = ["A"], ["D"] = [] };
        Assert.Equal(["A", "B", "C", "A"], FindCycle(graph));
        Assert.Null(FindCycle(new Dictionary<string, HashSet<string>> { ["A"] = ["B"], ["B"] = [] }));
    }

    private static Dictionary<string, HashSet<string>> ReadGraph()
    {
        string core = Path.Combine(RepoRoot(), "src", "CriRuntime.Core");
        var graph = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var dir in Directory.EnumerateDirectories(core))
        {
            string folder = Path.GetFileName(dir);
            if (folder is "bin" or "obj") continue;
            var uses = graph[folder] = new HashSet<string>(StringComparer.Ordinal);
            foreach (var file in Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories))
                foreach (Match m in CoreNamespace().Matches(File.ReadAllText(file)))
                    uses.Add(m.Groups[1].Value);
            uses.Remove(folder);
        }
        foreach (var uses in graph.Values) uses.IntersectWith(graph.Keys);
        return graph;
    }

    private static bool Reaches(Dictionary<string, HashSet<string>> graph, string from, string to)
    {
        var seen = new HashSet<string>();
        var stack = new Stack<string>([from]);
        while (stack.TryPop(out var node))
        {
            if (!seen.Add(node)) continue;
            foreach (var next in graph.GetValueOrDefault(node, []))
            {
                if (next == to) return true;
                stack.Push(next);
            }
        }
        return false;
    }

    private static List<string>? FindCycle(Dictionary<string, HashSet<string>> graph)
    {
        var state = new Dictionary<string, int>(); // 1 on the path, 2 done
        var path = new List<string>();
        List<string>? Visit(string node)
        {
            state[node] = 1;
            path.Add(node);
            foreach (var next in graph.GetValueOrDefault(node, []).Order())
            {
                if (state.GetValueOrDefault(next) == 1) return [.. path.Skip(path.IndexOf(next)), next];
                if (state.GetValueOrDefault(next) == 0 && Visit(next) is { } found) return found;
            }
            path.RemoveAt(path.Count - 1);
            state[node] = 2;
            return null;
        }
        foreach (var node in graph.Keys.Order())
            if (state.GetValueOrDefault(node) == 0 && Visit(node) is { } cycle) return cycle;
        return null;
    }

    private static string RepoRoot([CallerFilePath] string source = "")
    {
        for (var dir = Path.GetDirectoryName(source); dir is not null; dir = Path.GetDirectoryName(dir))
            if (File.Exists(Path.Combine(dir, "CriRuntime.sln"))) return dir;
        throw new InvalidOperationException($"no CriRuntime.sln above {source}");
    }

    // `using CriRuntime.X;`, `using A = CriRuntime.X.Y;` and qualified names such as `CriRuntime.X.Type` (not in comments).
    [GeneratedRegex(@"^(?!\s*//).*?\bCriRuntime\.([A-Z][A-Za-z]+)\b", RegexOptions.Multiline)]
    private static partial Regex CoreNamespace();
}
