using CriRuntime.Oci.Spec;

namespace CriRuntime.Tests.Oci;

/// <summary>A node's LSMs as a test wants them: neither AppArmor nor SELinux is enabled on the build machines.</summary>
internal sealed class FakeLsmHost : LsmHost
{
    public bool AppArmor { get; init; }
    public bool Selinux { get; init; }
    public HashSet<string> Loaded { get; } = [];
    public List<(string Name, string Text)> Loads { get; } = [];
    public List<(string Path, string Label)> Relabels { get; } = [];
    public List<string> IgnoredNotes { get; } = [];
    public AppArmorIncludes Includes { get; init; } = new(true, true, true);

    public override bool AppArmorEnabled => AppArmor;
    public override bool SelinuxEnabled => Selinux;
    public override AppArmorIncludes AppArmorIncludes => Includes;
    public override string DaemonAppArmorProfile => "unconfined";
    public override bool IsAppArmorProfileLoaded(string name) => Loaded.Contains(name);

    public override void LoadAppArmorProfile(string name, string profileText)
    {
        Loads.Add((name, profileText));
        Loaded.Add(name);
    }

    public override void Relabel(string path, string label) => Relabels.Add((path, label));
    public override void NoteSelinuxOptionsIgnored(string containerId) => IgnoredNotes.Add(containerId);
}
