using System.Text;
using CriRuntime.Images;
using CriRuntime.Images.Distribution;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Distribution;

public class ManifestParsingTests
{
    internal static readonly string D1 = "sha256:" + new string('1', 64);
    internal static readonly string D2 = "sha256:" + new string('2', 64);
    internal static readonly string D3 = "sha256:" + new string('3', 64);

    private static byte[] B(string json) => Encoding.UTF8.GetBytes(json);

    private static string Index(string mediaTypeField) => $$"""
        {
          "schemaVersion": 2,
          {{mediaTypeField}}
          "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "{{D1}}", "size": 500,
              "platform": { "architecture": "amd64", "os": "linux" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "{{D2}}", "size": 501,
              "platform": { "architecture": "arm64", "os": "linux", "variant": "v8", "os.version": "x" },
              "annotations": { "a": "b" } }
          ]
        }
        """;

    private static string Manifest(string mediaTypeField, string configType = MediaTypes.OciConfig, string layerType = MediaTypes.OciLayerGzip, string extraLayer = "") => $$"""
        {
          "schemaVersion": 2,
          {{mediaTypeField}}
          "config": { "mediaType": "{{configType}}", "digest": "{{D1}}", "size": 1234 },
          "layers": [
            { "mediaType": "{{layerType}}", "digest": "{{D2}}", "size": 100 }{{extraLayer}}
          ],
          "annotations": { "org.opencontainers.image.title": "t" }
        }
        """;

    [Fact]
    public void OciIndex()
    {
        var doc = ManifestParser.Parse(B(Index("\"mediaType\": \"application/vnd.oci.image.index.v1+json\",")), MediaTypes.OciIndex);
        var index = Assert.IsType<ImageIndex>(doc);
        Assert.Equal(MediaTypes.OciIndex, index.MediaType);
        Assert.Equal(2, index.Manifests.Count);
        Assert.Equal(Digest.Parse(D1), index.Manifests[0].Digest);
        Assert.Equal(500, index.Manifests[0].Size);
        Assert.Equal(new Platform("linux", "amd64"), index.Manifests[0].Platform);
        Assert.Equal("v8", index.Manifests[1].Platform!.Variant);
        Assert.Equal("x", index.Manifests[1].Platform!.OsVersion);
        Assert.Equal("b", index.Manifests[1].Annotations!["a"]);
    }

    [Fact]
    public void DockerManifestList()
    {
        var json = Index($"\"mediaType\": \"{MediaTypes.DockerManifestList}\",");
        var index = ManifestParser.ParseIndex(B(json), MediaTypes.DockerManifestList + "; charset=utf-8");
        Assert.Equal(MediaTypes.DockerManifestList, index.MediaType);
        Assert.Equal(Digest.Parse(D2), index.Manifests[1].Digest);
    }

    [Fact]
    public void OciManifest()
    {
        var manifest = ManifestParser.ParseManifest(B(Manifest($"\"mediaType\": \"{MediaTypes.OciManifest}\",")), MediaTypes.OciManifest);
        Assert.Equal(MediaTypes.OciManifest, manifest.MediaType);
        Assert.Equal(Digest.Parse(D1), manifest.Config.Digest);
        Assert.Equal(1234, manifest.Config.Size);
        var layer = Assert.Single(manifest.Layers);
        Assert.Equal(MediaTypes.OciLayerGzip, layer.MediaType);
        Assert.Equal(100, layer.Size);
        Assert.Equal("t", manifest.Annotations!["org.opencontainers.image.title"]);
        ManifestParser.ValidateLayers(manifest);
    }

    [Fact]
    public void DockerSchema2Manifest()
    {
        var manifest = ManifestParser.ParseManifest(
            B(Manifest($"\"mediaType\": \"{MediaTypes.DockerManifest}\",", MediaTypes.DockerConfig, MediaTypes.DockerLayerGzip)), MediaTypes.DockerManifest);
        Assert.Equal(MediaTypes.DockerManifest, manifest.MediaType);
        Assert.Equal(MediaTypes.DockerConfig, manifest.Config.MediaType);
        ManifestParser.ValidateLayers(manifest);
        Assert.Equal(LayerCompression.Gzip, MediaTypes.LayerCompressionOf(manifest.Layers[0].MediaType));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("application/json")]
    [InlineData("text/plain; charset=utf-8")]
    [InlineData("application/octet-stream")]
    public void GenericContentTypeUsesTheMediaTypeField(string? contentType)
    {
        Assert.Equal(MediaTypes.DockerManifestList,
            ManifestParser.DetectMediaType(contentType, B(Index($"\"mediaType\": \"{MediaTypes.DockerManifestList}\","))));
        Assert.Equal(MediaTypes.DockerManifest,
            ManifestParser.DetectMediaType(contentType, B(Manifest($"\"mediaType\": \"{MediaTypes.DockerManifest}\","))));
    }

    [Fact]
    public void WithoutAnyTypeTheShapeDecides()
    {
        Assert.IsType<ImageIndex>(ManifestParser.Parse(B(Index("")), null));
        Assert.Equal(MediaTypes.OciIndex, ManifestParser.Parse(B(Index("")), "application/json").MediaType);
        var manifest = Assert.IsType<ImageManifest>(ManifestParser.Parse(B(Manifest("")), null));
        Assert.Equal(MediaTypes.OciManifest, manifest.MediaType);
        Assert.Throws<ManifestException>(() => ManifestParser.Parse(B("""{"schemaVersion":2}"""), null));
    }

    [Fact]
    public void DeclaredTypeMustMatchTheServedType()
    {
        var e = Assert.Throws<ManifestException>(() =>
            ManifestParser.Parse(B(Manifest($"\"mediaType\": \"{MediaTypes.DockerManifest}\",")), MediaTypes.OciManifest));
        Assert.Contains(MediaTypes.DockerManifest, e.Message);
    }

    [Theory]
    [InlineData("application/vnd.docker.distribution.manifest.v1+prettyjws", """{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}""")]
    [InlineData("application/vnd.docker.distribution.manifest.v1+json", """{"schemaVersion":1}""")]
    [InlineData(null, """{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[{"blobSum":"sha256:00"}],"history":[]}""")]
    [InlineData("application/json", """{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}""")]
    public void Schema1IsRejected(string? contentType, string json)
    {
        var e = Assert.Throws<ManifestException>(() => ManifestParser.Parse(B(json), contentType));
        Assert.Contains("schema 1 images are not supported; re-push the image with a current client", e.Message);
    }

    [Fact]
    public void UnknownManifestTypeIsRejected()
    {
        var e = Assert.Throws<ManifestException>(() => ManifestParser.Parse(B(Manifest("")), "application/vnd.oci.artifact.manifest.v1+json"));
        Assert.Contains("unsupported manifest media type", e.Message);
    }

    [Fact]
    public void ArtifactConfigIsNotAnImage()
    {
        var e = Assert.Throws<ManifestException>(() =>
            ManifestParser.Parse(B(Manifest("", "application/vnd.cncf.helm.config.v1+json")), MediaTypes.OciManifest));
        Assert.Contains("not a container image", e.Message);
    }

    [Theory]
    [InlineData(MediaTypes.OciLayer, LayerCompression.None)]
    [InlineData(MediaTypes.OciLayerGzip, LayerCompression.Gzip)]
    [InlineData(MediaTypes.OciLayerZstd, LayerCompression.Zstd)]
    [InlineData(MediaTypes.DockerLayerGzip, LayerCompression.Gzip)]
    public void AcceptedLayerTypes(string layerType, LayerCompression compression)
    {
        var manifest = ManifestParser.ParseManifest(B(Manifest("", layerType: layerType)), MediaTypes.OciManifest);
        ManifestParser.ValidateLayers(manifest);
        Assert.Equal(compression, MediaTypes.LayerCompressionOf(layerType));
    }

    [Theory]
    [InlineData(MediaTypes.DockerForeignLayerGzip, "foreign")]
    [InlineData("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "foreign")]
    [InlineData("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "encrypted")]
    [InlineData("application/vnd.cncf.helm.chart.content.v1.tar+gzip", "not a container image layer")]
    public void RejectedLayerTypes(string layerType, string expected)
    {
        var manifest = ManifestParser.ParseManifest(B(Manifest("", layerType: layerType)), MediaTypes.OciManifest);
        var e = Assert.Throws<ManifestException>(() => ManifestParser.ValidateLayers(manifest));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void LayerWithUrlsIsForeign()
    {
        string extra = $$""", { "mediaType": "{{MediaTypes.OciLayerGzip}}", "digest": "{{D3}}", "size": 5, "urls": ["https://example.com/x"] }""";
        var manifest = ManifestParser.ParseManifest(B(Manifest("", extraLayer: extra)), MediaTypes.OciManifest);
        var e = Assert.Throws<ManifestException>(() => ManifestParser.ValidateLayers(manifest));
        Assert.Contains("layer 1", e.Message);
        Assert.Contains("non-distributable", e.Message);
    }

    [Theory]
    [InlineData("\"digest\": \"sha256:abc\", \"size\": 1")]
    [InlineData("\"digest\": \"md5:" + "00000000000000000000000000000000\", \"size\": 1")]
    [InlineData("\"digest\": \"" + "sha256:1111111111111111111111111111111111111111111111111111111111111111\"")]
    [InlineData("\"digest\": \"" + "sha256:1111111111111111111111111111111111111111111111111111111111111111\", \"size\": -1")]
    public void BadDescriptorsAreRejected(string fields)
    {
        string json = $$"""{"schemaVersion":2,"config":{"mediaType":"{{MediaTypes.OciConfig}}",{{fields}}},"layers":[]}""";
        Assert.Throws<ManifestException>(() => ManifestParser.Parse(B(json), MediaTypes.OciManifest));
    }

    [Fact]
    public void InvalidJsonIsAManifestException()
    {
        Assert.Throws<ManifestException>(() => ManifestParser.Parse(B("{not json"), MediaTypes.OciManifest));
        Assert.Throws<ManifestException>(() => ManifestParser.ParseConfig(B("[]")));
    }

    [Fact]
    public void ImageConfigFields()
    {
        string json = $$"""
            {
              "architecture": "arm64", "os": "linux", "variant": "v8",
              "created": "2024-03-04T05:06:07.123456789Z",
              "author": "someone",
              "config": {
                "User": "1000:1000",
                "Env": ["PATH=/usr/bin", "A=b=c"],
                "Entrypoint": ["/bin/sh", "-c"],
                "Cmd": "echo hi",
                "WorkingDir": "/app",
                "Labels": { "l1": "v1", "l2": null },
                "StopSignal": "SIGQUIT",
                "ExposedPorts": { "80/tcp": {}, "53/udp": {} },
                "Volumes": { "/data": {} },
                "ArgsEscaped": true
              },
              "rootfs": { "type": "layers", "diff_ids": ["{{D1}}", "{{D2}}"] },
              "history": [
                { "created": "2024-03-04T05:06:07Z", "created_by": "ADD x /", "comment": "c" },
                { "created_by": "ENV A=b", "empty_layer": true }
              ]
            }
            """;
        var config = ImageConfig.Parse(B(json));
        Assert.Equal("arm64", config.Architecture);
        Assert.Equal(new Platform("linux", "arm64", "v8"), config.Platform);
        Assert.Equal(new DateTimeOffset(2024, 3, 4, 5, 6, 7, TimeSpan.Zero).AddTicks(1234567), config.Created);
        Assert.Equal("someone", config.Author);
        Assert.Equal("1000:1000", config.Config.User);
        Assert.Equal(["PATH=/usr/bin", "A=b=c"], config.Config.Env);
        Assert.Equal(["/bin/sh", "-c"], config.Config.Entrypoint);
        Assert.Equal(["echo hi"], config.Config.Cmd);
        Assert.Equal("/app", config.Config.WorkingDir);
        Assert.Equal("v1", config.Config.Labels["l1"]);
        Assert.False(config.Config.Labels.ContainsKey("l2"));
        Assert.Equal("SIGQUIT", config.Config.StopSignal);
        Assert.Equal(["80/tcp", "53/udp"], config.Config.ExposedPorts);
        Assert.Equal(["/data"], config.Config.Volumes);
        Assert.True(config.Config.ArgsEscaped);
        Assert.Equal("layers", config.RootFs.Type);
        Assert.Equal([Digest.Parse(D1), Digest.Parse(D2)], config.DiffIds);
        Assert.Equal(2, config.History.Count);
        Assert.Equal("ADD x /", config.History[0].CreatedBy);
        Assert.Null(config.History[1].Created);
        Assert.True(config.History[1].EmptyLayer);

        var runtime = config.RuntimeConfig;
        Assert.Equal("/app", runtime.WorkingDir);
        Assert.Equal(["echo hi"], runtime.Cmd);
        Assert.Equal(["/data"], runtime.Volumes);
    }

    [Fact]
    public void MinimalConfigHasDefaults()
    {
        var config = ImageConfig.Parse(B("""{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Cmd":null}}"""));
        Assert.Null(config.Config.Cmd);
        Assert.Null(config.Config.Entrypoint);
        Assert.Empty(config.Config.Env);
        Assert.Empty(config.DiffIds);
        Assert.Null(config.Created);
        Assert.Null(config.Platform);
    }

    [Fact]
    public void ConfigWithoutLayersRootfsIsRejected()
    {
        Assert.Throws<ManifestException>(() => ImageConfig.Parse(B("""{"os":"linux"}""")));
        Assert.Throws<ManifestException>(() => ImageConfig.Parse(B("""{"rootfs":{"type":"other","diff_ids":[]}}""")));
        Assert.Throws<ManifestException>(() => ImageConfig.Parse(B("""{"rootfs":{"type":"layers","diff_ids":["nope"]}}""")));
    }
}
