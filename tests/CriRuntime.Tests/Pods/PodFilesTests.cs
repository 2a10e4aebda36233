using CriRuntime.Native;
using CriRuntime.Pods;
using CriRuntime.Tests.Storage;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Pods;

public sealed class PodFilesTests : IDisposable
{
    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Fact]
    public void ResolvConf_from_dns_config_follows_containerd()
    {
        var dns = new DNSConfig
        {
            Servers = { "10.96.0.10", "fd00::10" },
            Searches = { "default.svc.cluster.local", "svc.cluster.local", "cluster.local" },
            Options = { "ndots:5", "edns0" },
        };
        Assert.Equal(
            "search default.svc.cluster.local svc.cluster.local cluster.local\n" +
            "nameserver 10.96.0.10\n" +
            "nameserver fd00::10\n" +
            "options ndots:5 edns0\n",
            PodFiles.ResolvConf(dns, tmp["absent"]));
        Assert.Equal("nameserver 1.1.1.1\n", PodFiles.ResolvConf(new DNSConfig { Servers = { "1.1.1.1" } }, tmp["absent"]));
    }

    [Fact]
    public void Null_or_empty_dns_config_copies_the_hosts_file()
    {
        string host = tmp["host-resolv.conf"];
        File.WriteAllText(host, "# node\nnameserver 192.0.2.53\nsearch example.org\n");
        Assert.Equal(File.ReadAllText(host), PodFiles.ResolvConf(null, host));
        Assert.Equal(File.ReadAllText(host), PodFiles.ResolvConf(new DNSConfig(), host));
        var e = Assert.Throws<FileNotFoundException>(() => PodFiles.ResolvConf(null, tmp["missing"]));
        Assert.Contains("dns_config", e.Message);
    }

    [Theory]
    [InlineData("servers", "10.0.0.1\nnameserver 6.6.6.6")]
    [InlineData("servers", "dns.example.com")]
    [InlineData("servers", "10.1")]
    [InlineData("searches", "cluster.local\noptions debug")]
    [InlineData("searches", "a b")]
    [InlineData("searches", "")]
    [InlineData("options", "ndots:5\nnameserver 6.6.6.6")]
    [InlineData("options", "ndots: 5")]
    public void Dns_entries_that_would_inject_lines_are_refused(string field, string value)
    {
        var dns = new DNSConfig();
        (field switch { "servers" => dns.Servers, "searches" => dns.Searches, _ => dns.Options }).Add(value);
        var e = Assert.Throws<InvalidArgumentException>(() => PodFiles.ResolvConf(dns));
        Assert.Contains($"dns_config.{field}", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void Hosts_has_localhost_ipv6_names_and_the_pod()
    {
        const string Base =
            "127.0.0.1\tlocalhost\n" +
            "::1\tlocalhost ip6-localhost ip6-loopback\n" +
            "fe00::0\tip6-localnet\n" +
            "ff00::0\tip6-mcastprefix\n" +
            "ff02::1\tip6-allnodes\n" +
            "ff02::2\tip6-allrouters\n";
        Assert.Equal(Base, PodFiles.Hosts("web-0", null));
        Assert.Equal(Base + "10.88.0.5\tweb-0\n", PodFiles.Hosts("web-0", "10.88.0.5"));
        Assert.Equal(Base + "fd00::5\tweb-0\n", PodFiles.Hosts("web-0", "fd00::5"));
    }

    [Theory]
    [InlineData("web\n10.0.0.1 evil", null, "hostname")]
    [InlineData("", null, "hostname")]
    [InlineData("web", "10.0.0.5\n1.2.3.4 x", "podIp")]
    [InlineData("web", "not-an-ip", "podIp")]
    public void Hosts_refuses_bad_input(string hostname, string? podIp, string param)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => PodFiles.Hosts(hostname, podIp));
        Assert.Equal(param, e.ParamName);
    }

    [Fact]
    public void WriteAll_writes_three_files_0644()
    {
        string dir = tmp["pod"];
        Directory.CreateDirectory(dir);
        PodFiles.WriteAll(dir, "web-0", new DNSConfig { Servers = { "10.96.0.10" } }, "10.88.0.5");

        Assert.Equal("web-0\n", File.ReadAllText(Path.Combine(dir, "hostname")));
        Assert.EndsWith("10.88.0.5\tweb-0\n", File.ReadAllText(Path.Combine(dir, "hosts")));
        Assert.Equal("nameserver 10.96.0.10\n", File.ReadAllText(Path.Combine(dir, "resolv.conf")));
        foreach (var name in new[] { "hostname", "hosts", "resolv.conf" })
        {
            var st = Files.Lstat(Path.Combine(dir, name));
            Assert.Equal(FileType.RegularFile, st.Type);
            Assert.Equal(Convert.ToInt32("644", 8), st.Permissions);
        }
        Assert.Equal(3, Directory.GetFileSystemEntries(dir).Length); // no temp files left

        // Rewriting (the pod IP became known later) replaces the files.
        PodFiles.WriteAll(dir, "web-0", new DNSConfig { Servers = { "10.96.0.10" } }, "10.88.0.6");
        Assert.EndsWith("10.88.0.6\tweb-0\n", File.ReadAllText(Path.Combine(dir, "hosts")));
    }

    [Fact]
    public void WriteAll_without_dns_config_copies_the_given_host_file()
    {
        string dir = tmp["nodns"], host = tmp["host-resolv"];
        Directory.CreateDirectory(dir);
        File.WriteAllText(host, "nameserver 192.0.2.1\n");
        PodFiles.WriteAll(dir, "web-0", null, null, host);
        Assert.Equal("nameserver 192.0.2.1\n", File.ReadAllText(Path.Combine(dir, "resolv.conf")));
        Assert.DoesNotContain("web-0", File.ReadAllText(Path.Combine(dir, "hosts"))); // no pod IP yet
    }

    [Fact]
    public void WriteAll_with_bad_dns_writes_nothing()
    {
        string dir = tmp["bad"];
        Directory.CreateDirectory(dir);
        Assert.Throws<InvalidArgumentException>(() => PodFiles.WriteAll(dir, "web-0", new DNSConfig { Searches = { "x\ny" } }));
        Assert.Empty(Directory.GetFileSystemEntries(dir));
    }

    [Fact]
    public void Shm_is_a_sized_tmpfs_with_safe_options_and_unmounts_idempotently()
    {
        string shm = tmp["pod/shm"];
        PodFiles.MountShm(shm, 1024 * 1024);
        try
        {
            var mount = Mounts.ReadMountInfo().Last(m => m.MountPoint == shm);
            Assert.Equal("tmpfs", mount.FsType);
            Assert.Equal("shm", mount.Source);
            var options = mount.MountOptions.Split(',');
            Assert.Contains("nosuid", options);
            Assert.Contains("nodev", options);
            Assert.Contains("noexec", options);
            Assert.Contains("size=1024k", mount.SuperOptions.Split(','));
            // tmpfs shows mode= only when it differs from its default 1777, so read it from the root itself.
            Assert.Equal(Convert.ToInt32("1777", 8), Files.Lstat(shm).Permissions);

            // The size is enforced.
            var e = Assert.ThrowsAny<IOException>(() => File.WriteAllBytes(Path.Combine(shm, "big"), new byte[2 * 1024 * 1024]));
            Assert.Contains("space", e.Message, StringComparison.OrdinalIgnoreCase);

            Assert.Throws<InvalidOperationException>(() => PodFiles.MountShm(shm)); // never stacked
        }
        finally
        {
            PodFiles.UnmountShm(shm);
        }
        Assert.False(Mounts.IsMountPoint(shm));
        Assert.True(Directory.Exists(shm));
        PodFiles.UnmountShm(shm);               // idempotent
        PodFiles.UnmountShm(tmp["never"]);      // missing is fine

        PodFiles.MountShm(shm);                 // default 64 MiB
        try
        {
            Assert.Contains("size=65536k", Mounts.ReadMountInfo().Last(m => m.MountPoint == shm).SuperOptions.Split(','));
        }
        finally
        {
            PodFiles.UnmountShm(shm);
        }
    }
}
