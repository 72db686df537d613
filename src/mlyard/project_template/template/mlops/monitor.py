"""The monitor pipeline's check: read the deployment's drift and quality report, compare it with the
thresholds of mlops/monitoring.yml, alert the environment's webhook and say whether to retrain.

    python mlops/monitor.py --model NAME [--config mlops/monitoring.yml] [--run-url URL]

The report comes from the serving target's monitoring API: DEPLOY_TARGET_URI of the variable group
(`<target>+http://HOST:PORT/ENV`) gives `http://HOST:PORT/api/v1/deployments/ENV/NAME/monitor?window=24h`,
read with the group's token (MLFLOW_TRACKING_TOKEN). Past a threshold: a Slack-compatible message
(`{"text": ...}`) to NOTIFY_WEBHOOK_URL when the group has one, a warning on the run, and the step's output
variable `retrain` is `true` when the file says `retrain: true`. Exit codes: 0 checked (crossed or not; or
no deployment to monitor yet: a warning), 1 the report could not be read, 2 an invalid mlops/monitoring.yml.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CONFIG = Path(__file__).resolve().parent / "monitoring.yml"
WINDOW = re.compile(r"^[1-9][0-9]{0,4}[mhd]$")
MAX_REPORT_BYTES = 16 * 1024 * 1024
TIMEOUT = 120  # seconds for the report (it reads a window of the inference table)


class InvalidConfig(Exception):
    """mlops/monitoring.yml is not valid: the message names the file and the key."""


@dataclass(frozen=True)
class Thresholds:
    window: str = "24h"
    min_requests: int = 100
    max_drifted_features: int = 0
    prediction: bool = True
    min_labelled: int = 100
    min_accuracy: float | None = None
    max_mae: float | None = None
    retrain: bool = True


def load_thresholds(path: Path) -> Thresholds:
    """The thresholds of `path`; InvalidConfig naming the file and the key when something is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidConfig(_invalid(path, f"cannot be read: {exc}")) from None
    if not isinstance(data, dict):
        raise InvalidConfig(_invalid(path, "must be a mapping (window, min_requests, drift, quality, retrain)"))
    drift, quality = data.get("drift") or {}, data.get("quality") or {}
    if not isinstance(drift, dict) or not isinstance(quality, dict):
        raise InvalidConfig(_invalid(path, "drift and quality must be mappings"))
    unknown = sorted(
        {*data} - {"window", "min_requests", "drift", "quality", "retrain"}
        | {f"drift.{k}" for k in drift if k not in ("max_drifted_features", "prediction")}
        | {f"quality.{k}" for k in quality if k not in ("min_labelled", "min_accuracy", "max_mae")}
    )
    if unknown:
        raise InvalidConfig(_invalid(path, f"unknown key {unknown[0]!r}"))
    window = str(data.get("window", "24h"))
    if not WINDOW.match(window):
        raise InvalidConfig(_invalid(path, f"window {window!r}: give minutes, hours or days, e.g. 30m, 24h or 7d"))
    try:
        return Thresholds(
            window=window, min_requests=_count(data.get("min_requests", 100), "min_requests"),
            max_drifted_features=_count(drift.get("max_drifted_features", 0), "drift.max_drifted_features"),
            prediction=_flag(drift.get("prediction", True), "drift.prediction"),
            min_labelled=_count(quality.get("min_labelled", 100), "quality.min_labelled"),
            min_accuracy=_number(quality.get("min_accuracy"), "quality.min_accuracy"),
            max_mae=_number(quality.get("max_mae"), "quality.max_mae"),
            retrain=_flag(data.get("retrain", True), "retrain"),
        )  # fmt: skip
    except ValueError as exc:
        raise InvalidConfig(_invalid(path, str(exc))) from None


def crossings(report: dict[str, Any], limits: Thresholds) -> list[str]:
    """What in the report is past its threshold (empty: nothing, or too little traffic to judge)."""
    if int(report.get("requests") or 0) < limits.min_requests:
        return []
    found = []
    drifted = [str(name) for name in report.get("drifted") or []]
    if len(drifted) > limits.max_drifted_features:
        psi = {f["name"]: f.get("psi") for f in report.get("features") or [] if isinstance(f, dict)}
        named = ", ".join(f"{n} (PSI {psi[n]:.2f})" if isinstance(psi.get(n), float) else n for n in drifted[:10])
        found.append(f"{len(drifted)} drifted feature(s), more than {limits.max_drifted_features}: {named}")
    prediction = report.get("prediction_drift") or {}
    if limits.prediction and prediction.get("drifted"):
        found.append(f"the predictions drifted ({prediction.get('reason') or 'past the drift threshold'})")
    quality = report.get("quality") or {}
    if quality and int(quality.get("labelled") or 0) >= limits.min_labelled:
        value, metric = float(quality.get("value")), quality.get("metric")
        if metric == "accuracy" and limits.min_accuracy is not None and value < limits.min_accuracy:
            found.append(f"accuracy {value:.4f} on {quality['labelled']} labelled rows, below {limits.min_accuracy}")
        if metric == "mae" and limits.max_mae is not None and value > limits.max_mae:
            found.append(f"mean absolute error {value:.4f} on {quality['labelled']} labelled rows, above "
                         f"{limits.max_mae}")  # fmt: skip
    return found


def report_url(target: str, model: str, window: str) -> str:
    """The monitoring API of the deployment of `model` on the serving target `target` (DEPLOY_TARGET_URI)."""
    parts = urllib.parse.urlsplit(target)
    scheme = parts.scheme.rpartition("+")[2]
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the serving target {target!r} has no monitoring API this script knows "
                         "(it reads <target>+http://HOST:PORT/ENV)")  # fmt: skip
    prefix, _, env = parts.path.rstrip("/").rpartition("/")
    if not env:
        raise ValueError(f"the serving target {target!r} names no environment (<target>+http://HOST:PORT/ENV)")
    quoted = "/".join(urllib.parse.quote(p, safe="") for p in (env, model))
    return f"{scheme}://{parts.netloc}{prefix}/api/v1/deployments/{quoted}/monitor?window={window}"


def fetch(url: str, token: str) -> dict[str, Any]:
    headers = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT) as answer:
        return json.loads(answer.read(MAX_REPORT_BYTES))


def alert(model: str, report: dict[str, Any], found: list[str], retrain: bool, run_url: str) -> dict[str, Any]:
    """The Slack-compatible message of a crossed threshold."""
    env = report.get("environment", "")
    action = "retraining queued" if retrain else "no retraining (retrain: false)"
    where = f": {run_url}" if run_url else ""
    text = f":warning: {model} in {env}: past the monitoring thresholds: {'; '.join(found)}; {action}{where}"
    lines = "\n".join(f"• {item}" for item in found)
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": f":warning: *{model}* in *{env}*: past the monitoring thresholds"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": lines}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": action + (f" · <{run_url}|run>"
                                                                                  if run_url else "")}]},
        ],
    }  # fmt: skip


def notify(body: dict[str, Any]) -> None:
    url = os.environ.get("NOTIFY_WEBHOOK_URL", "")
    if not url or url.startswith("$("):  # a group without the variable leaves the macro as written
        print("no notification webhook for this environment (NOTIFY_WEBHOOK_URL of its variable group)")
        return
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            print(f"notified the webhook ({answer.status})")
    except (urllib.error.URLError, OSError) as exc:
        print(f"##vso[task.logissue type=warning]the notification webhook did not take the alert: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--run-url", default="")
    args = parser.parse_args(argv)
    try:
        limits = load_thresholds(args.config)
    except InvalidConfig as exc:
        print(f"##vso[task.logissue type=error]{exc}", file=sys.stderr)
        return 2
    try:
        url = report_url(os.environ.get("DEPLOY_TARGET_URI", ""), args.model, limits.window)
        report = fetch(url, os.environ.get("MLFLOW_TRACKING_TOKEN", ""))
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        if exc.code == 404:  # not deployed (yet): nothing to monitor, which is no failure of the schedule
            print(f"##vso[task.logissue type=warning]nothing to monitor: {detail}")
            print("##vso[task.complete result=SucceededWithIssues;]nothing to monitor")
            print("##vso[task.setvariable variable=retrain;isOutput=true]false")
            return 0
        print(f"##vso[task.logissue type=error]the monitoring report of {args.model} could not be read "
              f"({exc.code}): {detail}", file=sys.stderr)  # fmt: skip
        return 1
    except (ValueError, OSError) as exc:
        print(f"##vso[task.logissue type=error]the monitoring report of {args.model} could not be read: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    drifted = ", ".join(report.get("drifted") or []) or "none"
    print(f"{args.model}: {report.get('requests', 0)} requests in the last {limits.window}, drifted features: "
          f"{drifted}, baseline: {report.get('baseline') or 'none'}")  # fmt: skip
    found = crossings(report, limits)
    if int(report.get("requests") or 0) < limits.min_requests:
        print(f"fewer than {limits.min_requests} requests (min_requests): nothing to judge")
    retrain = bool(found) and limits.retrain
    if found:
        for item in found:
            print(f"##vso[task.logissue type=warning]{item}")
        notify(alert(args.model, report, found, retrain, args.run_url))
    else:
        print("within the thresholds of mlops/monitoring.yml")
    print(f"##vso[task.setvariable variable=retrain;isOutput=true]{'true' if retrain else 'false'}")
    return 0


def _invalid(path: Path, message: str) -> str:
    return f"{path}: {message}"


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a whole number of 0 or more, not {value!r}")
    return value


def _number(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, not {value!r}")
    return float(value)


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
