using System.Security.Cryptography;
using CriRuntime.Native;
using Xunit;

namespace CriRuntime.Tests.Native;

/// <summary>
/// Real cgroups on this host (v1, hybrid or v2), as root: the levels a cgroup parent's mkdir -p made are the ones
/// removed again, and none that existed before. Each test works below its own /criruntime-levels-&lt;random&gt;.
/// </summary>
public sealed class CgroupLevelsTests : IAsyncLifetime
{
    private readonly Cgroups cgroups = Cgroups.Detect();
    private readonly string root = "/criruntime-levels-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await cgroups.KillAllAndRemoveAsync(root, TimeSpan.FromSeconds(10), CancellationToken.None);

    [Fact]
    public void A_deep_parent_that_did_not_exist_is_removed_level_by_level_in_every_hierarchy()
    {
        string deep = root + string.Concat(Enumerable.Repeat("/d", 59));
        var before = cgroups.ExistingLevels(deep);
        Assert.Equal(cgroups.HierarchyMountPoints.Order(), before.Keys.Order());
        Assert.All(before.Values, levels => Assert.Equal(0, levels));

        cgroups.Create(deep);
        Assert.All(cgroups.HierarchyMountPoints, h => Assert.True(Directory.Exists(h + deep), h + deep));
        Assert.All(cgroups.ExistingLevels(deep).Values, levels => Assert.Equal(60, levels));

        Assert.Empty(cgroups.RemoveCreatedLevels(deep, before));
        Assert.All(cgroups.HierarchyMountPoints, h => Assert.False(Directory.Exists(h + root), $"{h + root} is left"));
        Assert.Empty(cgroups.RemoveCreatedLevels(deep, before));  // idempotent
    }

    [Fact]
    public void Levels_that_existed_before_stay_and_so_does_a_level_another_pod_still_uses()
    {
        // A kubelet-made parent: root/kubepods exists; the pod's parent below it does not.
        cgroups.Create(root + "/kubepods");
        string podParent = root + "/kubepods/burstable/pod-a";
        var before = cgroups.ExistingLevels(podParent);
        Assert.All(before.Values, levels => Assert.Equal(2, levels));
        cgroups.Create(podParent);

        // Another pod got a cgroup under the "burstable" level this pod's creation made.
        string otherPod = root + "/kubepods/burstable/pod-b";
        cgroups.Create(otherPod);

        var kept = cgroups.RemoveCreatedLevels(podParent, before);
        Assert.All(cgroups.HierarchyMountPoints, h =>
        {
            Assert.False(Directory.Exists(h + podParent), $"{h + podParent} is left");
            Assert.True(Directory.Exists(h + otherPod), $"{h + otherPod} (another pod's) was removed");
            Assert.True(Directory.Exists(h + root + "/kubepods"), "a level that existed before was removed");
        });
        Assert.Equal(cgroups.HierarchyMountPoints.Select(h => h + root + "/kubepods/burstable").Order(), kept.Order());
    }

    [Fact]
    public async Task Creating_under_a_level_another_pod_is_removing_walks_again_instead_of_failing()
    {
        // Two pods share a level neither found: each one's removal rmdirs it whenever it is empty, so the other's
        // mkdir -p can find its parent gone (ENOENT) half-way down.
        cgroups.Create(root);
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        int rounds = 0;
        void Churn(string pod)
        {
            string path = $"{root}/shared/{pod}";
            while (DateTime.UtcNow < until)
            {
                var before = cgroups.ExistingLevels(path);
                cgroups.Create(path);
                Assert.All(cgroups.HierarchyMountPoints, h => Assert.True(Directory.Exists(h + path), h + path));
                cgroups.RemoveCreatedLevels(path, before.ToDictionary(p => p.Key, p => Math.Min(p.Value, 1)));
                Interlocked.Increment(ref rounds);
            }
        }
        await Task.WhenAll(Task.Run(() => Churn("pod-a")), Task.Run(() => Churn("pod-b")));
        Assert.True(rounds > 10, $"only {rounds} rounds");
        Assert.All(cgroups.HierarchyMountPoints, h => Assert.False(Directory.Exists(h + root + "/shared"), $"{h + root}/shared is left"));
    }

    [Fact]
    public void A_hierarchy_the_record_does_not_know_is_left_alone()
    {
        string parent = root + "/x/y";
        cgroups.Create(parent);
        var known = new Dictionary<string, int> { [cgroups.HierarchyMountPoints[0]] = 1 };

        Assert.Empty(cgroups.RemoveCreatedLevels(parent, known));
        Assert.False(Directory.Exists(cgroups.HierarchyMountPoints[0] + root + "/x"));
        Assert.True(Directory.Exists(cgroups.HierarchyMountPoints[0] + root), "the level that existed was removed");
        Assert.All(cgroups.HierarchyMountPoints.Skip(1), h => Assert.True(Directory.Exists(h + parent), h + parent));
    }
}
