using System.Text.Json;
using System.Text.Json.Nodes;
using CriRuntime.Images;
using Runtime.V1;
using CriRuntime.Content;

namespace CriRuntime.Server;

/// <summary>Image records as the CRI wire shows them.</summary>
internal static class ImageTranslation
{
    public static Image ToWire(ImageRecord record)
    {
        var image = new Image
        {
            Id = record.Id.ToString(),
            Size = (ulong)Math.Max(0, record.Size),
            Spec = new ImageSpec { Image = record.Id.ToString() },
        };
        image.RepoTags.AddRange(record.RepoTags);
        image.RepoDigests.AddRange(record.RepoDigests);
        var (uid, username) = ParseUser(record.Config.User);
        if (uid is not null) image.Uid = new Int64Value { Value = uid.Value };
        if (username is not null) image.Username = username;
        return image;
    }

    /// <summary>
    /// The image's User as kubelet wants it: a numeric user becomes uid (so runAsNonRoot can be
    /// checked), a name becomes username; a group part is ignored; no User gives neither.
    /// </summary>
    public static (long? Uid, string? Username) ParseUser(string? user)
    {
        if (string.IsNullOrEmpty(user)) return (null, null);
        string name = user.Split(':', 2)[0];
        if (name.Length == 0) return (null, null);
        return long.TryParse(name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long uid)
            ? (uid, null)
            : (null, name);
    }

    /// <summary>Verbose ImageStatus info: what crictl inspecti prints under "info".</summary>
    public static string VerboseInfo(ImageRecord record, byte[]? configBlob)
    {
        var info = new JsonObject
        {
            ["id"] = record.Id.ToString(),
            ["manifestDigest"] = record.ManifestDigest.ToString(),
            ["chainIDs"] = new JsonArray([.. record.ChainIds.Select(c => (JsonNode?)JsonValue.Create(c.ToString()))]),
            ["platform"] = record.Platform,
            ["size"] = record.Size,
            ["pulledAt"] = record.PulledAt.ToString("O"),
        };
        if (configBlob is not null)
            info["imageSpec"] = JsonNode.Parse(configBlob);
        return info.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }
}
