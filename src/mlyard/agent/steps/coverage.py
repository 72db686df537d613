"""PublishCodeCoverageResults@1 and @2: Cobertura (and JaCoCo) report files found by summaryFileLocation
become the run's coverage summary (line and branch rates, shown by `mlyard runs show` and the run page).

@1 reads the format codeCoverageTool names (default JaCoCo, as in Azure); @2 recognises it from the file.
The HTML report inputs (pathToSources, reportDirectory, additionalCodeCoverageFiles) are accepted and not
used: mlyard keeps the summary, not a report site.
"""

from __future__ import annotations

from dataclasses import replace

from mlyard.agent.coverage import FORMATS, CoverageError, summarize_coverage
from mlyard.agent.environment import expand, input_flag, inside_work_dir, step_input
from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.agent.steps.files import matching
from mlyard.protocol import SUCCEEDED, SUCCEEDED_WITH_ISSUES, StepSpec

UNUSED_INPUTS = ("pathToSources", "reportDirectory", "additionalCodeCoverageFiles")


def _tool(job: JobState, step: StepSpec) -> str | None:
    if (step.task or "").lower() != "publishcodecoverageresults@1":
        return None
    tool = step_input(job, step, "codeCoverageTool", "JaCoCo").strip()
    canonical = {name.lower(): name for name in FORMATS}.get(tool.lower())
    if canonical is None:
        raise StepError(f"codeCoverageTool '{tool}' is not valid: use Cobertura or JaCoCo")
    return canonical


def publish_code_coverage(step: StepSpec, job: JobState, run: StepRun) -> str:
    tool = _tool(job, step)
    patterns = step_input(job, step, "summaryFileLocation").strip()
    if not patterns:
        raise StepError("input summaryFileLocation is required: the path or pattern of the coverage XML files")
    root = inside_work_dir(job, expand(job, "$(System.DefaultWorkingDirectory)"), "the working directory")
    files = [inside_work_dir(job, str(path), "the coverage file")
             for path in matching(job, root, patterns, what="the coverage folder") if not path.is_dir()]  # fmt: skip
    for name in UNUSED_INPUTS:
        if step_input(job, step, name).strip():
            job.log.write(step, f"{name} is not used: mlyard keeps the coverage summary, not an HTML report")
    fail_if_empty = input_flag(job, step, "failIfCoverageEmpty")
    if not files:
        message = f"no code coverage files matched '{patterns}' in {root}"
        if fail_if_empty:
            raise StepError(message)
        run.warning(message)
        return SUCCEEDED_WITH_ISSUES
    try:
        summary = summarize_coverage(files, tool)
    except CoverageError as exc:
        raise StepError(str(exc)) from None
    if summary.lines_valid == 0:
        message = "the code coverage files hold no lines to cover"
        if fail_if_empty:
            raise StepError(message)
        run.warning(message)
    rates = [f"lines {summary.line_rate:.1%} ({summary.lines_covered}/{summary.lines_valid})"
             if summary.line_rate is not None else "no lines"]  # fmt: skip
    if summary.branch_rate is not None:
        rates.append(f"branches {summary.branch_rate:.1%} ({summary.branches_covered}/{summary.branches_valid})")
    job.log.write(step, f"Publishing {summary.format} code coverage from {len(files)} file(s): {', '.join(rates)}")
    job.log.flush()
    job.reporter.publish_coverage(replace(summary, files=[job.masker.mask(name) for name in summary.files]))
    return SUCCEEDED
