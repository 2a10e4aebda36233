using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>
/// The container's image VOLUMEs and image mounts (Mount.image) as CRI mounts the daemon prepared
/// (<see cref="ContainerSpecInput.ImageMountSources"/>, <see cref="ContainerSpecInput.ImageVolumeMounts"/>). They join
/// the CRI mounts before <see cref="MountSpecOptions.ApplyMounts"/> orders them, so a deeper mount always lands on top.
/// </summary>
internal static class ImageMountSpecOptions
{
    /// <summary>Image mounts are read-only, and hold no set-uid, device or executable files (Kubernetes documents
    /// image volumes as ro and noexec).</summary>
    internal static readonly string[] ImageMountOptions = ["nosuid", "nodev", "noexec"];

    /// <summary>Whether a CRI mount names an image rather than a host path.</summary>
    public static bool IsImageMount(Mount mount) => mount.Image is { } image && (image.Image.Length > 0 || mount.HostPath.Length == 0);

    /// <summary>
    /// The container's CRI mounts with each image mount's source filled in (read-only), then the image volumes,
    /// which never replace a CRI mount of the same path (the daemon leaves those out already).
    /// </summary>
    public static List<Mount> CriAndImageMounts(ContainerSpecInput input)
    {
        var mounts = new List<Mount>(input.Config.Mounts.Count + input.ImageVolumeMounts.Count);
        for (int i = 0; i < input.Config.Mounts.Count; i++)
        {
            var mount = input.Config.Mounts[i];
            if (!IsImageMount(mount))
            {
                mounts.Add(mount);
                continue;
            }
            if (!input.ImageMountSources.TryGetValue(i, out var source))
                throw new InvalidOperationException($"config.mounts[{i}] names image '{mount.Image.Image}', which was not mounted before the spec was built");
            var resolved = mount.Clone();
            resolved.HostPath = source;
            resolved.Readonly = true;
            mounts.Add(resolved);
        }
        var destinations = mounts.Select(m => MountSpecOptions.CleanPath(m.ContainerPath)).ToHashSet(StringComparer.Ordinal);
        foreach (var volume in input.ImageVolumeMounts)
            if (!destinations.Contains(MountSpecOptions.CleanPath(volume.ContainerPath))) mounts.Add(volume);
        return mounts;
    }
}
