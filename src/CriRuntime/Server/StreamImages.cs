using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriImageService
{
    public override Task StreamImages(StreamImagesRequest request, IServerStreamWriter<StreamImagesResponse> responseStream, ServerCallContext context) =>
        StreamChunks.WriteAsync(Filter(request.Filter).Select(ImageTranslation.ToWire),
            chunk => new StreamImagesResponse { Images = { chunk } }, responseStream, context.CancellationToken);
}
