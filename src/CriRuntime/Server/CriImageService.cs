using CriRuntime.Images;
using Runtime.V1;

namespace CriRuntime.Server;

/// <summary>
/// The CRI ImageService. Each RPC lives in the file named after it; this layer only validates and
/// translates between the wire messages and <see cref="ImageManager"/>.
/// </summary>
internal sealed partial class CriImageService(ImageManager images) : ImageService.ImageServiceBase
{
    private static string RequireImage(ImageSpec? spec, string rpc)
    {
        string? image = spec?.Image?.Trim();
        if (string.IsNullOrEmpty(image))
            throw new InvalidArgumentException($"{rpc}: image.image is empty; give an image reference (busybox, registry.example.com/app:1.0), a digest reference or an image id");
        return image;
    }
}
