"""PublishTestResults@2: JUnit XML files found by glob patterns become the run's test summary."""

from __future__ import annotations

from pathlib import Path

from mlyard.agent.environment import input_flag, inside_work_dir, step_input
from mlyard.agent.junit import JUnitError, summarize
from mlyard.agent.masking import mask_all
from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.protocol import FAILED, SUCCEEDED, SUCCEEDED_WITH_ISSUES, StepSpec


def find_files(folder: Path, patterns: str) -> list[Path]:
    """Files matching newline- or comma-free glob patterns under `folder`; `!pattern` excludes."""
    included: dict[Path, None] = {}
    excluded: set[Path] = set()
    for raw in patterns.splitlines():
        pattern = raw.strip()
        if not pattern:
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        base, relative = (Path("/"), pattern.lstrip("/")) if Path(pattern).is_absolute() else (folder, pattern)
        matches = sorted(path for path in base.glob(relative) if path.is_file())
        if negate:
            excluded.update(matches)
        else:
            included.update(dict.fromkeys(matches))
    return [path for path in included if path not in excluded]


def publish_test_results(step: StepSpec, job: JobState, run: StepRun) -> str:
    fmt = step_input(job, step, "testResultsFormat", "JUnit").strip()
    if fmt.lower() != "junit":
        raise StepError(f"testResultsFormat '{fmt}' is not supported by the mlyard agent; use JUnit")
    folder = inside_work_dir(job, step_input(job, step, "searchFolder", "$(System.DefaultWorkingDirectory)"),
                             "the test results folder")  # fmt: skip
    patterns = step_input(job, step, "testResultsFiles", "**/TEST-*.xml")
    files = [inside_work_dir(job, str(path), "the test results file") for path in find_files(folder, patterns)]
    if not files:
        message = f"no test result files matched '{patterns.strip()}' in {folder}"
        if input_flag(job, step, "failTaskOnMissingResultsFile"):
            raise StepError(message)
        run.warning(message)
        return SUCCEEDED_WITH_ISSUES
    title = (
        step_input(job, step, "testRunTitle").strip()
        or f"JUnit_TestResults_{job.variables.get('Build.BuildId') or job.spec.run_id}"
    )
    try:
        summary = summarize(files, title)
    except JUnitError as exc:
        if input_flag(job, step, "failTaskOnFailureToPublishResults"):
            raise StepError(str(exc)) from None
        run.warning(str(exc))
        return SUCCEEDED_WITH_ISSUES
    job.log.write(step, f"Publishing test results from {len(files)} file(s): {summary.total} tests, "
                  f"{summary.passed} passed, {summary.failed} failed, {summary.skipped} skipped")  # fmt: skip
    for failure in summary.failures:
        job.log.write(step, f"  failed: {failure['classname']}.{failure['name']}: {failure['message']}")
    job.log.flush()
    job.reporter.publish_test_results(mask_all(summary.to_dict(), job.masker.mask))  # names, messages, title
    if summary.failed and input_flag(job, step, "failTaskOnFailedTests"):
        run.error(f"{summary.failed} test(s) failed (failTaskOnFailedTests is true)")
        return FAILED
    return SUCCEEDED
