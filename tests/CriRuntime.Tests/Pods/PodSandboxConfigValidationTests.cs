using CriRuntime.Pods;
using Runtime.V1;
using Xunit;

namespace CriRuntime.Tests.Pods;

public sealed class PodSandboxConfigValidationTests
{
    private static PodSandboxConfig Config(Action<PodSandboxConfig>? configure = null)
    {
        var config = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = "web-0", Namespace = "default", Uid = "3f1c1b4e-8a3b-4f5e-9d2a-0c6b1e2f3a4b" },
            LogDirectory = "/var/log/pods/default_web-0_3f1c1b4e",
            Linux = new LinuxPodSandboxConfig
            {
                CgroupParent = "/kubepods/besteffort/pod3f1c1b4e",
                SecurityContext = new LinuxSandboxSecurityContext { NamespaceOptions = new NamespaceOption() },
            },
        };
        configure?.Invoke(config);
        return config;
    }

    private static InvalidArgumentException Refused(PodSandboxConfig config) =>
        Assert.Throws<InvalidArgumentException>(() => PodSandboxConfigValidation.Validate(config));

    [Fact]
    public void Kubelet_crictl_and_critest_metadata_is_accepted()
    {
        PodSandboxConfigValidation.Validate(Config());
        // critest: podsandbox-<uuid> names, arbitrary uids; crictl examples: free-form uids.
        PodSandboxConfigValidation.Validate(Config(c => c.Metadata = new PodSandboxMetadata
            { Name = "podsandbox-for-test-6f3e2c1a-2b7d", Namespace = "podsandbox-namespace", Uid = "hdishd83djaidwnduwk28bcsb", Attempt = 3 }));
        PodSandboxConfigValidation.Validate(Config(c => c.Metadata.Name = new string('n', PodSandboxConfigValidation.MaxMetadataChars)));
    }

    [Theory]
    [InlineData("name")]
    [InlineData("namespace")]
    [InlineData("uid")]
    public void Oversized_or_ill_formed_metadata_is_refused_naming_the_field(string field)
    {
        foreach (var bad in new[] { new string('x', 1024 * 1024), new string('x', 254), "a/b", "a\0b", "a\nb", "a;IgnoreUnknown=1", "k=v" })
        {
            var e = Refused(Config(c =>
            {
                if (field == "name") c.Metadata.Name = bad;
                else if (field == "namespace") c.Metadata.Namespace = bad;
                else c.Metadata.Uid = bad;
            }));
            Assert.Contains($"config.metadata.{field}", e.Message);
            Assert.True(e.Message.Length < 1024, $"the message for a {bad.Length}-character {field} is {e.Message.Length} characters");
        }
    }

    [Fact]
    public void A_log_directory_that_is_a_file_or_relative_is_refused()
    {
        var device = Refused(Config(c => c.LogDirectory = "/dev/null"));
        Assert.Contains("config.log_directory", device.Message);
        Assert.Contains("not a directory", device.Message);

        string file = Path.GetTempFileName();
        try
        {
            Assert.Contains("not a directory", Refused(Config(c => c.LogDirectory = file)).Message);
        }
        finally
        {
            File.Delete(file);
        }
        Assert.Contains("relative", Refused(Config(c => c.LogDirectory = "logs/pod")).Message);
        Assert.Contains("config.log_directory", Refused(Config(c => c.LogDirectory = "/" + new string('l', 5000))).Message);

        // An existing directory, one that does not exist yet, and none at all are fine.
        PodSandboxConfigValidation.Validate(Config(c => c.LogDirectory = Path.GetTempPath()));
        PodSandboxConfigValidation.Validate(Config(c => c.LogDirectory = "/nonexistent/criruntime/logs"));
        PodSandboxConfigValidation.Validate(Config(c => c.LogDirectory = ""));
    }

    [Fact]
    public void Cgroup_parents_too_long_for_the_kernel_are_refused()
    {
        Assert.Contains("config.linux.cgroup_parent", Refused(Config(c => c.Linux.CgroupParent = "/" + new string('c', 256))).Message);
        Assert.Contains("config.linux.cgroup_parent", Refused(Config(c => c.Linux.CgroupParent = string.Concat(Enumerable.Repeat("/dd", 1000)))).Message);
        Assert.Contains("config.linux.cgroup_parent", Refused(Config(c => c.Linux.CgroupParent = "/a\nb")).Message);
        PodSandboxConfigValidation.Validate(Config(c => c.Linux.CgroupParent = string.Concat(Enumerable.Repeat("/d", 59))));
        PodSandboxConfigValidation.Validate(Config(c => c.Linux.CgroupParent = "/" + new string('c', 255)));
    }

    [Theory]
    [InlineData("net.ipv4.ip_forward")]
    [InlineData("net.core.somaxconn")]
    [InlineData("net/ipv4/ip_local_port_range")]
    [InlineData("net/ipv4/conf/eth0.100/forwarding")]
    [InlineData("kernel.shm_rmid_forced")]
    [InlineData("kernel.shmmax")]
    [InlineData("kernel.shmall")]
    [InlineData("kernel.shmmni")]
    [InlineData("kernel.msgmax")]
    [InlineData("kernel.msgmnb")]
    [InlineData("kernel.msgmni")]
    [InlineData("kernel.sem")]
    [InlineData("fs.mqueue.msg_max")]
    public void Namespaced_sysctls_are_accepted_for_a_pod_with_its_own_namespaces(string name) =>
        PodSandboxConfigValidation.Validate(Config(c => c.Linux.Sysctls[name] = "1"));

    [Theory]
    [InlineData("kernel.panic", "not namespaced")]
    [InlineData("vm.swappiness", "not namespaced")]
    [InlineData("kernel.shm", "not namespaced")]
    [InlineData("../x", "empty level")]
    [InlineData("net/../../kernel/panic", "empty level")]
    [InlineData("net..ipv4", "empty level")]
    [InlineData("net.ipv4.", "empty level")]
    [InlineData("", "1 to 256")]
    [InlineData("net.ipv4 ip_forward", "contains")]
    [InlineData("net.ipv4\nip_forward", "contains")]
    public void Sysctls_that_could_only_fail_later_are_refused_naming_the_sysctl(string name, string why)
    {
        var e = Refused(Config(c => c.Linux.Sysctls[name] = "1"));
        Assert.Contains("config.linux.sysctls[", e.Message);
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void Net_sysctls_need_the_pods_own_network_and_ipc_ones_its_own_ipc_namespace()
    {
        var hostNetwork = Refused(Config(c =>
        {
            c.Linux.SecurityContext.NamespaceOptions.Network = NamespaceMode.Node;
            c.Linux.Sysctls["net.ipv4.ip_forward"] = "1";
        }));
        Assert.Contains("net.ipv4.ip_forward", hostNetwork.Message);
        Assert.Contains("network", hostNetwork.Message);

        var hostIpc = Refused(Config(c =>
        {
            c.Linux.SecurityContext.NamespaceOptions.Ipc = NamespaceMode.Node;
            c.Linux.Sysctls["kernel.shmmax"] = "1";
        }));
        Assert.Contains("kernel.shmmax", hostIpc.Message);
        Assert.Contains("IPC", hostIpc.Message);

        // Host IPC does not stop net.*, nor host network the IPC ones.
        PodSandboxConfigValidation.Validate(Config(c =>
        {
            c.Linux.SecurityContext.NamespaceOptions.Ipc = NamespaceMode.Node;
            c.Linux.Sysctls["net.core.somaxconn"] = "1024";
        }));
        PodSandboxConfigValidation.Validate(Config(c =>
        {
            c.Linux.SecurityContext.NamespaceOptions.Network = NamespaceMode.Node;
            c.Linux.Sysctls["fs.mqueue.msg_max"] = "20";
        }));
    }

    [Fact]
    public void Sysctl_values_and_counts_are_bounded()
    {
        Assert.Contains("value", Refused(Config(c => c.Linux.Sysctls["net.core.somaxconn"] = new string('1', 5000))).Message);
        Assert.Contains("value", Refused(Config(c => c.Linux.Sysctls["net.core.somaxconn"] = "1\n2")).Message);
        Assert.Contains("entries", Refused(Config(c =>
        {
            for (int i = 0; i < 2000; i++) c.Linux.Sysctls[$"net.ipv4.x{i}"] = "1";
        })).Message);
        // kernel.sem takes several numbers separated by spaces.
        PodSandboxConfigValidation.Validate(Config(c => c.Linux.Sysctls["kernel.sem"] = "250 32000 32 128"));
    }

    [Theory]
    [InlineData("net.ipv4.ip_forward", "net.ipv4.ip_forward")]
    [InlineData("net/ipv4/ip_forward", "net.ipv4.ip_forward")]
    [InlineData("net/ipv4/conf/eno2.100/rp_filter", "net.ipv4.conf.eno2/100.rp_filter")]
    [InlineData("net.ipv4.conf.eno2/100.rp_filter", "net.ipv4.conf.eno2/100.rp_filter")]
    [InlineData("kernel", "kernel")]
    public void Slash_separated_names_convert_as_the_kubelet_converts_them(string name, string dotted) =>
        Assert.Equal(dotted, PodSandboxConfigValidation.ToDotSeparated(name));
}
