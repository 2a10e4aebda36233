using Google.Protobuf;
using Grpc.Core;

namespace CriRuntime.Server;

/// <summary>
/// Sends a list as a series of responses, each kept well under the gRPC message limit: the point of
/// the Stream* RPCs is that a node with very many objects never has to answer in one huge message.
/// </summary>
internal static class StreamChunks
{
    // Far below the 16 MiB message limit, so a reader with the default 4 MiB limit is fine too.
    private const int MaxChunkBytes = 1 << 20;

    public static async Task WriteAsync<TItem, TResponse>(IEnumerable<TItem> items, Func<IReadOnlyList<TItem>, TResponse> makeResponse,
        IServerStreamWriter<TResponse> writer, CancellationToken cancellationToken)
        where TItem : IMessage
    {
        var chunk = new List<TItem>();
        int bytes = 0;
        foreach (var item in items)
        {
            int size = item.CalculateSize();
            if (chunk.Count > 0 && bytes + size > MaxChunkBytes)
            {
                cancellationToken.ThrowIfCancellationRequested();
                await writer.WriteAsync(makeResponse(chunk), cancellationToken).ConfigureAwait(false);
                chunk = [];
                bytes = 0;
            }
            chunk.Add(item);
            bytes += size;
        }
        // An empty list is still one (empty) response, so a client can tell "none" from "not answered".
        await writer.WriteAsync(makeResponse(chunk), cancellationToken).ConfigureAwait(false);
    }
}
