using CriRuntime.Config;
using CriRuntime.Network;
using Runtime.V1;

namespace CriRuntime.Server;

/// <summary>
/// The CRI RuntimeService. Each RPC lives in the file named after it; an RPC with no file here is
/// not implemented yet and answers UNIMPLEMENTED (the generated base class does that).
/// </summary>
internal sealed partial class CriRuntimeService(CriRuntimeConfig config, CniConfigProbe cni) : RuntimeService.RuntimeServiceBase
{
}
