using CriRuntime.Images.Distribution;
using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriImageService
{
    public override async Task<PullImageResponse> PullImage(PullImageRequest request, ServerCallContext context)
    {
        string image = RequireImage(request.Image, nameof(PullImage));
        var record = await images.PullAsync(image, ToCredentials(request.Auth), context.CancellationToken);
        // As containerd does, the reference handed back is the image id.
        return new PullImageResponse { ImageRef = record.Id.ToString() };
    }

    private static RegistryCredentials? ToCredentials(AuthConfig? auth)
    {
        if (auth is null) return null;
        bool empty = string.IsNullOrEmpty(auth.Username) && string.IsNullOrEmpty(auth.Password) && string.IsNullOrEmpty(auth.Auth)
            && string.IsNullOrEmpty(auth.IdentityToken) && string.IsNullOrEmpty(auth.RegistryToken);
        return empty
            ? null
            : new RegistryCredentials(NullIfEmpty(auth.Username), NullIfEmpty(auth.Password), NullIfEmpty(auth.IdentityToken),
                NullIfEmpty(auth.RegistryToken), NullIfEmpty(auth.Auth))
            {
                ServerAddress = NullIfEmpty(auth.ServerAddress),
            };
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
