using System.Net;
using System.Text;
using CriRuntime.Native;
using CriRuntime.Storage;
using Runtime.V1;

namespace CriRuntime.Pods;

/// <summary>
/// The per-pod files every container of a pod bind-mounts: /etc/hostname, /etc/hosts, /etc/resolv.conf,
/// and the pod's /dev/shm tmpfs (what containerd's CRI sets up in setupSandboxFiles).
/// </summary>
public static class PodFiles
{
    public const string HostnameFile = "hostname", HostsFile = "hosts", ResolvConfFile = "resolv.conf";

    /// <summary>containerd's default pod /dev/shm size.</summary>
    public const long DefaultShmSize = 64L * 1024 * 1024;

    private const int FileMode = 0x1A4; // 0644

    /// <summary>
    /// resolv.conf text from the CRI DNSConfig, in containerd's order: one search line, one nameserver line
    /// per server, one options line. A null or empty DNSConfig means "the node's DNS": the content of
    /// <paramref name="hostResolvConf"/>.
    /// </summary>
    public static string ResolvConf(DNSConfig? dns, string hostResolvConf = "/etc/resolv.conf")
    {
        if (dns is null || (dns.Servers.Count == 0 && dns.Searches.Count == 0 && dns.Options.Count == 0))
        {
            try { return File.ReadAllText(hostResolvConf); }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                throw new FileNotFoundException(
                    $"the pod has no DNS config, so the node's {hostResolvConf} is used, but it does not exist; create it or set dns_config", hostResolvConf, e);
            }
        }
        Validate(dns);
        var text = new StringBuilder();
        if (dns.Searches.Count > 0) text.Append("search ").AppendJoin(' ', dns.Searches).Append('\n');
        foreach (var server in dns.Servers) text.Append("nameserver ").Append(server).Append('\n');
        if (dns.Options.Count > 0) text.Append("options ").AppendJoin(' ', dns.Options).Append('\n');
        return text.ToString();
    }

    /// <summary>
    /// /etc/hosts for a pod: the localhost and IPv6 well-known names Docker and containerd containers get,
    /// plus "&lt;podIp&gt; &lt;hostname&gt;" when the pod IP is known.
    /// </summary>
    public static string Hosts(string hostname, string? podIp)
    {
        Namespaces.ValidateHostname(hostname, nameof(hostname));
        var text = new StringBuilder()
            .Append("127.0.0.1\tlocalhost\n")
            .Append("::1\tlocalhost ip6-localhost ip6-loopback\n")
            .Append("fe00::0\tip6-localnet\n")
            .Append("ff00::0\tip6-mcastprefix\n")
            .Append("ff02::1\tip6-allnodes\n")
            .Append("ff02::2\tip6-allrouters\n");
        if (!string.IsNullOrEmpty(podIp))
        {
            if (!IsIpAddress(podIp) || podIp.Contains('%'))
                throw new InvalidArgumentException($"podIp '{Namespaces.Printable(podIp)}' is not an IP address", nameof(podIp));
            text.Append(podIp).Append('\t').Append(hostname).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>
    /// Writes &lt;dir&gt;/hostname, &lt;dir&gt;/hosts and &lt;dir&gt;/resolv.conf, each mode 0644 and replaced
    /// atomically. Everything is validated before the first file is written.
    /// </summary>
    public static void WriteAll(string dir, string hostname, DNSConfig? dns, string? podIp = null) =>
        WriteAll(dir, hostname, dns, podIp, "/etc/resolv.conf");

    /// <summary>As above, copying <paramref name="hostResolvConf"/> when the pod has no DNS config.</summary>
    public static void WriteAll(string dir, string hostname, DNSConfig? dns, string? podIp, string hostResolvConf)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        string hosts = Hosts(hostname, podIp);
        string resolv = ResolvConf(dns, hostResolvConf);
        Write(Path.Combine(dir, HostnameFile), hostname + "\n");
        Write(Path.Combine(dir, HostsFile), hosts);
        Write(Path.Combine(dir, ResolvConfFile), resolv);
    }

    /// <summary>
    /// A per-pod /dev/shm: tmpfs "shm" mounted on <paramref name="path"/> (created if missing) with
    /// nosuid,nodev,noexec,mode=1777,size=<paramref name="sizeBytes"/>, as containerd does. Refuses a path
    /// that already is a mount point rather than stacking a second tmpfs on it.
    /// </summary>
    public static void MountShm(string path, long sizeBytes = DefaultShmSize)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (sizeBytes <= 0) throw new ArgumentOutOfRangeException(nameof(sizeBytes), sizeBytes, "shm size must be positive");
        bool created = !Directory.Exists(path);
        if (!created && Mounts.IsMountPoint(path))
            throw new InvalidOperationException($"{path} is already a mount point; UnmountShm it before mounting a new /dev/shm");
        Directory.CreateDirectory(path);
        try
        {
            Mounts.Mount("shm", path, "tmpfs", MountFlags.NoSuid | MountFlags.NoDev | MountFlags.NoExec, $"mode=1777,size={sizeBytes}");
        }
        catch
        {
            if (created) RemoveDirectoryIfEmpty(path);
            throw;
        }
    }

    /// <summary>Unmounts the pod's /dev/shm (every layer, lazily if busy). Idempotent; the directory stays.</summary>
    public static void UnmountShm(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        for (int layer = 0; ; layer++)
        {
            int errno = Mounts.TryUnmount(path, UnmountFlags.Detach | UnmountFlags.NoFollow);
            if (errno is Errno.EINVAL or Errno.ENOENT) return;  // not (or no longer) a mount point
            if (errno != 0) throw new NativeException("umount2", path, errno, "unmount pod shm: umount2");
            if (layer > 64) throw new IOException($"unmount pod shm {path}: still mounted after {layer} unmounts");
        }
    }

    private static void Write(string path, string content)
    {
        // The containers' readers (any uid) need exactly 0644.
        AtomicFile.WriteAllBytes(path, Encoding.UTF8.GetBytes(content), (UnixFileMode)FileMode);
    }

    private static void Validate(DNSConfig dns)
    {
        foreach (var server in dns.Servers)
        {
            if (!IsIpAddress(server))
                throw new InvalidArgumentException($"dns_config.servers entry '{Namespaces.Printable(server)}' is not an IP address", nameof(dns));
        }
        foreach (var search in dns.Searches)
        {
            if (search.Length == 0 || HasSpaceOrControl(search) || search.IndexOfAny(['#', ';']) >= 0)
                throw new InvalidArgumentException(
                    $"dns_config.searches entry '{Namespaces.Printable(search)}' must be a non-empty domain without spaces, newlines or comment characters", nameof(dns));
        }
        foreach (var option in dns.Options)
        {
            if (option.Length == 0 || HasSpaceOrControl(option) || option.IndexOfAny(['#', ';']) >= 0)
                throw new InvalidArgumentException(
                    $"dns_config.options entry '{Namespaces.Printable(option)}' must be a single word like ndots:5, without spaces or newlines", nameof(dns));
        }
    }

    /// <summary>An IPv4 dotted quad or an IPv6 address; IPAddress alone would also take "1" or "1.2" and mean 0.0.0.1.</summary>
    private static bool IsIpAddress(string s) =>
        !HasSpaceOrControl(s) && IPAddress.TryParse(s, out var address) &&
        (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || s.Count(c => c == '.') == 3);

    private static bool HasSpaceOrControl(string s) => s.Any(c => char.IsWhiteSpace(c) || char.IsControl(c));

    private static void RemoveDirectoryIfEmpty(string path)
    {
        try { Directory.Delete(path, recursive: false); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
