"""Model CI's notification: a Slack-compatible message (`{"text": ...}`) to the environment's webhook.

The webhook is the secret `NOTIFY_WEBHOOK_URL` of the environment's variable group, mapped into the step
with `env:`; without one, nothing is sent. A webhook that
does not answer is a warning on the run, never a failure: the promotion decision is already made.

    python mlops/notify.py --model NAME --version 3 --status Succeeded --run-url URL --commit SHA
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request


def message(model: str, version: str, status: str, run_url: str, commit: str, branch: str) -> dict:
    promoted = status in ("Succeeded", "SucceededWithIssues")
    verdict = "promoted to Production" if promoted else "failed model CI and stays in Staging"
    icon = ":white_check_mark:" if promoted else ":x:"
    text = f"{icon} {model} version {version} {verdict} ({branch} at {commit[:10]}): {run_url}"
    headline = f"{icon} *{model}* version *{version}* {verdict}"
    context = f"{branch} at `{commit[:10]}` · <{run_url}|run>"
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option in ("--model", "--version", "--status", "--run-url", "--commit", "--branch"):
        parser.add_argument(option, default="")
    args = parser.parse_args()
    url = os.environ.get("NOTIFY_WEBHOOK_URL", "")
    if not url or url.startswith("$("):  # a group without the variable leaves the macro as written
        print("no notification webhook for this environment (NOTIFY_WEBHOOK_URL of its variable group)")
        return 0
    body = message(args.model, args.version, args.status, args.run_url, args.commit, args.branch)
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            print(f"notified the webhook ({answer.status}): {body['text']}")
    except (urllib.error.URLError, OSError) as exc:
        print(f"##vso[task.logissue type=warning]the notification webhook did not take the message: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
