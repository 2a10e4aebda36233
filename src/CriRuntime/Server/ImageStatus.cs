using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriImageService
{
    public override async Task<ImageStatusResponse> ImageStatus(ImageStatusRequest request, ServerCallContext context)
    {
        string image = RequireImage(request.Image, nameof(ImageStatus));
        var response = new ImageStatusResponse();
        // An absent image is not an error: the answer simply carries no image.
        if (images.Find(image) is not { } record) return response;
        response.Image = ImageTranslation.ToWire(record);
        if (request.Verbose)
            response.Info["info"] = ImageTranslation.VerboseInfo(record, await images.ReadConfigAsync(record, context.CancellationToken));
        return response;
    }
}
