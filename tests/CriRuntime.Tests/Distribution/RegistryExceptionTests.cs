using System.Net;
using CriRuntime.Images.Distribution;
using Xunit;

namespace CriRuntime.Tests.Distribution;

public class RegistryExceptionTests
{
    private static readonly Uri Endpoint = new("https://registry-1.docker.io/v2");

    [Theory]
    [InlineData(404, """{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"latest"}}]}""", RegistryErrorKind.NotFound, "MANIFEST_UNKNOWN")]
    [InlineData(404, """{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}""", RegistryErrorKind.NotFound, "NAME_UNKNOWN")]
    [InlineData(401, """{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}""", RegistryErrorKind.Unauthorized, "UNAUTHORIZED")]
    [InlineData(403, """{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}""", RegistryErrorKind.Denied, "DENIED")]
    [InlineData(429, """{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}""", RegistryErrorKind.TooManyRequests, "TOOMANYREQUESTS")]
    [InlineData(400, """{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}""", RegistryErrorKind.Invalid, "MANIFEST_INVALID")]
    [InlineData(502, "<html><body>Bad gateway</body></html>", RegistryErrorKind.Unavailable, null)]
    [InlineData(503, "", RegistryErrorKind.Unavailable, null)]
    [InlineData(404, "not json", RegistryErrorKind.NotFound, null)]
    [InlineData(403, "", RegistryErrorKind.Denied, null)]
    [InlineData(418, "{}", RegistryErrorKind.Other, null)]
    public void Classifies(int status, string body, RegistryErrorKind kind, string? code)
    {
        var e = RegistryException.FromStatus((HttpStatusCode)status, body, "image docker.io/library/x:1", Endpoint);
        Assert.Equal(kind, e.Kind);
        Assert.Equal(code, e.ErrorCode);
        Assert.Equal((HttpStatusCode)status, e.StatusCode);
        Assert.Equal(Endpoint, e.Endpoint);
        Assert.Contains("image docker.io/library/x:1", e.Message);
        Assert.Contains(Endpoint.ToString(), e.Message);
        Assert.DoesNotContain("<html>", e.Message);
    }

    [Fact]
    public void NotFoundMessage()
    {
        var e = RegistryException.FromStatus(HttpStatusCode.NotFound, """{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}""",
            "image docker.io/library/nosuch:latest", Endpoint);
        Assert.StartsWith("image docker.io/library/nosuch:latest not found on https://registry-1.docker.io/v2: manifest unknown", e.Message);
        Assert.Equal("manifest unknown (HTTP 404)", e.Detail);
    }

    [Fact]
    public void SeveralErrorsAreAllReported()
    {
        var e = RegistryException.FromStatus(HttpStatusCode.Forbidden,
            """{"errors":[{"code":"DENIED","message":"first"},{"code":"UNKNOWN","message":"second"}]}""", "image x", Endpoint);
        Assert.Contains("first; second", e.Message);
    }
}
