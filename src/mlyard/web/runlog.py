"""A run's log as the web run page shows it: per job, its sections (Initialize job, each step, Finalize
job) with numbered, classified lines; the failing steps' error lines; and the live follower that sends
what a section gained since the page was rendered (the page's `/runs/ID/live` event stream).

Section and node ids are derived from the log files (a job's id and a step's file name), so a page and
its live stream name the same section the same way, whatever the job and step names hold.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from mlyard.ci.logs import log_file, read
from mlyard.protocol import State
from mlyard.services import run_logs
from mlyard.services.platform import Platform
from mlyard.views import JobView, RunView, StageView, StepView, duration

MAX_SECTION_LINES = 3_000  # lines of one section shown in a page (the last ones); the CLI has them all
MAX_SECTION_CHARS = 512 * 1024  # characters of one section shown in a page (the last ones)
MAX_PAGE_CHARS = 4 * 1024 * 1024  # characters of log in a page; past them a section shows its last lines only
LEAN_LINES = 50  # lines of a section shown once a page has MAX_PAGE_CHARS
MAX_LINE_CHARS = 4_000  # characters of one line shown (a minified blob stays readable around it)
MAX_CHUNK = 256 * 1024  # bytes of one file the live follower reads per poll
MAX_EVENT_LINES = 500  # lines in one live event
MAX_SUMMARY_LINES = 12  # output lines shown before a failing step's first error
MAX_SUMMARY_ERRORS = 10  # error lines shown per failing step
MAX_CURSORS = 400  # sections a live stream follows

_KIND = re.compile(r"^##\[(error|warning|section|command|group|endgroup|debug)\]")
_COMMAND = "[command]"  # how a script step shows the command it runs (kept in the text, shown as a command)
COMMAND_OUTPUT = "Starting Command Output"  # the line a script step writes before the script's own output


@dataclass(frozen=True)
class Line:
    """One log line: its number in its section, its time stamp, its text without the `##[kind]` prefix."""

    number: int
    at: str
    text: str
    kind: str = ""  # error | warning | section | command | group | endgroup | debug | ""

    def wire(self) -> list[str]:
        return [self.at, self.text, self.kind]


@dataclass(frozen=True)
class Section:
    """A part of a job's log shown as one collapsible block."""

    sid: str  # html id of the block (`#sid-L12` is line 12)
    title: str
    job_id: int
    lines: tuple[Line, ...]
    omitted: int = 0  # lines before the first shown
    offset: int = 0  # bytes of the file the page has (followed sections only)
    follows: bool = False  # the live stream follows this section's file (steps and "Initialize job")
    step: StepView | None = None  # None for the job's own sections

    @property
    def state(self) -> str:
        return self.step.state if self.step else ""

    @property
    def errors(self) -> int:
        return sum(1 for line in self.lines if line.kind == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for line in self.lines if line.kind == "warning")


@dataclass(frozen=True)
class JobLog:
    job: JobView
    stage: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Failure:
    """Why a step (or a job without a failing step) failed: its error lines and the output before them."""

    title: str
    sid: str  # the section to link to ("" for a job's message)
    lines: tuple[Line, ...]
    message: str = ""


@dataclass(frozen=True)
class RunLog:
    jobs: tuple[JobLog, ...]
    failures: tuple[Failure, ...]


def section_id(path: Path, part: str = "") -> str:
    """A stable html id for a section: from its job's id, its file's name and the part of a job's file."""
    digest = hashlib.sha1(f"{path.parent.name}/{path.name}#{part}".encode(), usedforsecurity=False)
    return "s" + digest.hexdigest()[:12]


def parse(text: str, first: int = 1) -> list[Line]:
    """Log text (`<time> <text>` lines) as numbered lines from `first`."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=first):
        at, _, body = raw.partition(" ")
        kind = ""
        match = _KIND.match(body)
        if match:
            kind, body = match.group(1), body[match.end() :]
        elif body.startswith(_COMMAND):
            kind = "command"
        if len(body) > MAX_LINE_CHARS:
            body = body[:MAX_LINE_CHARS] + f" … ({len(body) - MAX_LINE_CHARS} more characters)"
        lines.append(Line(number, at, body, kind))
    return lines


def _tail(lines: list[Line], max_lines: int, max_chars: int) -> tuple[tuple[Line, ...], int]:
    """The last lines of a section within `max_lines` and `max_chars`, and how many are left out."""
    kept, chars = 0, 0
    for line in reversed(lines):
        if kept >= max_lines or chars + len(line.text) > max_chars:
            break
        kept, chars = kept + 1, chars + len(line.text)
    return tuple(lines[len(lines) - kept :]), len(lines) - kept


def build(platform: Platform, run: RunView) -> RunLog:
    """The run's log by job, with the failing steps' error lines."""
    jobs: dict[int, tuple[JobView, str]] = {
        job.id: (job, stage.display_name or stage.name) for stage in run.stages for job in stage.jobs
    }
    by_job: dict[int, list[Section]] = {job_id: [] for job_id in jobs}
    budget = MAX_PAGE_CHARS
    for part in run_logs.sections(platform, run.id):
        job_id = int(part.path.parent.name)
        if job_id not in jobs:
            continue
        job = jobs[job_id][0]
        text, offset = read(part.path)
        if part.part:
            initialize, finalize = run_logs.split_job_text(text)
            text = initialize if part.part == "initialize" else finalize
        if budget > 0:
            lines, omitted = _tail(parse(text), MAX_SECTION_LINES, min(MAX_SECTION_CHARS, budget))
        else:
            lines, omitted = _tail(parse(text), LEAN_LINES, MAX_SECTION_CHARS)
        budget -= sum(len(line.text) for line in lines)
        step = next((s for s in job.steps if s.key == part.key), None) if part.key else None
        follows = part.part != "finalize"
        sid = section_id(part.path, part.part)
        title = part.step or ""
        by_job[job_id].append(Section(sid, title, job_id, lines, omitted, offset if follows else 0, follows, step))
    logs = tuple(JobLog(job, stage, tuple(by_job[job_id])) for job_id, (job, stage) in jobs.items())
    return RunLog(logs, _failures(logs))


def _failures(jobs: tuple[JobLog, ...]) -> tuple[Failure, ...]:
    found: list[Failure] = []
    for log in jobs:
        failed_steps = [s for s in log.sections if s.step is not None and s.step.state == State.FAILED]
        for section in failed_steps:
            errors = [line for line in section.lines if line.kind == "error"]
            first = errors[0].number if errors else (section.lines[-1].number + 1 if section.lines else 0)
            output = [line.number for line in section.lines if line.number < first and COMMAND_OUTPUT in line.text]
            start = output[-1] if output else 0  # a script's output, not the script's text before it
            before = [
                line for line in section.lines
                if start < line.number < first and line.kind not in ("section", "command", "group", "endgroup", "debug")
            ][-MAX_SUMMARY_LINES:]  # fmt: skip
            step = section.step
            issues = "" if errors or step is None else "; ".join(str(i.get("message", "")) for i in step.issues)
            found.append(Failure(f"{log.job.display_name or log.job.name} · {section.title}", section.sid,
                                 tuple(before + errors[:MAX_SUMMARY_ERRORS]), issues))  # fmt: skip
        if not failed_steps and log.job.state == State.FAILED and log.job.message:
            found.append(Failure(log.job.display_name or log.job.name, "", (), log.job.message))
    return tuple(found)


def banner(run: RunView) -> str:
    """What the run page's banners show (waiting for a permission, an approval), as a short key: the live
    stream makes the page reload when it changes, and only then (states and lines change in place)."""
    pending = any(job.approval == "pending" for stage in run.stages for job in stage.jobs)
    waiting = sorted(str(w) for w in run.waiting_for or []) if run.state == State.WAITING else []
    key = json.dumps([run.state == State.WAITING, waiting, pending])
    return hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:10]


def stage_node(index: int) -> str:
    return f"stage-{index}"


def job_node(job: JobView) -> str:
    return f"job-{job.id}"


def nodes(platform: Platform, run: RunView) -> dict[str, list[str]]:
    """Every stage, job and step of the run as node id -> [state, duration], for the page's live updates."""
    found: dict[str, list[str]] = {}
    stage: StageView
    for index, stage in enumerate(run.stages):
        found[stage_node(index)] = [str(stage.state), duration(stage.duration_seconds)]
        for job in stage.jobs:
            found[job_node(job)] = [str(job.state), duration(job.duration_seconds)]
            for step in job.steps:
                path = log_file(platform.settings.home, run.id, job.id, step.key)
                found[section_id(path)] = [str(step.state), duration(step.duration_seconds)]
    return found


@dataclass
class _File:
    offset: int
    initialize: str  # the section of the file's lines (a job's own file: "Initialize job" until Finishing)
    finalize: str = ""  # a job's own file: the section of its lines from "Finishing job" on
    finishing: bool = False
    numbers: dict[str, int] = field(default_factory=dict)  # lines sent per section (server side count)


@dataclass
class Follower:
    """What a page has of each followed file (from the cursors it sent), and what it gains since."""

    files: dict[Path, _File] = field(default_factory=dict)

    @classmethod
    def start(cls, platform: Platform, run_id: int, cursors: dict[str, int]) -> Follower | None:
        """A follower from the page's cursors; None when the page does not show the run's current sections
        (a job started and its steps appeared: the page reloads)."""
        follower = cls()
        followed: set[str] = set()
        for part in run_logs.sections(platform, run_id):
            if part.part == "finalize":
                continue
            sid = section_id(part.path, part.part)
            followed.add(sid)
            if sid not in cursors:
                return None
            entry = _File(cursors[sid], sid)
            if part.part == "initialize":
                entry.finalize = section_id(part.path, "finalize")
                entry.finishing = _has_finished(part.path, cursors[sid])
            follower.files[part.path] = entry
        return follower if followed == set(cursors) else None

    def poll(self) -> list[tuple[str, list[list[str]]]]:
        """(section id, new lines) of every file that grew, whole lines only, bounded per poll."""
        out: list[tuple[str, list[list[str]]]] = []
        for path, entry in self.files.items():
            text, end = _read_bounded(path, entry.offset)
            if not text:
                continue
            entry.offset = end
            for sid, chunk in _route(entry, text):
                lines = [line.wire() for line in parse(chunk)]
                for start in range(0, len(lines), MAX_EVENT_LINES):
                    out.append((sid, lines[start : start + MAX_EVENT_LINES]))
        return out


def _route(entry: _File, text: str) -> list[tuple[str, str]]:
    """A job file's new text split between "Initialize job" and "Finalize job" at the Finishing line."""
    if not entry.finalize or entry.finishing:
        return [(entry.finalize if entry.finishing else entry.initialize, text)]
    initialize, finalize = run_logs.split_job_text(text)
    if finalize:
        entry.finishing = True
    return [(sid, chunk) for sid, chunk in ((entry.initialize, initialize), (entry.finalize, finalize)) if chunk]


def _has_finished(path: Path, offset: int) -> bool:
    """Whether the first `offset` bytes of a job's file hold its "Finishing job" line."""
    if offset <= 0 or not path.exists():
        return False
    with open(path, "rb") as fh:
        fh.seek(max(0, offset - MAX_CHUNK))
        data = fh.read(min(offset, MAX_CHUNK))
    return f" {run_logs.FINISHING}".encode() in data


def _read_bounded(path: Path, offset: int) -> tuple[str, int]:
    """At most MAX_CHUNK bytes of whole lines from `offset` (a longer line is sent cut at the chunk)."""
    if not path.exists():
        return "", offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(MAX_CHUNK)
    end = data.rfind(b"\n") + 1
    if end == 0 and len(data) == MAX_CHUNK:  # one line longer than a chunk: send it in pieces
        end = len(data)
        data = data + b"\n"
    return data[:end].decode("utf-8", "replace"), offset + end


def parse_cursors(value: str) -> dict[str, int]:
    """`sid.offset,sid.offset` as sent by the page (bounded; malformed entries are ignored)."""
    cursors: dict[str, int] = {}
    for item in value.split(",")[:MAX_CURSORS]:
        sid, _, offset = item.partition(".")
        if re.fullmatch(r"s[0-9a-f]{12}", sid) and offset.isdigit() and len(offset) <= 15:
            cursors[sid] = int(offset)
    return cursors


def event(name: str, data: object) -> str:
    """One server-sent event (JSON data on one line)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
