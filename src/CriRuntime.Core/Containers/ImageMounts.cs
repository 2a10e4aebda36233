using CriRuntime.Content;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Storage;
using Runtime.V1;

namespace CriRuntime.Containers;

/// <summary>One image a container mounts (CRI Mount.image, the ImageVolume feature), as its record keeps it.</summary>
public sealed record ImageMountRecord
{
    /// <summary>Index of the mount in ContainerConfig.mounts.</summary>
    public required int MountIndex { get; init; }

    /// <summary>The image id (config digest): while the container exists, RemoveImage refuses this image.</summary>
    public required string ImageId { get; init; }

    /// <summary>Chain ids of its layers, bottom first: garbage collection spares them even if the image record goes.</summary>
    public required IReadOnlyList<string> LayerChainIds { get; init; }

    /// <summary>Where the image's read-only overlay is mounted on the node (under the container's bundle).</summary>
    public required string MountPoint { get; init; }
}

/// <summary>
/// Image mounts: each CRI mount naming an image gets the image's layers as a read-only overlay (lowerdirs only; a
/// one-layer image is a read-only bind of its layer) under the container's bundle, and the container a read-only
/// bind of it, or of its image_sub_path, which must exist and is resolved inside the image (symlinks included) so
/// it cannot lead out of it. The overlays go with the container (<see cref="UnmountAll"/>).
/// </summary>
public static class ImageMounts
{
    /// <summary>The directory of a container's image mount points.</summary>
    public static string MountsDir(string bundle) => Path.Combine(bundle, "image-mounts");

    /// <summary>Whether a CRI mount names an image rather than a host path.</summary>
    public static bool IsImageMount(Mount mount) => Oci.Spec.ImageMountSpecOptions.IsImageMount(mount);

    /// <summary>
    /// Checks the image mounts of <paramref name="config"/> and finds their images, before anything is made: a mount
    /// naming both a host path and an image, a bad sub path or an image not on this node is refused here.
    /// </summary>
    public static List<ImageMountRecord> Plan(ContainerConfig config, Func<string, ImageRecord?> findImage, string bundle)
    {
        var planned = new List<ImageMountRecord>();
        for (int i = 0; i < config.Mounts.Count; i++)
        {
            var mount = config.Mounts[i];
            if (!IsImageMount(mount)) continue;
            string name = mount.Image.Image;
            if (name.Length == 0)
                throw new InvalidArgumentException($"config.mounts[{i}] ({Echo.Of(mount.ContainerPath)}) has an image with no name and no host_path; name the image to mount, or a host path");
            if (mount.HostPath.Length > 0)
                throw new InvalidArgumentException(
                    $"config.mounts[{i}] ({Echo.Of(mount.ContainerPath)}) names both host_path {Echo.Of(mount.HostPath)} and image {Echo.Of(name)}; a mount has one source");
            ValidateSubPath(mount.ImageSubPath, i);
            var image = findImage(name)
                ?? throw new NotFoundException($"image {Echo.Of(name)} for config.mounts[{i}] ({Echo.Of(mount.ContainerPath)}) is not on this node; pull it first (PullImage / crictl pull)");
            planned.Add(new ImageMountRecord
            {
                MountIndex = i,
                ImageId = image.Id.ToString(),
                LayerChainIds = [.. image.ChainIds.Select(c => c.ToString())],
                MountPoint = Path.Combine(MountsDir(bundle), i.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            });
        }
        return planned;
    }

    /// <summary>A sub path must be relative and stay inside the image by its words alone (symlinks are checked when resolved).</summary>
    public static void ValidateSubPath(string subPath, int index)
    {
        if (subPath.Length == 0) return;
        if (subPath.StartsWith('/'))
            throw new InvalidArgumentException($"config.mounts[{index}].image_sub_path {Echo.Of(subPath)} is absolute; give a path relative to the image's root");
        if (subPath.Split('/').Any(p => p == ".."))
            throw new InvalidArgumentException($"config.mounts[{index}].image_sub_path {Echo.Of(subPath)} contains '..'; give a path inside the image");
        if (subPath.Contains('\0'))
            throw new InvalidArgumentException($"config.mounts[{index}].image_sub_path contains a NUL byte");
    }

    /// <summary>
    /// Mounts each planned image and returns, by mount index, the node path the container's bind mount takes: the
    /// overlay's root or the resolved sub path in it. What was mounted before a failure is left for <see cref="UnmountAll"/>.
    /// </summary>
    public static Dictionary<int, string> MountAll(IReadOnlyList<ImageMountRecord> planned, ContainerConfig config, LayerStore layers)
    {
        var sources = new Dictionary<int, string>();
        foreach (var record in planned)
        {
            var lowers = new List<string>(record.LayerChainIds.Count);
            for (int i = record.LayerChainIds.Count - 1; i >= 0; i--) lowers.Add(layers.ShortDiffDir(Digest.Parse(record.LayerChainIds[i])));
            OverlayMount.Mount(lowers, null, null, record.MountPoint);

            var mount = config.Mounts[record.MountIndex];
            string source = record.MountPoint;
            if (mount.ImageSubPath.Length > 0)
            {
                var found = InRootPath.Resolve(record.MountPoint, mount.ImageSubPath);
                if (found.Problem is not null)
                    throw new InvalidArgumentException(
                        $"config.mounts[{record.MountIndex}].image_sub_path {Echo.Of(mount.ImageSubPath)} cannot be resolved in image {Echo.Of(mount.Image.Image)}: {found.Problem}");
                if (!found.Exists)
                    throw new NotFoundException(
                        $"config.mounts[{record.MountIndex}].image_sub_path {Echo.Of(mount.ImageSubPath)} does not exist in image {Echo.Of(mount.Image.Image)}; name a path the image has");
                if (found.RelativePath.Length > 0) source = record.MountPoint + "/" + found.RelativePath;
            }
            sources[record.MountIndex] = source;
        }
        return sources;
    }

    /// <summary>
    /// Unmounts every image mount under <paramref name="bundle"/> (from the node's mount table, so one whose record
    /// is gone is found too); returns what could not be unmounted.
    /// </summary>
    public static List<string> UnmountAll(string bundle)
    {
        var problems = new List<string>();
        string prefix = MountsDir(bundle) + "/";
        var mountPoints = Mounts.ReadMountInfo().Select(m => m.MountPoint).Where(p => p.StartsWith(prefix, StringComparison.Ordinal)).Distinct().ToList();
        foreach (var mountPoint in mountPoints)
        {
            if (Mounts.TryUnmount(mountPoint, UnmountFlags.Detach) != 0 && Mounts.IsMountPoint(mountPoint))
                problems.Add($"could not unmount its image mount {mountPoint}");
        }
        return problems;
    }

    /// <summary>Whether anything is still mounted under the container's image mounts directory.</summary>
    public static bool AnyMounted(string bundle)
    {
        string prefix = MountsDir(bundle) + "/";
        return Mounts.ReadMountInfo().Any(m => m.MountPoint.StartsWith(prefix, StringComparison.Ordinal));
    }
}
