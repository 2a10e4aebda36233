using CriRuntime.Native;
using CriRuntime.Security;
using CriRuntime.Storage;
using CriRuntime.Tests.Storage;
using Xunit;

namespace CriRuntime.Tests.Security;

/// <summary>Start-up narrowing of a root and state left open by an older daemon (issue #11, item 1).</summary>
public sealed class StateTreeModesTests : IDisposable
{
    private const int Open = 0x1ED; // 0755
    private const int OpenFile = 0x1A4; // 0644
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    private string Dir(string relative, int mode = Open)
    {
        string path = tmp[relative];
        Directory.CreateDirectory(path);
        Files.Chmod(path, mode);
        return path;
    }

    private string FileAt(string relative, int mode = OpenFile)
    {
        string path = tmp[relative];
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "x");
        Files.Chmod(path, mode);
        return path;
    }

    private static int Mode(string path) => Files.Lstat(path).Permissions;

    [Fact]
    public void A_loose_tree_is_narrowed_to_private_modes_and_what_containers_see_keeps_its_mode()
    {
        string root = Dir("root"), state = Dir("state");
        string imagesJson = FileAt("root/images/images.json");
        string layer = Dir("root/overlay/abc123");
        string layerRoot = Dir("root/overlay/abc123/diff");
        string layerFile = FileAt("root/overlay/abc123/diff/etc/passwd");
        string blob = FileAt("root/blobs/sha256/0123");
        string writable = Dir("root/containers/c1");
        string upper = Dir("root/containers/c1/upper");
        string record = FileAt("root/containers/records/c1.json");
        string quarantined = FileAt("root/containers/records/quarantine/c0.json.20260101T000000Z");
        string podRecord = FileAt("root/pods/p1.json");
        string cni = FileAt("root/cni/results/p1.json");
        string setuidDir = Dir("root/containers/c2", 0xFED); // 07755: set-id and sticky bits go too
        string bundle = Dir("state/containers/c1");
        string config = FileAt("state/containers/c1/config.json");
        string rootfs = Dir("state/containers/c1/rootfs");
        string exit = FileAt("state/exits/c1");
        string podDir = Dir("state/pods/p1");
        string hosts = FileAt("state/pods/p1/hosts");
        string runcRoot = Dir("state/runtime/runc");
        // A symlink is neither narrowed nor followed: its target stays as it is.
        string outside = FileAt("outside/target");
        File.CreateSymbolicLink(tmp["root/containers/records/link.json"], outside);

        var changed = StateTreeModes.Tighten(root, state, out var skipped);

        Assert.Empty(skipped);
        Assert.Equal(0x1C0, Mode(root));   // 0700
        Assert.Equal(0x1C9, Mode(state));  // 0711: the socket's group passes through
        foreach (string dir in new[] { tmp["root/images"], tmp["root/overlay"], layer, tmp["root/blobs"], tmp["root/blobs/sha256"],
                     tmp["root/containers"], writable, setuidDir, tmp["root/containers/records"], tmp["root/containers/records/quarantine"],
                     tmp["root/pods"], tmp["root/cni"], tmp["root/cni/results"], tmp["state/containers"], bundle, tmp["state/exits"],
                     tmp["state/pods"], podDir, tmp["state/runtime"], runcRoot })
            Assert.True(Mode(dir) == 0x1C0, $"{dir} is {Convert.ToString(Mode(dir), 8)}, not 700");
        foreach (string file in new[] { imagesJson, blob, record, quarantined, podRecord, cni, config, exit })
            Assert.True(Mode(file) == 0x180, $"{file} is {Convert.ToString(Mode(file), 8)}, not 600");

        // What containers see: a layer's "/" and files, the container's "/" (upper), its rootfs mount point, the pod's
        // bind-mounted files.
        Assert.Equal(Open, Mode(layerRoot));
        Assert.Equal(OpenFile, Mode(layerFile));
        Assert.Equal(Open, Mode(upper));
        Assert.Equal(Open, Mode(rootfs));
        Assert.Equal(OpenFile, Mode(hosts));
        Assert.Equal(OpenFile, Mode(outside));

        Assert.Contains(changed, n => n.Path == config && n.OldMode == OpenFile && n.NewMode == 0x180);
        Assert.Contains(changed, n => n.Path == setuidDir && n.OldMode == 0xFED && n.NewMode == 0x1C0);
        Assert.DoesNotContain(changed, n => n.Path.StartsWith(layerRoot, StringComparison.Ordinal) || n.Path == upper || n.Path == hosts);

        // Once narrowed, nothing is left to do.
        Assert.Empty(StateTreeModes.Tighten(root, state, out _));
    }

    [Fact]
    public void Tighter_modes_are_kept_and_missing_directories_are_fine()
    {
        string root = Dir("root2", 0x140); // 0500
        string state = Dir("state2", 0x1C0); // 0700: tighter than 0711 is left alone
        var changed = StateTreeModes.Tighten(root, state, out _);
        Assert.Empty(changed);
        Assert.Equal(0x140, Mode(root));
        Assert.Equal(0x1C0, Mode(state));
    }

    [Fact]
    public void A_new_tree_is_created_with_exact_modes_whatever_the_umask()
    {
        string deep = tmp["made/a/b"];
        FileModes.CreateDirectory(deep, FileModes.PublicDirectory);
        // Every level made, not only the last: a container user must pass through a created volume's parents.
        foreach (string level in new[] { tmp["made"], tmp["made/a"], deep }) Assert.Equal(Open, Mode(level));
        // Exact even where the umask would narrow mkdir's mode (this process's umask takes at least o+w from 0777).
        string wide = tmp["wide/x/y"];
        FileModes.CreateDirectory(wide, (UnixFileMode)0x1FF);
        foreach (string level in new[] { tmp["wide"], tmp["wide/x"], wide }) Assert.Equal(0x1FF, Mode(level));
        // An existing directory keeps its mode (start-up narrows; some directories are not ours).
        Files.Chmod(deep, 0x1FF);
        FileModes.CreateDirectory(deep, FileModes.PrivateDirectory);
        Assert.Equal(0x1FF, Mode(deep));
    }

    [Fact]
    public async Task Atomic_files_are_0600_unless_a_caller_asks_otherwise()
    {
        Dir("files");
        string secret = tmp["files/record.json"], shared = tmp["files/hosts"], asyncSecret = tmp["files/async.json"];
        AtomicFile.WriteAllBytes(secret, "{}"u8);
        AtomicFile.WriteAllBytes(shared, "127.0.0.1 localhost\n"u8, FileModes.PublicFile);
        await AtomicFile.WriteAllBytesAsync(asyncSecret, new byte[] { 1 }, CancellationToken.None);
        Assert.Equal(0x180, Mode(secret));
        Assert.Equal(OpenFile, Mode(shared));
        Assert.Equal(0x180, Mode(asyncSecret));
        // Replacing keeps the mode asked for, not the old file's.
        AtomicFile.WriteAllBytes(shared, "x"u8);
        Assert.Equal(0x180, Mode(shared));
    }

    [Fact]
    public async Task Children_start_with_umask_022()
    {
        // The daemon under umask 077 is the integration test's (SecureDefaultsTests); this checks the spawn path itself.
        Dir("spawn");
        string output = tmp["spawn/umask"];
        int pid = Spawn.Start(new SpawnRequest
        {
            Path = "/bin/sh", Args = ["sh", "-c", "umask > \"$0\"", output], Environment = ["PATH=/usr/bin:/bin"],
        });
        Assert.Equal(0, Spawn.ExitCode(await Spawn.WaitForExitAsync(pid, CancellationToken.None)));
        Assert.Equal("0022", File.ReadAllText(output).Trim());
    }
}
