"""The run page's pieces without a server: log lines, the failure summary, the live follower's bounds,
the parameters form and the pipelines tree."""

from __future__ import annotations

from pathlib import Path

from mlyard.pipelines.model import Parameter
from mlyard.protocol import State
from mlyard.views import JobView, PipelineView, StepView
from mlyard.web import runlog
from mlyard.web.pages import folder_rows, parameter_field

T = "2026-01-01T00:00:00.000Z"


def lines(*texts: str) -> str:
    return "".join(f"{T} {text}\n" for text in texts)


def test_lines_are_numbered_and_classified_without_their_prefix() -> None:
    parsed = runlog.parse(lines("##[section]Starting: build", "[command]/usr/bin/bash x.sh", "plain <b>",
                                "##[warning]careful", "##[error]Bash exited with code '3'."), first=7)  # fmt: skip
    assert [(line.number, line.kind, line.text) for line in parsed] == [
        (7, "section", "Starting: build"),
        (8, "command", "[command]/usr/bin/bash x.sh"),
        (9, "", "plain <b>"),
        (10, "warning", "careful"),
        (11, "error", "Bash exited with code '3'."),
    ]
    long = runlog.parse(lines("x" * (runlog.MAX_LINE_CHARS + 10)))[0].text
    assert long.startswith("x" * runlog.MAX_LINE_CHARS) and long.endswith("(10 more characters)")


def test_durations_read_as_people_read_them() -> None:
    # one definition with the CLI's (tests/foundation/test_cli_output.py)
    assert [runlog.duration(s) for s in (None, 0.42, 12.9, 185, 3725)] == ["", "0.4 s", "12.9 s", "3 min 5 s",
                                                                          "1 h 2 min"]  # fmt: skip


def test_cursors_from_a_page_are_checked_and_bounded() -> None:
    good = "s0123456789ab.10,sffffffffffff.0"
    assert runlog.parse_cursors(good) == {"s0123456789ab": 10, "sffffffffffff": 0}
    assert runlog.parse_cursors("x.1,s0123456789ab.-1,s0123456789ab.1e9,,s0123456789ab") == {}
    many = ",".join(f"s{i:012x}.1" for i in range(runlog.MAX_CURSORS + 50))
    assert len(runlog.parse_cursors(many)) == runlog.MAX_CURSORS


def test_the_follower_sends_whole_new_lines_once_and_splits_a_job_file_at_finishing(tmp_path: Path) -> None:
    job_file, step_file = tmp_path / "7" / "job.log", tmp_path / "7" / "build.log"
    job_file.parent.mkdir()
    job_file.write_text(lines("agent local-1"))
    step_file.write_text(lines("one") + f"{T} partial")
    init, final = runlog.section_id(job_file, "initialize"), runlog.section_id(job_file, "finalize")
    step = runlog.section_id(step_file)
    follower = runlog.Follower()
    follower.files[job_file] = runlog._File(len(lines("agent local-1").encode()), init, final)
    follower.files[step_file] = runlog._File(0, step)
    assert follower.poll() == [(step, [[T, "one", ""]])]  # the partial line waits for its end
    with open(step_file, "a") as fh:
        fh.write(" line\n")
    with open(job_file, "a") as fh:
        fh.write(lines("cleaning up", "Finishing job: Build", "done"))
    assert follower.poll() == [
        (init, [[T, "cleaning up", ""]]),
        (final, [[T, "Finishing job: Build", ""], [T, "done", ""]]),
        (step, [[T, "partial line", ""]]),
    ]
    assert follower.poll() == []
    with open(job_file, "a") as fh:
        fh.write(lines("after"))
    assert follower.poll() == [(final, [[T, "after", ""]])]


def test_a_line_longer_than_a_chunk_is_sent_in_pieces(tmp_path: Path) -> None:
    path = tmp_path / "1" / "s.log"
    path.parent.mkdir()
    path.write_text(f"{T} " + "y" * (runlog.MAX_CHUNK * 2))
    follower = runlog.Follower()
    follower.files[path] = runlog._File(0, runlog.section_id(path))
    sent = [follower.poll() for _ in range(4)]
    assert all(len(batch) == 1 for batch in sent[:2]) and follower.files[path].offset == 2 * runlog.MAX_CHUNK


def test_the_failure_summary_shows_the_script_output_and_errors_not_the_script() -> None:
    text = lines("##[section]Starting: train", "Script contents:", "python train.py",
                 "========================== Starting Command Output ===========================",
                 "[command]/usr/bin/bash x.sh", "loading data.csv", "KeyError: 'label'",
                 "##[error]Bash exited with code '1'.", "##[section]Finishing: train")  # fmt: skip
    step = StepView(key="train", name="train", display_name="train", state=State.FAILED)
    section = runlog.Section("s0123456789ab", "train", 3, tuple(runlog.parse(text)), step=step)
    job = JobView(name="Train", state=State.FAILED, id=3, steps=[step])
    (failure,) = runlog._failures((runlog.JobLog(job, "Build", (section,)),))
    assert failure.title == "Train · train" and failure.sid == "s0123456789ab"
    assert [line.text for line in failure.lines] == ["loading data.csv", "KeyError: 'label'",
                                                     "Bash exited with code '1'."]  # fmt: skip
    lost = JobView(name="Lost", state=State.FAILED, id=4, message="agent local-2 stopped answering")
    (only,) = runlog._failures((runlog.JobLog(lost, "Build", ()),))
    assert only.message == "agent local-2 stopped answering" and only.lines == ()


def test_parameters_become_typed_form_fields() -> None:
    fields = [parameter_field(p) for p in (
        Parameter("flag", "boolean", "Flag", True, True),
        Parameter("size", "string", None, "small", True, ("small", "large")),
        Parameter("n", "number", None, 1.0, True),
        Parameter("cfg", "object", None, {"a": [1]}, True),
        Parameter("who", "string"),
    )]  # fmt: skip
    assert [(f.control, f.label, f.value, f.required) for f in fields] == [
        ("checkbox", "Flag", "true", False),
        ("select", "size", "small", False),
        ("number", "n", "1", False),
        ("textarea", "cfg", '{\n  "a": [\n    1\n  ]\n}', False),
        ("text", "who", "", True),
    ]
    assert fields[0].checked and fields[1].options == ("small", "large") and fields[1].input_name == "param.size"


def test_pipelines_tree_has_the_root_folder_first_then_nested_folders() -> None:
    found = [PipelineView(name="top", folder=""), PipelineView(name="a", folder="team"),
             PipelineView(name="b", folder="team/app"), PipelineView(name="c", folder="team")]  # fmt: skip
    rows = [(r.depth, r.label, r.path) for r in folder_rows(found)]
    assert rows == [(0, "top", "/"), (0, "team/", "/team"), (1, "a", "/team"), (1, "app/", "/team/app"),
                    (2, "b", "/team/app"), (1, "c", "/team")]  # fmt: skip


def test_the_page_reloads_for_a_new_banner_not_for_a_new_state() -> None:
    from mlyard.views import RunView, StageView

    def key(state: State, waiting: list[str] | None = None, approval: str | None = None) -> str:
        stage = StageView(name="s", jobs=[JobView(name="j", approval=approval)])
        return runlog.banner(RunView(state=state, waiting_for=waiting or [], stages=[stage]))

    assert key(State.QUEUED) == key(State.RUNNING) == key(State.NOT_STARTED)
    assert key(State.WAITING, ["environment:test"]) != key(State.RUNNING)
    assert key(State.WAITING, ["environment:test"]) != key(State.WAITING, ["connection:c", "environment:test"])
    assert key(State.RUNNING, approval="pending") != key(State.RUNNING)


def test_a_section_shows_its_last_lines_within_its_bounds() -> None:
    parsed = runlog.parse(lines(*(f"line {i}" for i in range(1, 101))))
    shown, omitted = runlog._tail(parsed, 10, 10_000)
    assert omitted == 90 and [line.number for line in shown] == list(range(91, 101))
    shown, omitted = runlog._tail(parsed, 100, 3 * len("line 100"))
    assert omitted == 97 and shown[-1].text == "line 100"
