"""Script steps: bash -e -o pipefail, environment naming, secrets, macros, PATH, work directory.

Sources: "Bash@3 - Bash v3 task", "CmdLine@2 - Command line v2 task", "Define variables" (environment
variable naming: upper case, `.` and spaces become `_`; secrets only through `env:`), "Use predefined
variables", "Set secret variables".
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlyard.protocol import FAILED, SUCCEEDED
from tests.agent.conftest import TOKEN, Runner, job, script, step


def test_script_output_is_logged_with_header_and_footer(run: Runner) -> None:
    outcome, rec = run(job(script("hello", "echo hello world\necho second line >&2")))
    assert outcome.result == SUCCEEDED
    assert rec.events == [("started", "hello"), ("finished", "hello")]
    lines = rec.logs["hello"]
    assert lines[0] == "##[section]Starting: hello"
    assert lines[-1] == "##[section]Finishing: hello"
    assert lines.index("hello world") < lines.index("second line")
    assert all(when > 1e9 for when in rec.stamps)


def test_a_failing_command_stops_the_script(run: Runner) -> None:
    outcome, rec = run(job(script("s", "echo before\nfalse\necho after")))
    assert outcome.result == FAILED
    assert rec.result("s") == FAILED
    assert rec.issues("s") == [("error", "Bash exited with code '1'.")]
    assert outcome.message == "step 's' failed: Bash exited with code '1'."
    assert "before" in rec.logs["s"] and "after" not in rec.logs["s"]


def test_pipefail_fails_a_pipeline_whose_first_command_fails(run: Runner) -> None:
    _, rec = run(job(script("s", "exit 3 | cat\necho after")))
    assert rec.issues("s") == [("error", "Bash exited with code '3'.")]
    assert "after" not in rec.logs["s"]


def test_non_secret_variables_are_exported_with_azure_names(run: Runner) -> None:
    variables = {"Build.SourceBranch": "refs/heads/main", "my var": "spaced", "lower.Case": "v"}
    _, rec = run(job(script("s", 'echo "[$BUILD_SOURCEBRANCH][$MY_VAR][$LOWER_CASE]"'), variables=variables))
    assert "[refs/heads/main][spaced][v]" in rec.logs["s"]


def test_predefined_variables_describe_the_work_directory(run: Runner) -> None:
    text = 'echo "$PIPELINE_WORKSPACE|$BUILD_SOURCESDIRECTORY|$BUILD_ARTIFACTSTAGINGDIRECTORY|$AGENT_TEMPDIRECTORY"'
    _, rec = run(job(script("s", text + '\necho "pwd=$(pwd)" "$SYSTEM_JOBID" "$AGENT_JOBSTATUS" "$MLYARD_JOB"')))
    root, sources, staging, temp = rec.logs["s"][-3].split("|")
    assert Path(sources) == Path(root) / "s" and Path(staging) == Path(root) / "a" and Path(temp) == Path(root) / "tmp"
    assert Path(root).parent == (run.tmp / "work").resolve()
    assert rec.logs["s"][-2] == f"pwd={sources} 7 Succeeded 7"
    assert not Path(root).exists()  # removed after the job


def test_keep_work_keeps_the_work_directory(run: Runner, monkeypatch) -> None:
    monkeypatch.setenv("MLYARD_KEEP_WORK", "1")
    _outcome, _rec = run(job(script("s", "touch kept.txt")))
    assert list((run.tmp / "work").glob("job7-*/s/kept.txt"))


def test_secrets_reach_steps_only_through_env_and_are_masked(run: Runner) -> None:
    spec = job(
        script("plain", 'echo "[${PASSWORD:-unset}]"'),
        script("mapped", 'echo "[$PW]"', env={"PW": "$(password)"}),
        script("macro", "echo '$(password)'"),
        secrets={"password": "hunter2-very-secret"},
    )
    _, rec = run(spec)
    assert "[unset]" in rec.logs["plain"]
    assert "[***]" in rec.logs["mapped"]
    assert "***" in rec.logs["macro"]
    assert "hunter2-very-secret" not in rec.all_text()


def test_macros_expand_variables_and_leave_unknown_ones(run: Runner) -> None:
    spec = job(script("s", "echo '$(Build.SourceBranch) $(build.sourcebranch) $(no.such.var)'"),
               variables={"Build.SourceBranch": "refs/heads/dev"})  # fmt: skip
    _, rec = run(spec)
    assert "refs/heads/dev refs/heads/dev $(no.such.var)" in rec.logs["s"]


def test_step_env_values_are_macro_expanded(run: Runner) -> None:
    spec = job(script("s", 'echo "$GREETING"', env={"GREETING": "hi $(who)"}), variables={"who": "there"})
    _, rec = run(spec)
    assert "hi there" in rec.logs["s"]


def test_python_of_the_agent_comes_first_on_path(run: Runner) -> None:
    _, rec = run(job(script("s", 'command -v python\npython -c "import sys; print(sys.prefix)"')))
    assert rec.logs["s"][-3] == str(Path(sys.executable).parent / "python")
    assert rec.logs["s"][-2] == sys.prefix


def test_working_directory_input(run: Runner) -> None:
    spec = job(script("mk", "mkdir -p sub/dir"), script("s", "pwd", inputs={"workingDirectory": "sub/dir"}))
    _, rec = run(spec)
    assert rec.logs["s"][-2].endswith("/s/sub/dir")


def test_missing_working_directory_fails_the_step(run: Runner) -> None:
    _, rec = run(job(script("s", "pwd", inputs={"workingDirectory": "/nonexistent/place"})))
    assert rec.issues("s") == [("error", "the working directory does not exist: /nonexistent/place")]


def test_fail_on_stderr(run: Runner) -> None:
    spec = job(script("s", "echo oops >&2", inputs={"failOnStderr": "true"}), script("t", "echo fine >&2"))
    _, rec = run(spec)
    assert rec.issues("s") == [
        ("error", "Bash wrote one or more lines to the standard error stream (failOnStderr is true).")
    ]
    assert "oops" in rec.logs["s"]


def test_bash_task_inline_and_file_with_arguments(run: Runner) -> None:
    spec = job(
        step("inline", "Bash@3", inputs={"targetType": "inline", "script": "echo inline ran"}),
        script("write", "printf 'echo \"args: $1 $2\"\\nfalse\\necho no-e\\n' > tool.sh"),
        step("file", "Bash@3", inputs={"targetType": "filePath", "filePath": "tool.sh", "arguments": "'a b' c"}),
        step("missing", "Bash@3", inputs={"targetType": "filePath", "filePath": "nope.sh"}),
    )
    _, rec = run(spec)
    assert "inline ran" in rec.logs["inline"]
    assert "args: a b c" in rec.logs["file"] and "no-e" in rec.logs["file"]  # files run without -e
    assert rec.result("file") == SUCCEEDED
    assert rec.issues("missing")[0][1].startswith("the script file does not exist: ")


def test_unsupported_task_fails_with_the_list_of_supported_ones(run: Runner) -> None:
    _, rec = run(job(step("x", "Docker@2")))
    message = rec.issues("x")[0][1]
    assert message.startswith("task 'Docker@2' is not supported by the mlyard agent (supported: ")


def test_the_job_token_is_masked(run: Runner) -> None:
    _, rec = run(job(script("s", f"echo {TOKEN}")))
    assert TOKEN not in rec.all_text()


def test_python_output_is_unbuffered_so_streams_keep_their_order(run: Runner) -> None:
    text = "python -c \"import sys; print('out1'); print('err', file=sys.stderr); print('out2')\""
    _, rec = run(job(script("s", text)))
    assert rec.logs["s"][-4:-1] == ["out1", "err", "out2"]
