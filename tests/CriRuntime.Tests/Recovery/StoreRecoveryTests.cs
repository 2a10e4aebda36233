using System.Text.Json;
using System.Text.Json.Nodes;
using CriRuntime.Images;
using CriRuntime.Native;
using CriRuntime.State;
using CriRuntime.Storage;
using CriRuntime.Tests.State;
using CriRuntime.Tests.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Recovery;

/// <summary>
/// What loading each store does at start-up with a record it cannot read (quarantine, never delete) and with one a
/// newer daemon wrote (leave it exactly as it is), over real temp dirs (needs root: the layer store mounts nothing,
/// but makes whiteout devices).
/// </summary>
public sealed class StoreRecoveryTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Theory]
    [InlineData("{}", 1)]
    [InlineData("{\"a\":{\"schema_version\":5},\"schema_version\":2}", 2)]
    [InlineData("{\"id\":\"x\",\"schema_version\":99}", 99)]
    public void A_record_version_is_read_from_the_top_level_and_defaults_to_1(string json, int expected) =>
        Assert.Equal(expected, RecordSchema.ReadVersion(System.Text.Encoding.UTF8.GetBytes(json), "schema_version"));

    [Theory]
    [InlineData("{\"schema_version\":\"2\"}")]
    [InlineData("{\"schema_version\":0}")]
    [InlineData("{\"schema_version\":1")]
    [InlineData("[1]")]
    public void A_record_version_that_is_not_a_positive_integer_makes_the_record_unreadable(string json) =>
        Assert.ThrowsAny<JsonException>(() => RecordSchema.ReadVersion(System.Text.Encoding.UTF8.GetBytes(json), "schema_version"));

    [Fact]
    public async Task A_record_of_a_newer_version_is_not_loaded_and_not_touched()
    {
        string dir = tmp["records"];
        var store = new RecordStore<TestRecord>(dir, TestRecordJsonContext.Default.TestRecord, NullLogger.Instance);
        await store.PutAsync(new TestRecord("current", 1), CancellationToken.None);
        string newer = Path.Combine(dir, "future.json");
        File.WriteAllText(newer, "{\"Id\":\"future\",\"Value\":2,\"schema_version\":99,\"shape\":\"unknown to us\"}");
        var modified = File.GetLastWriteTimeUtc(newer);

        var reloaded = new RecordStore<TestRecord>(dir, TestRecordJsonContext.Default.TestRecord, NullLogger.Instance);
        var report = reloaded.Load();

        Assert.Equal("current", Assert.Single(reloaded.All).Id);
        Assert.Null(reloaded.Find("future"));
        Assert.True(reloaded.IsNotLoaded("future", out _));
        Assert.Equal((newer, 99, RecordSchema.Current), (Assert.Single(report.Newer).Path, report.Newer[0].Version, report.Newer[0].Supported));
        Assert.Empty(report.Quarantined);
        Assert.Equal("{\"Id\":\"future\",\"Value\":2,\"schema_version\":99,\"shape\":\"unknown to us\"}", File.ReadAllText(newer));
        Assert.Equal(modified, File.GetLastWriteTimeUtc(newer));
    }

    [Fact]
    public async Task An_unreadable_image_index_is_quarantined_and_the_store_starts_empty()
    {
        var store = new ImageStore(tmp["images"], NullLogger<ImageStore>.Instance);
        string index = Path.Combine(tmp["images"], "images.json");
        File.WriteAllText(index, "{\"version\":1,\"images\":[{\"id\":\"sha256:nothex\"");

        var report = await store.LoadAsync(CancellationToken.None);

        Assert.Empty(store.List());
        var item = Assert.Single(report.Quarantined);
        Assert.Equal(index, item.Path);
        Assert.False(File.Exists(index));
        Assert.Equal("{\"version\":1,\"images\":[{\"id\":\"sha256:nothex\"", File.ReadAllText(item.MovedTo));
        Assert.Equal(Path.Combine(tmp["images"], "quarantine"), Path.GetDirectoryName(item.MovedTo));

        // The store works again: a pull writes a fresh index beside the quarantined one.
        await store.PutAsync(Image("a"), CancellationToken.None);
        Assert.Single(store.List());
        Assert.True(File.Exists(item.MovedTo));
    }

    [Fact]
    public async Task An_image_index_of_a_newer_version_is_left_untouched_and_the_store_refuses_changes()
    {
        var first = new ImageStore(tmp["images"], NullLogger<ImageStore>.Instance);
        await first.PutAsync(Image("a"), CancellationToken.None);
        string index = Path.Combine(tmp["images"], "images.json");
        var json = JsonNode.Parse(File.ReadAllText(index))!.AsObject();
        json["version"] = 2;
        File.WriteAllText(index, json.ToJsonString());
        byte[] bytes = File.ReadAllBytes(index);

        var store = new ImageStore(tmp["images"], NullLogger<ImageStore>.Instance);
        var report = await store.LoadAsync(CancellationToken.None);

        Assert.Equal(2, Assert.Single(report.Newer).Version);
        Assert.Empty(store.List());
        Assert.NotNull(store.ReadOnlyReason);
        var refused = await Assert.ThrowsAsync<FailedPreconditionException>(() => store.PutAsync(Image("b"), CancellationToken.None));
        Assert.Contains("schema version 2", refused.Message, StringComparison.Ordinal);
        Assert.Equal(bytes, File.ReadAllBytes(index));
    }

    [Fact]
    public async Task A_layer_with_unreadable_metadata_is_quarantined_with_its_files()
    {
        var (first, chainId) = await StoreWithOneLayerAsync();
        string layerDir = Path.Combine(tmp["overlay"], chainId.Hex);
        File.WriteAllText(Path.Combine(layerDir, "layer.json"), "{\"chainId\":");

        var store = new LayerStore(tmp["overlay"], NullLogger<LayerStore>.Instance);
        var report = await store.LoadAsync(CancellationToken.None);

        Assert.False(store.TryGet(chainId, out _));
        var item = Assert.Single(report.Quarantined);
        Assert.Equal(layerDir, item.Path);
        Assert.False(Directory.Exists(layerDir));
        Assert.Equal("kept", File.ReadAllText(Path.Combine(item.MovedTo, "diff", "f")));
        Assert.Equal(Path.Combine(tmp["overlay"], "quarantine"), Path.GetDirectoryName(item.MovedTo));

        // A second start-up neither reports nor touches it again.
        var again = await new LayerStore(tmp["overlay"], NullLogger<LayerStore>.Instance).LoadAsync(CancellationToken.None);
        Assert.Empty(again.Quarantined);
        Assert.True(Directory.Exists(item.MovedTo));
    }

    [Fact]
    public async Task A_layer_whose_metadata_a_newer_daemon_wrote_stays_in_place_with_its_link()
    {
        var (first, chainId) = await StoreWithOneLayerAsync();
        string link = first.ShortDiffDir(chainId);
        string metadata = Path.Combine(tmp["overlay"], chainId.Hex, "layer.json");
        var json = JsonNode.Parse(File.ReadAllText(metadata))!.AsObject();
        json["schemaVersion"] = 3;
        File.WriteAllText(metadata, json.ToJsonString());
        byte[] bytes = File.ReadAllBytes(metadata);

        var store = new LayerStore(tmp["overlay"], NullLogger<LayerStore>.Instance);
        var report = await store.LoadAsync(CancellationToken.None);

        Assert.False(store.TryGet(chainId, out _));
        Assert.Equal((metadata, 3), (Assert.Single(report.Newer).Path, report.Newer[0].Version));
        Assert.Empty(report.Quarantined);
        Assert.Equal(bytes, File.ReadAllBytes(metadata));
        Assert.Equal("kept", File.ReadAllText(Path.Combine(tmp["overlay"], chainId.Hex, "diff", "f")));
        Assert.Equal(FileType.Symlink, Files.TryLstat(link)?.Type);
    }

    [Fact]
    public async Task Layer_metadata_is_written_with_its_schema_version()
    {
        var (_, chainId) = await StoreWithOneLayerAsync();
        using var json = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(tmp["overlay"], chainId.Hex, "layer.json")));
        Assert.Equal(RecordSchema.Current, json.RootElement.GetProperty("schemaVersion").GetInt32());
    }

    private async Task<(LayerStore Store, Digest ChainId)> StoreWithOneLayerAsync()
    {
        var store = new LayerStore(tmp["overlay"], NullLogger<LayerStore>.Instance);
        byte[] tar = new TestTar().File("f", "kept").Build();
        var diffId = Digest.Sha256(tar);
        await store.EnsureAsync(diffId, null, diffId, _ => Task.FromResult<Stream>(new MemoryStream(Compress.Gzip(tar))), CancellationToken.None);
        return (store, diffId);
    }

    private static ImageRecord Image(string name) => new()
    {
        Id = Digest.Sha256($"config {name}"),
        RepoTags = [$"test.invalid/{name}:1"],
        RepoDigests = [],
        ManifestDigest = Digest.Sha256($"manifest {name}"),
        ChainIds = [],
        Size = 0,
        Platform = "linux/amd64",
        PulledAt = DateTimeOffset.UtcNow,
        Config = new ImageRuntimeConfig(),
        Blobs = [],
    };
}
