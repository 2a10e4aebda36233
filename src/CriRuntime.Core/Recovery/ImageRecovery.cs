using CriRuntime.Images;

namespace CriRuntime.Recovery;

/// <summary>
/// Loads the blob, layer and image stores. Unreadable layer records and an unreadable image index are quarantined
/// by the stores; images whose layers are missing are forgotten (so they are pulled again). Nothing is collected
/// here: containers are not loaded yet (see <see cref="ImageGarbageCollection"/>).
/// </summary>
public sealed class ImageRecovery(ImageManager images) : IRecoveryStep
{
    public string Name => "images";

    public async Task RunAsync(RecoveryReport report, CancellationToken cancellationToken)
    {
        report.Add(await images.LoadStoresAsync(cancellationToken).ConfigureAwait(false));
        await images.ForgetImagesMissingLayersAsync(cancellationToken).ConfigureAwait(false);
    }
}

/// <summary>
/// The last step: frees layers and blobs that no image, container or pull uses (what a crash left unreferenced).
/// Runs after containers are loaded, because their rootfs layers must be spared even when no image names them.
/// </summary>
public sealed class ImageGarbageCollection(ImageManager images) : IRecoveryStep
{
    public string Name => "image and layer garbage collection";

    public Task RunAsync(RecoveryReport report, CancellationToken cancellationToken) => images.CollectGarbageAsync(cancellationToken);
}
