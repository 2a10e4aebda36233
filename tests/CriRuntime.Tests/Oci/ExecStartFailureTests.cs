using CriRuntime.Oci;
using Xunit;

namespace CriRuntime.Tests.Oci;

/// <summary>Issue #13 item 10: the runtime's JSON log tells a missing executable from a command that exited 255.</summary>
public sealed class ExecStartFailureTests
{
    [Theory]
    // runc 1.1, a name looked up in PATH and a path.
    [InlineData("""{"level":"error","msg":"exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH","time":"2026-12-03T13:52:35Z"}""")]
    [InlineData("""{"level":"error","msg":"exec failed: unable to start container process: exec: \"/bin/nope\": stat /bin/nope: no such file or directory","time":"t"}""")]
    // crun 1.8.
    [InlineData("""{"msg":"executable file `nope` not found in $PATH: No such file or directory","level":"error","time":"t"}""")]
    public void A_missing_executable_is_not_found_naming_it(string log)
    {
        var e = Assert.IsType<NotFoundException>(ExecStartFailure.FromRuntimeLog("runc", "c1", "nope", "{\"level\":\"info\",\"msg\":\"x\"}\n" + log + "\n"));
        Assert.Contains("executable 'nope' was not found in container c1", e.Message);
    }

    [Theory]
    [InlineData("""{"level":"error","msg":"exec failed: unable to start container process: exec: \"/etc\": permission denied"}""")]
    [InlineData("""{"msg":"open executable: Operation not permitted","level":"error"}""")]
    [InlineData("""{"msg":"open executable: Permission denied","level":"error"}""")]
    public void A_file_that_cannot_be_executed_is_a_failed_precondition(string log) =>
        Assert.IsType<FailedPreconditionException>(ExecStartFailure.FromRuntimeLog("crun", "c1", "/etc", log));

    [Fact]
    public void Other_runtime_errors_stay_runtime_errors() =>
        Assert.IsType<OciRuntimeException>(ExecStartFailure.FromRuntimeLog("runc", "c1", "sh",
            """{"level":"error","msg":"exec failed: unable to start container process: chdir to cwd (\"/gone\") set in config.json failed: no such file or directory"}"""));

    [Theory]
    [InlineData("")]
    [InlineData("not json at all")]
    [InlineData("""{"level":"warning","msg":"executable file not found in $PATH"}""")]
    [InlineData("""["level","error"]""")]
    [InlineData("""{"level":"error"}""")]
    [InlineData("{\"level\":\"error\",\"msg\":")]
    public void Without_an_error_line_the_exit_code_is_the_commands(string log) =>
        Assert.Null(ExecStartFailure.FromRuntimeLog("runc", "c1", "x", log));

    [Theory]
    // What conmon passes on from a failed `runc create` / `crun create`.
    [InlineData("runc create failed: unable to start container process: exec: \"0\": executable file not found in $PATH", typeof(NotFoundException))]
    [InlineData("runc create failed: unable to start container process: exec: \"/x\": stat /x: no such file or directory", typeof(NotFoundException))]
    [InlineData("executable file `0` not found in $PATH: No such file or directory", typeof(NotFoundException))]
    [InlineData("runc create failed: unable to start container process: exec: \"/etc\": permission denied", typeof(FailedPreconditionException))]
    // As conmon passes it on: runc's logrus text line, quotes escaped.
    [InlineData("time=\"2026-12-03T18:21:18Z\" level=error msg=\"runc create failed: unable to start container process: exec: \\\"/etc\\\": permission denied\"", typeof(FailedPreconditionException))]
    [InlineData("time=\"t\" level=error msg=\"runc create failed: unable to start container process: exec: \\\"/x\\\": stat /x: no such file or directory\"", typeof(NotFoundException))]
    public void A_create_whose_process_cannot_start_gets_the_execs_code(string error, Type expected)
    {
        var e = ExecStartFailure.FromCreateError("runc", "c1", error);
        Assert.IsType(expected, e);
        Assert.Contains("container c1", e!.Message);
        Assert.Contains("executable", e.Message);
    }

    [Theory]
    [InlineData("runc create failed: unable to start container process: chdir to cwd (\"/etc/passwd\") set in config.json failed: not a directory")]
    [InlineData("runc create failed: unable to apply cgroup configuration: mkdir /sys/fs/cgroup/x: permission denied")]
    public void Other_create_errors_are_not_classified(string error) =>
        Assert.Null(ExecStartFailure.FromCreateError("runc", "c1", error));
}
