"""Model CI (the template's promote-model pipeline): its steps as they ran before, one Python process per
step, against `mlops/registry.py ci`, the one process that runs them now; same project, same store, one run.

Renders the demo project, trains it once and registers three versions on a fresh MLflow store: version 1
is Production (so the gate compares a challenger with a champion, the usual case), version 2 is staged and
goes through the old steps, version 3 is staged and goes through `ci`. Each command runs as the pipeline
runs it: a new Python process in the project, PYTHONPATH=src. Prints the wall and CPU seconds (user+sys of
the child processes) of each step and in total, side by side with the target.

The store is SQLite by default (`--tracking-uri` takes a server's `/mlflow/<env>` URL, with
MLFLOW_TRACKING_TOKEN set). What the agent adds around the step (checkout, installing missing requirements,
publishing the test results, notify) is not in these figures: benchmarks/pipelines.py measures a step's
overhead.

    python benchmarks/model_ci.py [--tracking-uri URI]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.phase import machine_phase

MODEL = "bench-ci"
TARGET = 10.0
BEFORE = [  # the steps of promote-model.yml before, each a new process (version, junit filled in)
    ("find the version in Staging", ["mlops/registry.py", "--model", MODEL, "find", "--alias", "staging"]),
    ("model tests", ["-m", "pytest", "tests/model", "-p", "no:cacheprovider", "--junitxml={junit}"]),
    ("champion/challenger gate", ["mlops/gate.py", "--model", MODEL, "--candidate", "{version}"]),
    ("tag the version", ["mlops/registry.py", "--model", MODEL, "tag", "--version", "{version}", "--tag",
                         "git_commit=abc", "--tag", "test_status=passed"]),
    ("promote to Production", ["mlops/registry.py", "--model", MODEL, "set-alias", "--version", "{version}",
                               "--alias", "production"]),
]  # fmt: skip


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def step(project: Path, args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall, cpu, output) of `python ARGS` in the project."""
    cpu = cpu_of_children()
    began = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"python {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return wall, cpu_of_children() - cpu, done.stdout


def prepare(root: Path, uri: str) -> tuple[Path, list[str]]:
    """The rendered demo project and three registered versions of MODEL (1 in Production)."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from mlyard.scaffold import TEMPLATE_DIR, default_answers, render_project

    project = render_project(TEMPLATE_DIR, root / "bench-ci", default_answers("bench-ci", demo=True))
    sys.path.insert(0, str(project / "src"))
    package = next(p.name for p in (project / "src").iterdir() if (p / "__init__.py").is_file())
    data = __import__(f"{package}.data", fromlist=["load_split"])
    train = __import__(f"{package}.train", fromlist=["train"])
    features = __import__(f"{package}.features", fromlist=["build_features"])
    split = data.load_split()
    model = train.train(split).model
    x = features.build_features(split.x_train)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    # artifacts in the temporary folder (a new experiment's default would be ./mlruns in the working directory)
    local = None if uri.startswith(("http://", "https://")) else (root / "artifacts").as_uri()
    experiment = client.create_experiment("bench-training", artifact_location=local)
    versions = []
    for _ in range(3):
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x, model.predict(x)),
                                            pip_requirements=["scikit-learn", "mlflow"], registered_model_name=MODEL)
        versions.append(str(info.registered_model_version))
    client.set_registered_model_alias(MODEL, "production", versions[0])
    return project, versions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=None, help="default: a new SQLite store in a temporary folder")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlyard-bench-model-ci-"))
    try:
        uri = args.tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
        if not args.tracking_uri:
            from mlyard.registry import init_store

            init_store(uri, root / "artifacts")
        project, versions = prepare(root, uri)
        from mlflow import MlflowClient

        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODEL_URI", "PYTEST_"))}
        env.update({"PYTHONPATH": "src", "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                    "MLFLOW_TRACKING_URI": uri})  # fmt: skip
        if os.environ.get("MLFLOW_TRACKING_TOKEN"):
            env["MLFLOW_TRACKING_TOKEN"] = os.environ["MLFLOW_TRACKING_TOKEN"]
        client = MlflowClient(uri)

        client.set_registered_model_alias(MODEL, "staging", versions[1])
        before: list[tuple[str, float, float]] = []
        for label, argv in BEFORE:
            filled = [a.format(version=versions[1], junit=root / "TEST-before.xml") for a in argv]
            run_env = {**env, "MODEL_URI": f"models:/{MODEL}@staging"} if "pytest" in argv else env
            wall, cpu, _ = step(project, filled, run_env)
            before.append((label, wall, cpu))

        client.set_registered_model_alias(MODEL, "staging", versions[2])
        ci = ["mlops/registry.py", "--model", MODEL, "ci", "--junitxml", str(root / "TEST-after.xml"), "--tag",
              "git_commit=abc"]  # fmt: skip
        wall, cpu, out = step(project, ci, env)
        promoted = str(client.get_model_version_by_alias(MODEL, "production").version)
        if promoted != versions[2]:
            raise SystemExit(f"ci did not promote version {versions[2]} (production is {promoted}):\n{out}")
        phases = re.search(r"^model CI steps: (.*)$", out, re.MULTILINE)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"model CI steps of promote-model, {os.cpu_count()} CPUs, store {'given' if args.tracking_uri else 'SQLite'}")
    print(f"{'step':<34}{'before wall':>12}{'before cpu':>12}")
    for label, w, c in before:
        print(f"{label:<34}{w:>11.2f}s{c:>11.2f}s")
    total_wall, total_cpu = sum(b[1] for b in before), sum(b[2] for b in before)
    print(f"{'total, 5 processes':<34}{total_wall:>11.2f}s{total_cpu:>11.2f}s")
    print(f"{'mlops/registry.py ci, 1 process':<34}{wall:>11.2f}s{cpu:>11.2f}s  "
          f"target < {TARGET:g} s {'MET' if wall < TARGET else 'NOT MET'}; {wall / total_wall:.2f}x the wall, "
          f"{cpu / total_cpu:.2f}x the CPU of before")  # fmt: skip
    if phases:
        print(f"  where the one process spends it: {phases.group(1)} (the rest: Python, MLflow and pytest imports)")
    print("  before, each step paid again: Python start, `import mlflow` (~1.5 s), opening the store, and for tests "
          "and gate the model's libraries and the model itself")


if __name__ == "__main__":
    with machine_phase():
        main()
