using Prometheus;

namespace CriRuntime.Streaming;

/// <summary>
/// Streaming sessions on /metrics, counted where the streaming server hands a connection to its handler, so every
/// kind (exec, attach, port-forward) and transport (SPDY, WebSocket) is counted the same way.
/// </summary>
internal static class StreamingMetrics
{
    /// <summary>The handler finished: the command ran to its end, or its failure was reported to the client.</summary>
    public const string Completed = "completed";

    /// <summary>The client left or went idle, it did not open its streams in time, or the daemon is stopping.</summary>
    public const string Aborted = "aborted";

    /// <summary>The handler failed unexpectedly (logged with its stack).</summary>
    public const string Failed = "failed";

    /// <summary>Refused before any upgrade: unknown, used or expired token, wrong upgrade, no common protocol, kind not served.</summary>
    public const string Rejected = "rejected";

    private static readonly Counter Sessions = Metrics.CreateCounter("criruntime_streaming_sessions_total",
        "Streaming requests (exec, attach, portforward) by transport and outcome: completed, aborted, failed, or rejected before the upgrade.",
        "kind", "transport", "outcome");

    private static readonly Gauge Open = Metrics.CreateGauge("criruntime_streaming_sessions_open",
        "Streaming sessions upgraded and being served now, by kind and transport.", "kind", "transport");

    public static string KindLabel(StreamingKind kind) => kind switch
    {
        StreamingKind.Exec => "exec",
        StreamingKind.Attach => "attach",
        _ => "portforward",
    };

    /// <summary>Counts a request refused before its upgrade.</summary>
    public static void Reject(StreamingKind kind, string transport) => Sessions.WithLabels(KindLabel(kind), transport, Rejected).Inc();

    /// <summary>Counts a session as open until the returned tracker is disposed, then by its outcome (failed unless set).</summary>
    public static Session Begin(StreamingKind kind, string transport) => new(KindLabel(kind), transport);

    internal sealed class Session : IDisposable
    {
        private readonly string kind;
        private readonly string transport;
        private bool disposed;

        public Session(string kind, string transport)
        {
            this.kind = kind;
            this.transport = transport;
            Open.WithLabels(kind, transport).Inc();
        }

        public string Outcome { get; private set; } = Failed;

        public void Complete() => Outcome = Completed;

        /// <summary>Marks the session aborted unless its handler had already completed (a late disconnect is not an abort).</summary>
        public void Abort()
        {
            if (Outcome != Completed) Outcome = Aborted;
        }

        public void Dispose()
        {
            if (disposed) return;
            disposed = true;
            Open.WithLabels(kind, transport).Dec();
            Sessions.WithLabels(kind, transport, Outcome).Inc();
        }
    }
}
