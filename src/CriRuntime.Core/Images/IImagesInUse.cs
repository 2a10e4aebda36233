using CriRuntime.Content;
namespace CriRuntime.Images;

/// <summary>Tells the image manager what containers are made from, so it never removes an image or layer under them.</summary>
public interface IImagesInUse
{
    /// <summary>Given an image id, the id of a container made from it, or null.</summary>
    string? ContainerUsing(string imageId);

    /// <summary>
    /// Chain ids of every layer some container's rootfs is made of, whether or not its image is still recorded;
    /// null when that cannot be known for some container, in which case no layer may be collected.
    /// </summary>
    IReadOnlySet<Digest>? LayersInUse();
}
