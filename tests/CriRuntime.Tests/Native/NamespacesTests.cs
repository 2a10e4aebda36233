using CriRuntime.Native;
using CriRuntime.Tests.Storage;
using Xunit;

namespace CriRuntime.Tests.Native;

/// <summary>Real namespaces, as root. TempDir detaches any pin left behind if a test fails midway.</summary>
public sealed class NamespacesTests : IDisposable
{
    private const NamespaceKinds All = NamespaceKinds.Network | NamespaceKinds.Ipc | NamespaceKinds.Uts;
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Fact]
    public async Task Creates_pinned_namespaces_distinct_from_the_host_with_the_hostname_set()
    {
        string dir = MakeDir("pod");
        var pinned = await Namespaces.CreatePinnedAsync(dir, All, "pod-host-1", CancellationToken.None);
        try
        {
            Assert.Equal(Path.Combine(dir, "net"), pinned.NetworkPath);
            Assert.Equal(Path.Combine(dir, "ipc"), pinned.IpcPath);
            Assert.Equal(Path.Combine(dir, "uts"), pinned.UtsPath);
            foreach (var path in pinned.Paths)
            {
                Assert.True(Namespaces.IsPinned(path), path);
                Assert.Equal("nsfs", Mounts.ReadMountInfo().Last(m => m.MountPoint == path).FsType);
            }
            Assert.NotEqual(Namespaces.Inode("/proc/self/ns/net"), Namespaces.Inode(pinned.NetworkPath!));
            Assert.NotEqual(Namespaces.Inode("/proc/self/ns/ipc"), Namespaces.Inode(pinned.IpcPath!));
            Assert.NotEqual(Namespaces.Inode("/proc/self/ns/uts"), Namespaces.Inode(pinned.UtsPath!));

            // UTS: the hostname lives in the new namespace only.
            string inside = await Namespaces.RunInNamespaceAsync(pinned.UtsPath!, NamespaceKinds.Uts, Namespaces.CurrentHostname, CancellationToken.None);
            Assert.Equal("pod-host-1", inside);
            Assert.NotEqual("pod-host-1", Namespaces.CurrentHostname());

            // Network: a thread that joined sees the pinned namespace, which holds only a loopback device.
            var (netInode, devices) = await Namespaces.RunInNetworkNamespaceAsync(pinned.NetworkPath!,
                () => (Namespaces.Inode("/proc/thread-self/ns/net"), NetDevices()), CancellationToken.None);
            Assert.Equal(Namespaces.Inode(pinned.NetworkPath!), netInode);
            Assert.Equal(["lo"], devices);

            // IPC: joining lands in the pinned namespace, not the host's.
            ulong ipcInode = await Namespaces.RunInNamespaceAsync(pinned.IpcPath!, NamespaceKinds.Ipc,
                () => Namespaces.Inode("/proc/thread-self/ns/ipc"), CancellationToken.None);
            Assert.Equal(Namespaces.Inode(pinned.IpcPath!), ipcInode);
            Assert.NotEqual(Namespaces.Inode("/proc/thread-self/ns/ipc"), ipcInode);
        }
        finally
        {
            foreach (var path in pinned.Paths) Namespaces.Unpin(path);
        }

        foreach (var path in pinned.Paths)
        {
            Assert.False(Namespaces.IsPinned(path));
            Assert.False(File.Exists(path));
            Namespaces.Unpin(path); // idempotent
        }
        Assert.DoesNotContain(Mounts.ReadMountInfo(), m => m.MountPoint.StartsWith(dir, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Network_only_pins_just_net()
    {
        string dir = MakeDir("netonly");
        var pinned = await Namespaces.CreatePinnedAsync(dir, NamespaceKinds.Network, null, CancellationToken.None);
        try
        {
            Assert.NotNull(pinned.NetworkPath);
            Assert.Null(pinned.IpcPath);
            Assert.Null(pinned.UtsPath);
            Assert.Equal(["net"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
        }
        finally
        {
            Namespaces.Unpin(pinned.NetworkPath!);
        }
        Assert.Empty(Directory.GetFileSystemEntries(dir));
    }

    [Fact]
    public async Task Missing_pin_directory_fails_and_leaves_nothing()
    {
        string dir = tmp["does-not-exist"];
        var e = await Assert.ThrowsAsync<NativeException>(() => Namespaces.CreatePinnedAsync(dir, All, "h", CancellationToken.None));
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Contains(dir, e.Message);
        Assert.False(Directory.Exists(dir));
        Assert.DoesNotContain(Mounts.ReadMountInfo(), m => m.MountPoint.StartsWith(tmp.Path, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Failure_after_the_first_pin_rolls_back_and_keeps_the_stale_file()
    {
        string dir = MakeDir("stale");
        string staleIpc = Path.Combine(dir, "ipc");
        File.WriteAllText(staleIpc, "not ours");

        var e = await Assert.ThrowsAsync<NativeException>(() => Namespaces.CreatePinnedAsync(dir, All, "h", CancellationToken.None));

        Assert.Equal(Errno.EEXIST, e.Errno);
        Assert.Contains("stale pin", e.Message);
        Assert.False(Namespaces.IsPinned(Path.Combine(dir, "net")));           // net was pinned first, then undone
        Assert.False(File.Exists(Path.Combine(dir, "net")));
        Assert.False(File.Exists(Path.Combine(dir, "uts")));
        Assert.Equal("not ours", File.ReadAllText(staleIpc));                    // never touch what we did not make
        Assert.DoesNotContain(Mounts.ReadMountInfo(), m => m.MountPoint.StartsWith(dir, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Read_only_pin_directory_fails_cleanly()
    {
        string dir = MakeDir("ro");
        Mounts.Mount(dir, dir, null, MountFlags.Bind);
        try
        {
            Mounts.Mount(null, dir, null, MountFlags.Bind | MountFlags.Remount | MountFlags.ReadOnly);
            var e = await Assert.ThrowsAsync<NativeException>(() => Namespaces.CreatePinnedAsync(dir, All, null, CancellationToken.None));
            Assert.Equal(Errno.EROFS, e.Errno);
            Assert.Empty(Directory.GetFileSystemEntries(dir));
        }
        finally
        {
            Mounts.Unmount(dir, UnmountFlags.Detach);
        }
    }

    [Theory]
    [InlineData("bad\nname")]
    [InlineData("has space")]
    [InlineData("-leading-dash")]
    [InlineData("")]
    public async Task Invalid_hostname_is_refused_before_anything_is_made(string hostname)
    {
        string dir = MakeDir("badhost");
        var e = await Assert.ThrowsAsync<InvalidArgumentException>(() => Namespaces.CreatePinnedAsync(dir, All, hostname, CancellationToken.None));
        Assert.Equal("hostname", e.ParamName);
        Assert.Empty(Directory.GetFileSystemEntries(dir));
    }

    [Fact]
    public async Task Hostname_without_a_uts_namespace_is_refused()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() =>
            Namespaces.CreatePinnedAsync(MakeDir("nouts"), NamespaceKinds.Network, "h", CancellationToken.None));
        Assert.Contains("UTS", e.Message);
    }

    [Fact]
    public async Task Twenty_pods_created_concurrently_get_their_own_namespaces()
    {
        var dirs = Enumerable.Range(0, 20).Select(i => MakeDir($"pod{i}")).ToList();
        var tasks = dirs.Select((d, i) => Namespaces.CreatePinnedAsync(d, All, $"pod-{i}", CancellationToken.None)).ToList();
        try
        {
            var pods = await Task.WhenAll(tasks);
            Assert.Equal(20, pods.Select(p => Namespaces.Inode(p.NetworkPath!)).Distinct().Count());
            Assert.Equal(20, pods.Select(p => Namespaces.Inode(p.IpcPath!)).Distinct().Count());
            var hostnames = await Task.WhenAll(pods.Select(p =>
                Namespaces.RunInNamespaceAsync(p.UtsPath!, NamespaceKinds.Uts, Namespaces.CurrentHostname, CancellationToken.None)));
            Assert.Equal(Enumerable.Range(0, 20).Select(i => $"pod-{i}"), hostnames);
        }
        finally
        {
            foreach (var t in tasks.Where(t => t.IsCompletedSuccessfully))
                foreach (var path in (await t).Paths) Namespaces.Unpin(path);
        }
        Assert.DoesNotContain(Mounts.ReadMountInfo(), m => m.MountPoint.StartsWith(tmp.Path, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Joining_a_namespace_of_the_wrong_kind_fails_and_action_errors_propagate()
    {
        string dir = MakeDir("kinds");
        var pinned = await Namespaces.CreatePinnedAsync(dir, NamespaceKinds.Network | NamespaceKinds.Uts, "k", CancellationToken.None);
        try
        {
            var wrong = await Assert.ThrowsAsync<NativeException>(() =>
                Namespaces.RunInNetworkNamespaceAsync(pinned.UtsPath!, () => 0, CancellationToken.None));
            Assert.Equal(Errno.EINVAL, wrong.Errno);
            Assert.Equal("setns", wrong.Call);

            await Assert.ThrowsAsync<InvalidDataException>(() =>
                Namespaces.RunInNetworkNamespaceAsync<int>(pinned.NetworkPath!, () => throw new InvalidDataException("from inside"), CancellationToken.None));

            await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
                Namespaces.RunInNetworkNamespaceAsync(pinned.NetworkPath!, () => 0, new CancellationToken(canceled: true)));
        }
        finally
        {
            foreach (var path in pinned.Paths) Namespaces.Unpin(path);
        }
    }

    [Fact]
    public async Task No_thread_of_this_process_is_left_in_a_pod_namespace()
    {
        // Threads are cloned with their creator's namespaces; a pool worker spawned from a namespaced
        // thread would run daemon work inside the pod. Hammer create/join, then look at every thread.
        string dir = MakeDir("leak");
        var pinned = await Namespaces.CreatePinnedAsync(dir, All, "leak-check", CancellationToken.None);
        try
        {
            ulong podNet = Namespaces.Inode(pinned.NetworkPath!), podUts = Namespaces.Inode(pinned.UtsPath!);
            for (int round = 0; round < 5; round++)
            {
                await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(async () =>
                {
                    await Namespaces.RunInNetworkNamespaceAsync(pinned.NetworkPath!, () => 0, CancellationToken.None);
                    await Namespaces.RunInNamespaceAsync(pinned.UtsPath!, NamespaceKinds.Uts, () => 0, CancellationToken.None);
                    Assert.NotEqual(podNet, Namespaces.Inode("/proc/thread-self/ns/net"));  // the continuation's thread
                    Assert.NotEqual("leak-check", Namespaces.CurrentHostname());
                })));
            }

            // Joined threads may take a moment to vanish from /proc; any thread still in the pod's
            // namespaces after that is a leak.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            List<string> inPod;
            while ((inPod = ThreadsIn(podNet, podUts)).Count > 0 && DateTime.UtcNow < deadline) await Task.Delay(20);
            Assert.Empty(inPod);
        }
        finally
        {
            foreach (var path in pinned.Paths) Namespaces.Unpin(path);
        }
    }

    private static List<string> ThreadsIn(ulong net, ulong uts)
    {
        var result = new List<string>();
        foreach (var task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                if (Namespaces.Inode(task + "/ns/net") == net || Namespaces.Inode(task + "/ns/uts") == uts) result.Add(Path.GetFileName(task));
            }
            catch (NativeException) { /* exited meanwhile */ }
        }
        return result;
    }

    [Fact]
    public void IsPinned_is_false_for_plain_files_symlinks_and_missing_paths()
    {
        string file = tmp["plain"];
        File.WriteAllText(file, "");
        Assert.False(Namespaces.IsPinned(file));
        Assert.False(Namespaces.IsPinned(tmp["missing"]));
        Assert.False(Namespaces.IsPinned("/proc/self/ns/net"));   // a magic link, not a pin
        Namespaces.Unpin(file);                                    // a half-made pin file is removed
        Assert.False(File.Exists(file));
    }

    private string MakeDir(string name)
    {
        string dir = tmp[name];
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Interface names of the calling thread's network namespace (/proc/thread-self/net/dev follows setns).</summary>
    private static List<string> NetDevices() =>
        File.ReadAllLines("/proc/thread-self/net/dev").Skip(2).Select(l => l.Split(':')[0].Trim()).Order().ToList();
}
