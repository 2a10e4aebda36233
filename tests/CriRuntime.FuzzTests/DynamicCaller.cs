using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Net.Client;

namespace CriRuntime.FuzzTests;

/// <summary>What one call answered: its code and message, and how long it took.</summary>
public sealed record CallOutcome(StatusCode Code, string Detail, TimeSpan Took, IMessage? Response);

/// <summary>
/// Calls any CRI method by its descriptor over the daemon's one channel: unary calls, and server-streaming
/// ones read to their end (or, for an event stream that never ends, until a short deadline).
/// </summary>
public sealed class DynamicCaller(GrpcChannel channel)
{
    private readonly CallInvoker invoker = channel.CreateCallInvoker();
    private readonly Dictionary<MethodDescriptor, Method<IMessage, IMessage>> methods = [];

    /// <summary>Every RPC of every service in api.proto.</summary>
    public static IReadOnlyList<MethodDescriptor> AllMethods { get; } =
        Runtime.V1.ApiReflection.Descriptor.Services.SelectMany(s => s.Methods).ToList();

    /// <summary>Streams that stay open until the client leaves: reaching the deadline is their normal end.</summary>
    public static bool IsEndless(MethodDescriptor method) => method.Name == "GetContainerEvents";

    public async Task<CallOutcome> CallAsync(MethodDescriptor descriptor, IMessage request, TimeSpan timeout)
    {
        if (descriptor.IsClientStreaming)
            throw new NotSupportedException($"{descriptor.FullName} is client-streaming; CRI v1 has none, so this suite needs extending");
        var method = MethodFor(descriptor);
        var started = System.Diagnostics.Stopwatch.StartNew();
        var deadline = DateTime.UtcNow + (IsEndless(descriptor) ? TimeSpan.FromSeconds(1) : timeout);
        try
        {
            IMessage? response = null;
            if (descriptor.IsServerStreaming)
            {
                using var call = invoker.AsyncServerStreamingCall(method, null, new CallOptions(deadline: deadline), request);
                while (await call.ResponseStream.MoveNext(CancellationToken.None)) response = call.ResponseStream.Current;
            }
            else
            {
                using var call = invoker.AsyncUnaryCall(method, null, new CallOptions(deadline: deadline), request);
                response = await call.ResponseAsync;
            }
            return new CallOutcome(StatusCode.OK, "", started.Elapsed, response);
        }
        catch (RpcException e)
        {
            return new CallOutcome(e.StatusCode, e.Status.Detail, started.Elapsed, null);
        }
    }

    private Method<IMessage, IMessage> MethodFor(MethodDescriptor descriptor)
    {
        lock (methods)
        {
            if (methods.TryGetValue(descriptor, out var m)) return m;
            var input = descriptor.InputType;
            var output = descriptor.OutputType;
            m = new Method<IMessage, IMessage>(
                descriptor.IsServerStreaming ? MethodType.ServerStreaming : MethodType.Unary,
                descriptor.Service.FullName,
                descriptor.Name,
                Marshallers.Create<IMessage>(r => r.ToByteArray(), bytes => input.Parser.ParseFrom(bytes)),
                Marshallers.Create<IMessage>(r => r.ToByteArray(), bytes => output.Parser.ParseFrom(bytes)));
            methods[descriptor] = m;
            return m;
        }
    }
}
