using CriRuntime.Storage;
using Xunit;

namespace CriRuntime.Tests.Storage;

public sealed class LayerDecompressionTests
{
    private static readonly byte[] Tar = new TestTar().File("hello", "world").Build();

    public static TheoryData<string> Formats => new() { "tar", "gzip", "zstd" };

    private static byte[] Encode(string format) => format switch
    {
        "gzip" => Compress.Gzip(Tar),
        "zstd" => Compress.Zstd(Tar),
        _ => Tar,
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task Sniffs_the_format_from_magic_bytes(string format)
    {
        byte[] blob = Encode(format);
        Assert.Equal(format, LayerDecompression.Detect(blob).ToString().ToLowerInvariant());

        await using var stream = await LayerDecompression.OpenDecompressedAsync(new MemoryStream(blob), CancellationToken.None);
        var output = new MemoryStream();
        await stream.CopyToAsync(output);
        Assert.Equal(Tar, output.ToArray());

        using var sync = LayerDecompression.OpenDecompressed(new MemoryStream(blob));
        var output2 = new MemoryStream();
        sync.CopyTo(output2);
        Assert.Equal(Tar, output2.ToArray());
    }

    [Fact]
    public async Task Streams_shorter_than_the_magic_pass_through()
    {
        foreach (var data in new[] { Array.Empty<byte>(), new byte[] { 0x1f }, new byte[] { 1, 2, 3 } })
        {
            await using var stream = await LayerDecompression.OpenDecompressedAsync(new MemoryStream(data), CancellationToken.None);
            var output = new MemoryStream();
            await stream.CopyToAsync(output);
            Assert.Equal(data, output.ToArray());
        }
    }

    [Fact]
    public async Task Corrupt_gzip_fails()
    {
        var random = new byte[100_000];
        new Random(1).NextBytes(random);
        byte[] blob = Compress.Gzip(new TestTar().File("noise", random).Build());
        blob[blob.Length / 2] ^= 0xff;
        await using var stream = await LayerDecompression.OpenDecompressedAsync(new MemoryStream(blob), CancellationToken.None);
        await Assert.ThrowsAnyAsync<InvalidDataException>(() => stream.CopyToAsync(Stream.Null));
    }
}
