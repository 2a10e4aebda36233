using System.Text;

namespace CriRuntime.Containers;

/// <summary>
/// ExecSync's cmd under the kernel's bounds that <see cref="ContainerConfigLimits"/> puts on a container's argv,
/// checked before the runtime is spawned: past them execve fails with E2BIG and the call answered UNKNOWN.
/// </summary>
public static class ExecCommandLimits
{
    public static void Validate(IReadOnlyList<string> cmd)
    {
        long total = 0;
        for (int i = 0; i < cmd.Count; i++)
        {
            // +1: the NUL that ends each argument on the new process's stack.
            int bytes = Encoding.UTF8.GetByteCount(cmd[i]) + 1;
            if (bytes > ContainerConfigLimits.MaxArgBytes)
                throw new InvalidArgumentException($"cmd[{i}] is {bytes} bytes; the kernel's limit for one argument is {ContainerConfigLimits.MaxArgBytes}");
            total += bytes;
        }
        if (total > ContainerConfigLimits.MaxArgvEnvBytes)
            throw new InvalidArgumentException(
                $"cmd is {total} bytes together, more than the {ContainerConfigLimits.MaxArgvEnvBytes} allowed; pass large data in a file");
    }
}
