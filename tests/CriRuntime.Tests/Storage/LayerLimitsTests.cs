using CriRuntime.Content;
using CriRuntime.Storage;
using Xunit;

namespace CriRuntime.Tests.Storage;

/// <summary>The unpacker's caps on depth, name length and entry count, on the real kernel.</summary>
public sealed class LayerLimitsTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    private Task<UnpackResult> Unpack(byte[] tar, LayerUnpacker? unpacker = null) =>
        (unpacker ?? new LayerUnpacker()).UnpackAsync(new MemoryStream(tar), tmp["diff"], CancellationToken.None);

    private static string Deep(int levels) => string.Join('/', Enumerable.Repeat("d", levels));

    [Fact]
    public async Task A_path_30000_levels_deep_is_refused_before_anything_is_created()
    {
        var tar = new TestTar().File(Deep(30_000) + "/f", "x").Build(); // a PAX path record of 60 KB

        var e = await Assert.ThrowsAsync<LayerLimitExceededException>(() => Unpack(tar));

        Assert.Contains("more than 4096 directory levels deep; at most 4096 are accepted", e.Message);
        Assert.Contains("(60001 characters)", e.Message); // the name is shortened in the message
        Assert.Equal(CriErrorKind.FailedPrecondition, e.ErrorKind);
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp["diff"]));
    }

    [Fact]
    public async Task Exactly_4096_levels_are_accepted_and_4097_refused()
    {
        await Unpack(new TestTar().Dir(Deep(4096)).Build());
        Assert.True(Directory.Exists(tmp["diff"] + "/d/d/d"));

        var e = await Assert.ThrowsAsync<LayerLimitExceededException>(() => Unpack(new TestTar().Dir(Deep(4097)).Build()));
        Assert.Contains("at most 4096", e.Message);
    }

    [Fact]
    public async Task A_name_component_over_255_bytes_is_refused_naming_the_limit()
    {
        await Unpack(new TestTar().File("a/" + new string('n', 255), "ok").Build());

        // 128 two-byte characters: 256 bytes in UTF-8.
        var e = await Assert.ThrowsAsync<LayerLimitExceededException>(() => Unpack(new TestTar().File("a/" + new string('é', 128), "x").Build()));
        Assert.Contains("a name component of 256 bytes; at most 255 (NAME_MAX) are accepted", e.Message);
    }

    [Fact]
    public async Task A_whole_path_over_64_KiB_is_refused()
    {
        string name = string.Join('/', Enumerable.Repeat(new string('p', 200), 330)); // 66,329 bytes, 330 levels
        var e = await Assert.ThrowsAsync<LayerLimitExceededException>(() => Unpack(new TestTar().File(name, "x").Build()));
        Assert.Contains("has a path of 66329 bytes; at most 65536 are accepted", e.Message);
    }

    [Fact]
    public async Task A_hardlink_target_is_held_to_the_same_limits()
    {
        var tar = new TestTar().File("f", "x").HardLink("link", Deep(5000)).Build();
        var e = await Assert.ThrowsAsync<LayerLimitExceededException>(() => Unpack(tar));
        Assert.Contains("is a hardlink to", e.Message);
    }

    [Fact]
    public async Task More_entries_than_the_cap_are_refused()
    {
        var tar = new TestTar();
        for (int i = 0; i < 11; i++) tar.File($"f{i}", "x");
        var unpacker = new LayerUnpacker { MaxEntries = 10 };

        var e = await Assert.ThrowsAsync<LayerLimitExceededException>(() => Unpack(tar.Build(), unpacker));
        Assert.Equal("the layer has more than 10 entries; at most 10 are accepted", e.Message);

        var ten = new TestTar();
        for (int i = 0; i < 10; i++) ten.File($"g{i}", "x");
        await Unpack(ten.Build(), new LayerUnpacker { MaxEntries = 10 });
        Assert.Equal(LayerLimits.MaxEntries, new LayerUnpacker().MaxEntries);
        Assert.Equal(1_000_000, LayerLimits.MaxEntries);
    }

    [Fact]
    public void Chain_ids_computed_in_one_pass_match_the_per_layer_definition()
    {
        var diffIds = Enumerable.Range(0, 50).Select(i => Digest.Sha256($"layer {i}")).ToList();
        var all = LayerStore.ChainIds(diffIds);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => LayerStore.ChainId(diffIds, i)), all);
        Assert.Empty(LayerStore.ChainIds([]));
    }
}
