using CriRuntime.Images.Distribution;
using Xunit;

namespace CriRuntime.Tests.Distribution;

public class AuthChallengeTests
{
    [Fact]
    public void DockerHubBearer()
    {
        var c = Assert.Single(AuthChallenge.Parse(
            "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\""));
        Assert.Equal("bearer", c.Scheme);
        Assert.Equal("https://auth.docker.io/token", c["realm"]);
        Assert.Equal("registry.docker.io", c["service"]);
        Assert.Equal("repository:library/busybox:pull", c["scope"]);
        Assert.Null(c["error"]);
    }

    [Fact]
    public void CommasAndEscapesInsideQuotes()
    {
        var c = Assert.Single(AuthChallenge.Parse(
            "Bearer realm=\"https://r.example/token?a=1,b=2\", scope=\"repository:a/b:pull,push repository:c:pull\", error=\"say \\\"hi\\\"\""));
        Assert.Equal("https://r.example/token?a=1,b=2", c["realm"]);
        Assert.Equal("repository:a/b:pull,push repository:c:pull", c["scope"]);
        Assert.Equal("say \"hi\"", c["error"]);
    }

    [Fact]
    public void SeveralChallengesInOneHeaderBearerFirst()
    {
        var list = AuthChallenge.Parse("Basic realm=\"Registry Realm\", Bearer realm=\"https://auth.example/token\",service=\"svc\" , Negotiate");
        Assert.Equal(["bearer", "basic", "negotiate"], list.Select(c => c.Scheme));
        Assert.Equal("https://auth.example/token", list[0]["realm"]);
        Assert.Equal("svc", list[0]["service"]);
        Assert.Equal("Registry Realm", list[1]["realm"]);
        Assert.Empty(list[2].Parameters);
    }

    [Fact]
    public void SeveralHeaderValues()
    {
        var list = AuthChallenge.Parse(["basic realm=x", "BEARER Realm=\"https://a/token\", Service=s"]);
        Assert.Equal(["bearer", "basic"], list.Select(c => c.Scheme));
        Assert.Equal("https://a/token", list[0]["realm"]);
        Assert.Equal("s", list[0]["service"]);
        Assert.Equal("x", list[1]["realm"]);
    }

    [Fact]
    public void UnquotedUrlValuesAndSpacesAroundEquals()
    {
        var c = Assert.Single(AuthChallenge.Parse("Bearer realm = https://a.example:8443/token , service = reg"));
        Assert.Equal("https://a.example:8443/token", c["realm"]);
        Assert.Equal("reg", c["service"]);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" , ,")]
    [InlineData("=\"x\"")]
    [InlineData("Bearer realm=\"unterminated")]
    public void MalformedHeadersDoNotThrowOrLoop(string header)
    {
        var list = AuthChallenge.Parse(header);
        Assert.True(list.Count <= 1);
    }
}
