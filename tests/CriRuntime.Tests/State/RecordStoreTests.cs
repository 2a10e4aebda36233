using System.Text.Json.Serialization;
using CriRuntime.State;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace CriRuntime.Tests.State;

public sealed record TestRecord(string Id, int Value) : IRecord;

[JsonSerializable(typeof(TestRecord))]
internal sealed partial class TestRecordJsonContext : JsonSerializerContext;

public sealed class RecordStoreTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("recordstore-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private RecordStore<TestRecord> NewStore() => new(dir, TestRecordJsonContext.Default.TestRecord, NullLogger.Instance);

    [Fact]
    public async Task Records_survive_a_reload_and_deletes_stick()
    {
        var store = NewStore();
        await store.PutAsync(new TestRecord("aaaa1111", 1), CancellationToken.None);
        await store.PutAsync(new TestRecord("bbbb2222", 2), CancellationToken.None);
        await store.PutAsync(new TestRecord("aaaa1111", 3), CancellationToken.None);
        store.Delete("bbbb2222");

        var reloaded = NewStore();
        reloaded.Load();
        Assert.Equal(new TestRecord("aaaa1111", 3), Assert.Single(reloaded.All));
        Assert.Null(reloaded.Find("bbbb2222"));
    }

    [Fact]
    public async Task Find_accepts_a_unique_prefix_only()
    {
        var store = NewStore();
        await store.PutAsync(new TestRecord("abc123", 1), CancellationToken.None);
        await store.PutAsync(new TestRecord("abd456", 2), CancellationToken.None);
        Assert.Equal(1, store.FindByIdOrPrefix("abc")!.Value);
        Assert.Null(store.FindByIdOrPrefix("ab"));
        Assert.Null(store.FindByIdOrPrefix("zzz"));
        Assert.Null(store.FindByIdOrPrefix(""));
        Assert.Equal(2, store.FindByIdOrPrefix("abd456")!.Value);
    }

    [Fact]
    public async Task A_corrupt_file_is_set_aside_not_fatal()
    {
        var store = NewStore();
        await store.PutAsync(new TestRecord("good", 1), CancellationToken.None);
        File.WriteAllText(Path.Combine(dir, "bad.json"), "{ not json");
        var reloaded = NewStore();
        reloaded.Load();
        Assert.Equal("good", Assert.Single(reloaded.All).Id);
        // Set aside into quarantine/ with a time stamp (issue #11 item 5), not beside it as bad.json.corrupt.
        Assert.Single(Directory.GetFiles(Path.Combine(dir, "quarantine"), "bad.json.*"));
        Assert.False(File.Exists(Path.Combine(dir, "bad.json")));
    }
}
