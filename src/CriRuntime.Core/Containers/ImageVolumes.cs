using System.Security.Cryptography;
using System.Text;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.Oci.Spec;
using CriRuntime.Storage;
using Microsoft.Extensions.Logging;
using Runtime.V1;

namespace CriRuntime.Containers;

/// <summary><c>[runtime] image_volumes</c>: what a container gets for each path in its image's config.Volumes.</summary>
public enum ImageVolumesMode
{
    /// <summary>A writable directory of the container's own, seeded with the image's content at that path (containerd, Docker).</summary>
    Copy,

    /// <summary>A writable, empty directory of the container's own (with the image directory's owner and mode, if it has one).</summary>
    Mkdir,

    /// <summary>Nothing: the path stays part of the rootfs (read-only with readOnlyRootFilesystem).</summary>
    Ignore,
}

/// <summary>
/// Image VOLUMEs, as containerd's WithVolumes makes them: each path the image declares, unless a CRI mount has the
/// same container path, becomes a directory under the container's own directory (so it lives and goes with the
/// container), bind-mounted read-write at that path. In <see cref="ImageVolumesMode.Copy"/> mode it is seeded from
/// the mounted rootfs, with the path resolved inside the rootfs and the copy made by <see cref="TreeCopy"/> (never
/// through a symlink, bounded by <see cref="Limits"/>): the image's content is untrusted.
/// </summary>
public static class ImageVolumes
{
    /// <summary>Volumes one image may declare; an image over it cannot be run with volumes (its config is odd or hostile).</summary>
    public const int MaxVolumes = 128;

    /// <summary>What all of one container's volume seeds together may hold.</summary>
    public static readonly TreeCopyLimits Limits = new(MaxEntries: 200_000, MaxDepth: 256, MaxBytes: 16L << 30);

    /// <summary>The directory under a container's writable layer dir that holds its volumes.</summary>
    public static string VolumesDir(string writableLayerDir) => Path.Combine(writableLayerDir, "volumes");

    public static ImageVolumesMode ParseMode(string text) => text switch
    {
        "copy" => ImageVolumesMode.Copy,
        "mkdir" => ImageVolumesMode.Mkdir,
        "ignore" => ImageVolumesMode.Ignore,
        _ => throw new ArgumentException($"image_volumes '{text}' is not one of copy, mkdir, ignore"),
    };

    /// <summary>
    /// The image volume paths that get a directory: cleaned, without "/" (a volume cannot replace the rootfs) and
    /// without those a CRI mount covers, in a stable order.
    /// </summary>
    public static IReadOnlyList<string> PathsToMake(IReadOnlyList<string> imageVolumes, IEnumerable<Mount> criMounts, string imageName)
    {
        if (imageVolumes.Count > MaxVolumes)
            throw new FailedPreconditionException(
                $"image {Echo.Of(imageName)} declares {imageVolumes.Count} volumes, more than the {MaxVolumes} a container gets; rebuild the image with fewer VOLUMEs, or set [runtime] image_volumes = \"ignore\"");
        var mounted = criMounts.Select(m => MountSpecOptions.CleanPath(m.ContainerPath)).ToHashSet(StringComparer.Ordinal);
        return imageVolumes
            .Select(MountSpecOptions.CleanPath)
            .Where(p => p != "/" && !mounted.Contains(p))
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// Makes the volume directories of a container whose rootfs is mounted at <paramref name="rootfs"/> and returns the
    /// mounts that put them in place. Nothing in <see cref="ImageVolumesMode.Ignore"/> mode.
    /// </summary>
    public static List<Mount> Prepare(ImageVolumesMode mode, ImageRecord image, ContainerConfig config, string rootfs, string writableLayerDir,
        string imageName, ILogger logger)
    {
        var mounts = new List<Mount>();
        if (mode == ImageVolumesMode.Ignore || image.Config.Volumes.Count == 0) return mounts;
        var paths = PathsToMake(image.Config.Volumes, config.Mounts, imageName);
        if (paths.Count == 0) return mounts;

        string volumesDir = VolumesDir(writableLayerDir);
        Directory.CreateDirectory(volumesDir);
        using var rootHandle = Files.OpenDirectory(rootfs);
        using var volumesHandle = Files.OpenDirectory(volumesDir);
        var budget = Limits;
        foreach (var path in paths)
        {
            string name = DirectoryName(path);
            FilesAt.Mkdir(volumesHandle, name, 0b111_101_101, Path.Combine(volumesDir, name));
            using var volume = FilesAt.OpenDirectory(volumesHandle, name);
            var found = InRootPath.Resolve(rootHandle, path);
            if (found.Problem is not null)
                throw new FailedPreconditionException($"image {Echo.Of(imageName)} declares the volume {Echo.Of(path)}, which cannot be resolved in the image: {found.Problem}");
            if (found.Status is { } status)
            {
                if (!status.IsDirectory)
                    throw new FailedPreconditionException(
                        $"image {Echo.Of(imageName)} declares the volume {Echo.Of(path)}, but that is a file in the image, not a directory; mount a volume there instead");
                using var source = InRootPath.OpenDirectory(rootHandle, found.RelativePath);
                if (mode == ImageVolumesMode.Copy)
                {
                    var copied = TreeCopy.CopyContents(source, volume, budget, path);
                    budget = budget with { MaxEntries = budget.MaxEntries - copied.Entries, MaxBytes = budget.MaxBytes - copied.Bytes };
                    if (copied.Skipped.Count > 0)
                        logger.LogWarning("Image volume {Path} of {Image}: {Count} device nodes or sockets were not copied (first: {First})",
                            path, Echo.Of(imageName), copied.Skipped.Count, Echo.Of(copied.Skipped[0]));
                }
                TreeCopy.CopyAttributes(volume, status, path);
            }
            mounts.Add(new Mount { ContainerPath = path, HostPath = Path.Combine(volumesDir, name), Readonly = false });
        }
        logger.LogDebug("Made {Count} image volumes ({Mode}) for {Image}: {Paths}", mounts.Count, mode, Echo.Of(imageName), string.Join(", ", paths));
        return mounts;
    }

    /// <summary>A fixed-length, stable name per volume path (paths may be long or hold odd characters).</summary>
    internal static string DirectoryName(string cleanPath) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(cleanPath)))[..32];
}
