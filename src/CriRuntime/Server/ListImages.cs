using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriImageService
{
    public override Task<ListImagesResponse> ListImages(ListImagesRequest request, ServerCallContext context)
    {
        var response = new ListImagesResponse();
        response.Images.AddRange(Filter(request.Filter).Select(ImageTranslation.ToWire));
        return Task.FromResult(response);
    }

    /// <summary>All images, or the one the filter's image reference names (tag, digest or id).</summary>
    private IEnumerable<Images.ImageRecord> Filter(ImageFilter? filter)
    {
        string? wanted = filter?.Image?.Image;
        if (string.IsNullOrWhiteSpace(wanted)) return images.List();
        return images.Find(wanted) is { } match ? [match] : [];
    }
}
