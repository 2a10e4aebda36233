namespace CriRuntime.Images;

/// <summary>What an image may ask of a pull, checked from its manifest before any layer or config is fetched.</summary>
internal static class ImageLimits
{
    /// <summary>overlayfs stacks at most 500 lower layers (OVL_MAX_STACK), so an image with more could be
    /// pulled but never run; refusing it from the manifest saves downloading it.</summary>
    public const int MaxLayers = 500;

    public static void CheckLayerCount(ImageReference reference, int layers)
    {
        if (layers > MaxLayers)
            throw new InvalidImageException(
                $"image {reference} has {layers} layers; at most {MaxLayers} are accepted (overlay cannot mount more): squash the image");
    }
}
