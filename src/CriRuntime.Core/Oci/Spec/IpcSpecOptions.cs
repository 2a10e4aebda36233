using CriRuntime.Native;
using Runtime.V1;

namespace CriRuntime.Oci.Spec;

/// <summary>
/// /dev/shm and /dev/mqueue by the pod's IPC mode. A pod with its own IPC namespace shares one tmpfs among its
/// containers (the pod's shm). A hostIPC pod shares the node's IPC: its containers get the node's /dev/shm bind-mounted,
/// as containerd does, so shared memory that MPI, DPDK or NVIDIA MPS put there on the node is seen, and the node's
/// /dev/mqueue, as CRI-O does, so the POSIX message queues of the IPC namespace it joins are the ones it lists.
/// </summary>
internal static class IpcSpecOptions
{
    public const string DevShm = "/dev/shm";
    public const string DevMqueue = "/dev/mqueue";

    /// <summary>The IPC mounts the container gets unless its CRI mounts name the path themselves.</summary>
    public static IEnumerable<Mount> IpcMounts(ContainerSpecInput input, Func<string, bool> mountedByCri)
    {
        if (input.HostIpc)
        {
            if (!mountedByCri(DevShm)) yield return new Mount { HostPath = DevShm, ContainerPath = DevShm, Readonly = false };
            // Only a real mqueue mount is bound: a missing host path would be created as a directory, and without one the
            // default mqueue mount, made inside the node's IPC namespace, shows the same queues.
            if (!mountedByCri(DevMqueue) && NodeHasMqueueMount()) yield return new Mount { HostPath = DevMqueue, ContainerPath = DevMqueue, Readonly = false };
        }
        else if (input.ShmPath is not null && !mountedByCri(DevShm))
        {
            yield return new Mount { HostPath = input.ShmPath, ContainerPath = DevShm, Readonly = false };
        }
    }

    private static bool NodeHasMqueueMount() =>
        Mounts.ReadMountInfo().LastOrDefault(m => m.MountPoint == DevMqueue) is { FsType: "mqueue" };
}
