using Grpc.Core;
using Runtime.V1;

namespace CriRuntime.Server;

internal sealed partial class CriImageService
{
    public override Task<ImageFsInfoResponse> ImageFsInfo(ImageFsInfoRequest request, ServerCallContext context)
    {
        var usage = images.GetUsage();
        var response = new ImageFsInfoResponse();
        response.ImageFilesystems.Add(new FilesystemUsage
        {
            Timestamp = usage.Timestamp.ToUnixTimeMilliseconds() * 1_000_000,
            FsId = new FilesystemIdentifier { Mountpoint = usage.Mountpoint },
            UsedBytes = new UInt64Value { Value = (ulong)usage.UsedBytes },
            InodesUsed = new UInt64Value { Value = (ulong)usage.InodesUsed },
        });
        return Task.FromResult(response);
    }
}
