using System.Text.Json;

namespace CriRuntime.Oci;

/// <summary>
/// Tells an exec that never started (no such executable, not executable) from a command that ran and exited 255.
/// Both runc and crun exit 255 either way, but only when they failed themselves do they write an error to the log
/// file given with <c>--log FILE --log-format json</c>, which, unlike stderr, the command cannot write to.
/// containerd fails such an ExecSync ("failed to start exec ...: executable file not found in $PATH") instead of
/// answering with an exit code; so do we, with a code saying what is wrong.
/// </summary>
public static class ExecStartFailure
{
    /// <summary>How much of the runtime's log is read: its error is one line.</summary>
    public const int MaxLogBytes = 64 * 1024;

    /// <summary>
    /// The error to throw for an exec whose runtime exited 255 with <paramref name="runtimeLog"/> in its JSON log, or
    /// null when the log has no error (the command itself exited 255: a result, not a failure).
    /// </summary>
    public static Exception? FromRuntimeLog(string handler, string containerId, string executable, string runtimeLog)
    {
        string? error = FirstError(runtimeLog);
        if (error is null) return null;
        string said = OciRuntime.Bounded(error);
        return Classify(error, $"executable '{Preview(executable)}'", containerId, handler, said)
            ?? new OciRuntimeException($"{handler} exec in container {containerId} failed before '{Preview(executable)}' ran: {said}");
    }

    /// <summary>
    /// The error for a create whose runtime could not start the container's process (<paramref name="error"/> is
    /// what it said), or null when the error is of another kind. The process is the config's command and args, or the
    /// image's entrypoint and cmd; the same mistake as in an exec gets the same code.
    /// </summary>
    public static Exception? FromCreateError(string handler, string containerId, string error) =>
        // runc's create error reaches us in logrus text form (msg="... exec: \"x\": ..."): its quotes escaped.
        Classify(error.Replace("\\\"", "\"", StringComparison.Ordinal), "the container's executable (args[0] of its process: the config's command/args, else the image's entrypoint/cmd)",
            containerId, handler, OciRuntime.Bounded(error.Trim()));

    private static Exception? Classify(string error, string what, string containerId, string handler, string said)
    {
        // runc: `exec: "x": executable file not found in $PATH`, `stat /x: no such file or directory`;
        // crun: "executable file `x` not found in $PATH: No such file or directory".
        bool runcExec = error.Contains("exec: \"", StringComparison.Ordinal);
        if (error.Contains("executable file", StringComparison.Ordinal) && error.Contains("not found", StringComparison.Ordinal)
            || runcExec && error.Contains(": stat ", StringComparison.Ordinal) && error.Contains("no such file or directory", StringComparison.OrdinalIgnoreCase))
            return new NotFoundException($"{what} was not found in container {containerId} (looked up in its PATH when not a path); {handler} said: {said}");
        // runc: `exec: "/etc": permission denied`; crun: "open executable: Permission denied" or "Operation not permitted".
        if (runcExec && error.Contains("permission denied", StringComparison.OrdinalIgnoreCase)
            || error.Contains("open executable:", StringComparison.Ordinal))
            return new FailedPreconditionException($"{what} in container {containerId} cannot be executed (a directory, or not executable); {handler} said: {said}");
        return null;
    }

    /// <summary>The message of the first error-level line of a runc/crun JSON log; lines that are not JSON are skipped.</summary>
    internal static string? FirstError(string runtimeLog)
    {
        foreach (string line in runtimeLog.Split('\n'))
        {
            if (line.Length == 0 || line[0] != '{') continue;
            try
            {
                using var json = JsonDocument.Parse(line);
                var root = json.RootElement;
                if (root.ValueKind != JsonValueKind.Object) continue;
                if (!root.TryGetProperty("level", out var level) || level.ValueKind != JsonValueKind.String) continue;
                if (level.GetString() is not ("error" or "fatal" or "panic")) continue;
                if (root.TryGetProperty("msg", out var msg) && msg.ValueKind == JsonValueKind.String) return msg.GetString();
            }
            catch (JsonException)
            {
            }
        }
        return null;
    }

    private static string Preview(string value) => value.Length <= 256 ? value : value[..256] + "…";
}
