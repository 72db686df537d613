"""PublishTestResults@2: test result files (JUnit, XUnit, NUnit or VSTest) found by file matching
patterns under searchFolder become one test summary of the run."""

from __future__ import annotations

from pathlib import Path

from mlyard.agent.environment import input_flag, inside_work_dir, step_input
from mlyard.agent.junit import JUnitError
from mlyard.agent.masking import mask_all
from mlyard.agent.state import JobState, StepError, StepRun
from mlyard.agent.steps.files import matching
from mlyard.agent.testformats import FORMATS, summarize_reports
from mlyard.protocol import FAILED, SUCCEEDED, SUCCEEDED_WITH_ISSUES, StepSpec


def _format(job: JobState, step: StepSpec) -> str:
    fmt = step_input(job, step, "testResultsFormat", "JUnit", aliases=("testRunner",)).strip()
    canonical = {name.lower(): name for name in FORMATS}.get(fmt.lower())
    if canonical is None:
        raise StepError(f"testResultsFormat '{fmt}' is not supported by the mlyard agent; use "
                        f"{', '.join(FORMATS)}")  # fmt: skip
    return canonical


def find_results(job: JobState, folder: Path, patterns: str) -> list[Path]:
    return [inside_work_dir(job, str(path), "the test results file")
            for path in matching(job, folder, patterns, what="the test results file") if not path.is_dir()]  # fmt: skip


def publish_test_results(step: StepSpec, job: JobState, run: StepRun) -> str:
    fmt = _format(job, step)
    folder = inside_work_dir(job, step_input(job, step, "searchFolder", "$(System.DefaultWorkingDirectory)"),
                             "the test results folder")  # fmt: skip
    patterns = step_input(job, step, "testResultsFiles", "**/TEST-*.xml")
    files = find_results(job, folder, patterns)
    if not files:
        message = f"no test result files matched '{patterns.strip()}' in {folder}"
        if input_flag(job, step, "failTaskOnMissingResultsFile"):
            raise StepError(message)
        run.warning(message)
        return SUCCEEDED_WITH_ISSUES
    title = (
        step_input(job, step, "testRunTitle").strip()
        or f"{fmt}_TestResults_{job.variables.get('Build.BuildId') or job.spec.run_id}"
    )
    try:
        summary = summarize_reports(files, title, fmt)
    except JUnitError as exc:
        if input_flag(job, step, "failTaskOnFailureToPublishResults"):
            raise StepError(str(exc)) from None
        run.warning(str(exc))
        return SUCCEEDED_WITH_ISSUES
    job.log.write(step, f"Publishing {fmt} test results from {len(files)} file(s): {summary.total} tests, "
                  f"{summary.passed} passed, {summary.failed} failed, {summary.skipped} skipped")  # fmt: skip
    for failure in summary.failures:
        job.log.write(step, f"  failed: {failure['classname']}.{failure['name']}: {failure['message']}")
    job.log.flush()
    job.reporter.publish_test_results(mask_all(summary.to_dict(), job.masker.mask))  # names, messages, title
    if summary.failed and input_flag(job, step, "failTaskOnFailedTests"):
        run.error(f"{summary.failed} test(s) failed (failTaskOnFailedTests is true)")
        return FAILED
    return SUCCEEDED
