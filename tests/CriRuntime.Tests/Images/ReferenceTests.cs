using CriRuntime.Images;
using Xunit;
using CriRuntime.Content;

namespace CriRuntime.Tests.Images.Reference;

public class ReferenceTests
{
    private const string Hex = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";
    private const string Sha = "sha256:" + Hex;

    [Theory]
    [InlineData("busybox", "docker.io", "library/busybox", "latest", null)]
    [InlineData("busybox:1.36", "docker.io", "library/busybox", "1.36", null)]
    [InlineData("user/app", "docker.io", "user/app", "latest", null)]
    [InlineData("user/app:v1", "docker.io", "user/app", "v1", null)]
    [InlineData("docker.io/busybox", "docker.io", "library/busybox", "latest", null)]
    [InlineData("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", null)]
    [InlineData("index.docker.io/busybox", "docker.io", "library/busybox", "latest", null)]
    [InlineData("index.docker.io/user/app:x", "docker.io", "user/app", "x", null)]
    [InlineData("registry-1.docker.io/library/nginx", "docker.io", "library/nginx", "latest", null)]
    [InlineData("registry-1.docker.io/nginx", "docker.io", "library/nginx", "latest", null)]
    [InlineData("quay.io/coreos/etcd:v3.5", "quay.io", "coreos/etcd", "v3.5", null)]
    [InlineData("registry.k8s.io/pause:3.10", "registry.k8s.io", "pause", "3.10", null)]
    [InlineData("gcr.io/a/b/c/d:tag", "gcr.io", "a/b/c/d", "tag", null)]
    [InlineData("localhost/app", "localhost", "app", "latest", null)]
    [InlineData("localhost:5000/app:dev", "localhost:5000", "app", "dev", null)]
    [InlineData("127.0.0.1:5000/foo:1", "127.0.0.1:5000", "foo", "1", null)]
    [InlineData("myregistry:5000/foo", "myregistry:5000", "foo", "latest", null)]
    [InlineData("[::1]:5000/foo:bar", "[::1]:5000", "foo", "bar", null)]
    [InlineData("[2001:db8::1]/foo", "[2001:db8::1]", "foo", "latest", null)]
    [InlineData("My.Registry.example/app", "My.Registry.example", "app", "latest", null)]
    [InlineData("localhost:5000", "docker.io", "library/localhost", "5000", null)]
    [InlineData("busybox@" + Sha, "docker.io", "library/busybox", null, Sha)]
    [InlineData("busybox:1.36@" + Sha, "docker.io", "library/busybox", "1.36", Sha)]
    [InlineData("127.0.0.1:5000/a/b@" + Sha, "127.0.0.1:5000", "a/b", null, Sha)]
    [InlineData("a.b/c_d/e__f/g-h/i.j/k---l", "a.b", "c_d/e__f/g-h/i.j/k---l", "latest", null)]
    [InlineData("foo:A_b.C-9", "docker.io", "library/foo", "A_b.C-9", null)]
    [InlineData("foo:_tag", "docker.io", "library/foo", "_tag", null)]
    [InlineData("0/1", "docker.io", "0/1", "latest", null)]
    public void ParsesAndNormalizes(string text, string registry, string repository, string? tag, string? digest)
    {
        var reference = ImageReference.Parse(text);
        Assert.Equal(registry, reference.Registry);
        Assert.Equal(repository, reference.Repository);
        Assert.Equal(tag, reference.Tag);
        Assert.Equal(digest, reference.Digest?.ToString());

        Assert.True(ImageReference.TryParse(text, out var again, out var error));
        Assert.Null(error);
        Assert.Equal(reference, again);

        // The normalized form is itself a reference that parses to the same thing.
        Assert.Equal(reference, ImageReference.Parse(reference.ToString()));
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData(" busybox", "whitespace")]
    [InlineData("busy box", "whitespace")]
    [InlineData(Hex, "image id")]
    [InlineData(Sha, "image id")]
    [InlineData("Busybox", "must be lowercase")]
    [InlineData("Busybox", "did you mean 'busybox'")]
    [InlineData("User/App:v1", "must be lowercase")]
    [InlineData("quay.io/CoreOS/etcd", "must be lowercase")]
    [InlineData("busybox:", "nothing follows ':'")]
    [InlineData(":tag", "repository name before ':' is missing")]
    [InlineData("busybox@", "nothing follows '@'")]
    [InlineData("@" + Sha, "repository name before '@' is missing")]
    [InlineData("busybox@sha256:abc", "not a valid digest")]
    [InlineData("busybox@md5:d41d8cd98f00b204e9800998ecf8427e", "not a valid digest")]
    [InlineData("busybox@" + Sha + "@" + Sha, "more than one '@'")]
    [InlineData("busybox:-tag", "must start with a letter, digit or '_'")]
    [InlineData("busybox:.tag", "must start with a letter, digit or '_'")]
    [InlineData("busybox:ta+g", "contains '+'")]
    [InlineData("foo//bar", "empty path component")]
    [InlineData("foo/", "empty path component")]
    [InlineData("quay.io/", "repository path after 'quay.io/' is missing")]
    [InlineData("-foo", "must start with a lowercase letter or digit")]
    [InlineData("foo-", "must end with a lowercase letter or digit")]
    [InlineData("foo..bar", "separator '..'")]
    [InlineData("foo___bar", "separator '___'")]
    [InlineData("foo._bar", "separator '._'")]
    [InlineData("foo/b$r", "contains '$'")]
    [InlineData("quay.io:99999/foo", "not a number from 0 to 65535")]
    [InlineData("quay.io:/foo", "not a number from 0 to 65535")]
    [InlineData("quay..io/foo", "empty label")]
    [InlineData("-quay.io/foo", "not a valid host name")]
    [InlineData("qu_ay.io/foo", "not a valid host name")]
    [InlineData("[::1/foo", "never closes")]
    [InlineData("[zz]:5000/foo", "not an IPv6 address")]
    [InlineData("[::1]x/foo", "only :port may follow")]
    [InlineData("::1:5000/foo", "IPv6 addresses in brackets")]
    [InlineData(":5000/foo", "no host name before the port")]
    public void RejectsWithAMessageSayingWhatIsWrong(string text, string problem)
    {
        Assert.False(ImageReference.TryParse(text, out var reference, out var error));
        Assert.Null(reference);
        Assert.Contains(problem, error);
        Assert.Contains($"\"{text}\"", error);
        var e = Assert.Throws<InvalidFormatException>(() => ImageReference.Parse(text));
        Assert.Equal(error, e.Message);
    }

    [Fact]
    public void RejectsOverlongTagAndName()
    {
        Assert.NotNull(ImageReference.Parse("foo:" + new string('a', 128)));
        Assert.False(ImageReference.TryParse("foo:" + new string('a', 129), out _, out var tagError));
        Assert.Contains("at most 128", tagError);

        // docker.io/library/ (18 characters) counts: the limit is on the normalized name.
        string longest = new('a', 255 - "docker.io/library/".Length);
        Assert.Equal(255, ImageReference.Parse(longest).Name.Length);
        Assert.False(ImageReference.TryParse(longest + "a", out _, out var nameError));
        Assert.Contains("at most 255", nameError);
    }

    [Fact]
    public void DerivedNamesAndToString()
    {
        var digest = Digest.Parse(Sha);
        var tagged = ImageReference.Parse("busybox:1.36");
        Assert.Equal("docker.io/library/busybox", tagged.Name);
        Assert.Equal("docker.io/library/busybox:1.36", tagged.TagReference);
        Assert.Null(tagged.DigestReference);
        Assert.Equal("docker.io/library/busybox:1.36", tagged.ToString());

        var both = tagged.WithDigest(digest);
        Assert.Equal("1.36", both.Tag);
        Assert.Equal($"docker.io/library/busybox@{Sha}", both.DigestReference);
        Assert.Equal($"docker.io/library/busybox:1.36@{Sha}", both.ToString());
        Assert.Equal(tagged, both.WithoutDigest());

        var digestOnly = ImageReference.Parse("busybox@" + Sha);
        Assert.Null(digestOnly.TagReference);
        Assert.Equal($"docker.io/library/busybox@{Sha}", digestOnly.ToString());
        Assert.Equal("docker.io/library/busybox", digestOnly.WithoutDigest().ToString());
    }

    [Fact]
    public void EqualReferencesCompareEqual()
    {
        Assert.Equal(ImageReference.Parse("busybox"), ImageReference.Parse("docker.io/library/busybox:latest"));
        Assert.Equal(ImageReference.Parse("index.docker.io/library/busybox"), ImageReference.Parse("busybox:latest"));
        Assert.NotEqual(ImageReference.Parse("busybox"), ImageReference.Parse("busybox:1"));
    }
}
