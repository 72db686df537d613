"""A run's logs in sections, in the order Azure DevOps shows them: per job, the job's own start lines
("Initialize job"), its steps in order (a skipped step's section says why it was skipped), then the
job's closing lines ("Finalize job": `Finishing job: ...`).

The agent writes a job's own lines to one file (`job.log`); the "Finishing job" line that ends it
starts the "Finalize job" section. Used by `GET /runs/{id}/logs` (text, `format=json`, `follow=true`)
and the web run page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlyard.ci.logs import read
from mlyard.services import runs
from mlyard.services.platform import Platform
from mlyard.views import JobLog, LogLine, RunLogs, StepLog, state

INITIALIZE = "Initialize job"
FINALIZE = "Finalize job"
FINISHING = "Finishing job: "  # the agent's last line of a job (agent/executor.py)
MAX_JSON_LINES = 200_000  # `format=json` answers at most this many lines per run (the text has them all)


@dataclass(frozen=True)
class Section:
    """One section of a run's log: a step's file, or the first or last part of a job's own file."""

    job: str
    step: str | None  # the step's display name; INITIALIZE / FINALIZE for the job's own file
    key: str | None  # the step's key; None for the job's own file
    path: Path
    part: str = ""  # "initialize" | "finalize" for the job's own file

    @property
    def header(self) -> str:
        """The section's header line in the text log ("## Job", "## Job / Build", "## Job / Finalize job")."""
        return f"## {self.job}" + ("" if self.part == "initialize" else f" / {self.step}")


def sections(platform: Platform, run_id: int, *, step: str | None = None) -> list[Section]:
    """The run's sections in order (with `step`: only that step's; NotFound for a step the run has not)."""
    found: list[Section] = []
    job_files: list[Section] = []
    for item in runs.step_logs(platform, run_id, step=step):
        if item["step"] is None:  # a job's own file: it opens the job, and its last lines close it
            if job_files:
                found.append(job_files.pop())
            found.append(Section(item["job"], INITIALIZE, None, item["path"], "initialize"))
            job_files.append(Section(item["job"], FINALIZE, None, item["path"], "finalize"))
        else:
            found.append(Section(item["job"], item["step"], item.get("key"), item["path"]))
    return found + job_files


def split_job_text(text: str) -> tuple[str, str]:
    """A job file's text as (initialize part, finalize part): the finalize part starts at "Finishing job"."""
    at = text.find(f" {FINISHING}")
    if at < 0:
        return text, ""
    start = text.rfind("\n", 0, at) + 1
    return text[:start], text[start:]


def section_text(section: Section) -> str:
    text, _ = read(section.path)
    if not section.part:
        return text
    initialize, finalize = split_job_text(text)
    return initialize if section.part == "initialize" else finalize


def read_text(platform: Platform, run_id: int, *, step: str | None = None) -> str:
    """The whole log as text: each non-empty section under its header, sections separated by a blank line."""
    parts = []
    for section in sections(platform, run_id, step=step):
        text = section_text(section)
        if text:
            parts.append(section.header + "\n" + text)
    return "\n".join(parts)


def read_document(platform: Platform, run_id: int, *, step: str | None = None) -> RunLogs:
    """The log as typed data: jobs, their sections (steps) in order, each with its timestamped lines."""
    jobs: dict[str, list[StepLog]] = {}
    budget = MAX_JSON_LINES
    truncated = False
    for section in sections(platform, run_id, step=step):
        lines = []
        for raw in section_text(section).splitlines():
            if budget <= 0:
                truncated = True
                break
            at, _, text = raw.partition(" ")
            lines.append(LogLine(at=at, text=text))
            budget -= 1
        jobs.setdefault(section.job, []).append(StepLog(name=section.step or "", key=section.key, lines=lines))
    now = state(runs.run_state(platform, run_id))
    return RunLogs(
        run=run_id, state=now, truncated=truncated,
        jobs=[JobLog(name=name, steps=steps) for name, steps in jobs.items()],
    )  # fmt: skip


@dataclass
class Follower:
    """What a live follow has sent so far: per file the byte offset, per job whether "Finishing job" came,
    the finalize text not sent yet and the section whose header was sent last (a header is sent again
    when the text switches sections)."""

    offsets: dict[Path, int] = field(default_factory=dict)
    finishing: dict[Path, bool] = field(default_factory=dict)
    pending: dict[Path, str] = field(default_factory=dict)
    current: str = ""

    def poll(self, found: list[Section]) -> Iterator[str]:
        """The new text of every section, in order, with headers where the section changes."""
        for section in found:
            if section.part == "finalize":
                text = self.pending.pop(section.path, "")
            else:
                text, self.offsets[section.path] = read(section.path, self.offsets.get(section.path, 0))
                if section.part == "initialize":
                    if self.finishing.get(section.path):
                        self.pending[section.path] = self.pending.get(section.path, "") + text
                        text = ""
                    else:
                        text, rest = split_job_text(text)
                        if rest:
                            self.finishing[section.path] = True
                            self.pending[section.path] = rest
            if text:
                if section.header != self.current:
                    self.current = section.header
                    yield section.header + "\n"
                yield text
