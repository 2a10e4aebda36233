using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriImageService
{
    public override async Task<RemoveImageResponse> RemoveImage(RemoveImageRequest request, ServerCallContext context)
    {
        string image = RequireImage(request.Image, nameof(RemoveImage));
        // Idempotent: removing what is not there succeeds.
        await images.RemoveAsync(image, context.CancellationToken);
        return new RemoveImageResponse();
    }
}
