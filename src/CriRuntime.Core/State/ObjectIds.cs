using System.Security.Cryptography;

namespace CriRuntime.State;

/// <summary>Ids of pods and containers: 64 lowercase hex digits, as containerd makes them.</summary>
public static class ObjectIds
{
    public static string New() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
}
