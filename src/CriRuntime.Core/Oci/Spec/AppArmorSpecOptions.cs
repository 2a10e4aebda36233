using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>
/// process.apparmorProfile, as containerd's CRI plugin chooses it. On a host with AppArmor: RuntimeDefault, and no
/// profile at all on a non-privileged container, mean <see cref="AppArmorProfile.DefaultProfileName"/> (generated and
/// loaded the first time it is needed); Localhost names a profile that must already be loaded; Unconfined sets none.
/// On a host without AppArmor, asking for any profile but Unconfined fails, as containerd's "apparmor is not supported",
/// rather than running the container unconfined without a word.
/// </summary>
internal static class AppArmorSpecOptions
{
    private const string RuntimeDefaultName = "runtime/default", UnconfinedName = "unconfined", LocalhostPrefix = "localhost/";

    // One load of the default profile at a time; it is loaded once, when absent.
    private static readonly Lock DefaultProfileLoad = new();

    public static void WithAppArmor(RuntimeSpec spec, ContainerSpecInput input)
    {
        var security = input.SecurityContext();
        var requested = Requested(security, input.Id);
        var host = input.Lsm ?? LsmHost.System;
        if (!host.AppArmorEnabled)
        {
            if (requested is not null && requested.ProfileType != SecurityProfile.Types.ProfileType.Unconfined)
                throw new FailedPreconditionException(
                    $"apparmor is not supported: container {input.Id} asks for AppArmor profile {Describe(requested)} but this host has no AppArmor enabled (/sys/module/apparmor/parameters/enabled); ask for Unconfined or none");
            return;
        }
        switch (requested?.ProfileType)
        {
            case null when security.Privileged:
            case SecurityProfile.Types.ProfileType.Unconfined:
                return;
            case null:
            case SecurityProfile.Types.ProfileType.RuntimeDefault:
                EnsureDefaultProfile(host);
                spec.Process!.ApparmorProfile = AppArmorProfile.DefaultProfileName;
                return;
            case SecurityProfile.Types.ProfileType.Localhost:
                string name = requested.LocalhostRef.StartsWith(LocalhostPrefix, StringComparison.Ordinal)
                    ? requested.LocalhostRef[LocalhostPrefix.Length..] : requested.LocalhostRef;
                if (name.Length == 0)
                    throw new InvalidArgumentException($"container {input.Id} asks for a Localhost AppArmor profile without naming it: set localhost_ref");
                if (!host.IsAppArmorProfileLoaded(name))
                    throw new FailedPreconditionException(
                        $"AppArmor profile {Echo.Of(name)} for container {input.Id} is not loaded on this host: load it first (apparmor_parser -r FILE); /sys/kernel/security/apparmor/profiles lists the loaded ones");
                spec.Process!.ApparmorProfile = name;
                return;
            default:
                throw new InvalidArgumentException($"container {input.Id} asks for unknown AppArmor profile type {requested.ProfileType}");
        }
    }

    /// <summary>The structured field, else the deprecated string ("runtime/default", "unconfined", "localhost/NAME"), else null.</summary>
    internal static SecurityProfile? Requested(LinuxContainerSecurityContext security, string containerId)
    {
        if (security.Apparmor is { } profile) return profile;
#pragma warning disable CS0612 // older kubelets and crictl configs still send the string
        string legacy = security.ApparmorProfile;
#pragma warning restore CS0612
        return legacy switch
        {
            "" => null,
            RuntimeDefaultName => new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.RuntimeDefault },
            UnconfinedName => new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Unconfined },
            _ when legacy.StartsWith(LocalhostPrefix, StringComparison.Ordinal) =>
                new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Localhost, LocalhostRef = legacy[LocalhostPrefix.Length..] },
            _ => throw new InvalidArgumentException(
                $"container {containerId} has apparmor_profile {Echo.Of(legacy)}: expected \"runtime/default\", \"unconfined\" or \"localhost/NAME\""),
        };
    }

    private static void EnsureDefaultProfile(LsmHost host)
    {
        lock (DefaultProfileLoad)
        {
            if (host.IsAppArmorProfileLoaded(AppArmorProfile.DefaultProfileName)) return;
            host.LoadAppArmorProfile(AppArmorProfile.DefaultProfileName,
                AppArmorProfile.Generate(AppArmorProfile.DefaultProfileName, host.AppArmorIncludes, host.DaemonAppArmorProfile));
        }
    }

    private static string Describe(SecurityProfile p) =>
        p.ProfileType == SecurityProfile.Types.ProfileType.Localhost ? $"Localhost {Echo.Of(p.LocalhostRef)}" : p.ProfileType.ToString();
}
