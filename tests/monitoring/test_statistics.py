"""Baseline profiles and drift statistics on known samples: shifted features are flagged, the others not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlyard.monitoring import drift
from mlyard.monitoring.profile import CATEGORICAL, NUMERIC, OTHER, Profile, profile_frame
from mlyard.monitoring.report import CLASSIFICATION, REGRESSION, build_report, problem_type
from mlyard.monitoring.table import InferenceLogger, Label, read_labels, read_window, write_labels

COLORS = ["red", "green", "blue"]


def training(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "a": rng.normal(0, 1, rows), "b": rng.normal(5, 2, rows), "c": rng.uniform(0, 10, rows),
        "color": rng.choice(COLORS, rows, p=[0.5, 0.3, 0.2]),
    })  # fmt: skip


def flagged(profile: Profile, window: pd.DataFrame) -> set[str]:
    found = {f.name: drift.feature_drift(f, list(window[f.name])) for f in profile.features}
    return {name for name, result in found.items() if result.drifted}


def test_profile_types_quantiles_categories_and_missing() -> None:
    frame = training(1000, 1)
    frame.loc[:99, "a"] = np.nan
    profile = profile_frame(frame, predictions=np.array([0, 1] * 500))
    assert profile.prediction is not None and profile.prediction.kind == CATEGORICAL  # classes, not numbers
    a, color = profile.feature("a"), profile.feature("color")
    assert a is not None and color is not None and profile.prediction is not None
    assert (a.kind, color.kind, a.missing_rate, color.missing_rate) == (NUMERIC, CATEGORICAL, 0.1, 0.0)
    assert (len(a.quantiles), len(a.edges), len(a.fractions)) == (101, 9, 10)
    assert a.quantiles == tuple(sorted(a.quantiles)) and abs(sum(a.fractions) - 1) < 1e-9
    assert [c for c, _ in color.categories] == COLORS and abs(sum(s for _, s in color.categories) - 1) < 1e-9
    assert Profile.from_dict(json.loads(profile.to_json())) == profile  # JSON round trip


def test_many_categories_keep_the_most_frequent_and_other() -> None:
    profile = profile_frame(pd.DataFrame({"id": [f"v{i % 80}" for i in range(800)]}))
    categories = profile.features[0].categories
    assert (len(categories), categories[-1][0]) == (51, OTHER)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_unshifted_traffic_flags_nothing(seed: int) -> None:
    profile = profile_frame(training(5000, 1))
    assert flagged(profile, training(400, seed)) == set()


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_shifted_features_and_only_them_are_flagged(seed: int) -> None:
    profile = profile_frame(training(5000, 1))
    window = training(400, seed)
    window["b"] = window["b"] + 2.0  # one standard deviation
    window["color"] = np.random.default_rng(seed).choice(COLORS, len(window), p=[0.2, 0.3, 0.5])
    assert flagged(profile, window) == {"b", "color"}


def test_psi_and_small_samples() -> None:
    assert drift.psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert drift.psi([0.5, 0.5], [0.9, 0.1]) > drift.PSI_DRIFT
    feature = profile_frame(training(500, 1)).features[1]
    few = drift.feature_drift(feature, [100.0] * (drift.MIN_SAMPLES - 1))  # far off, but too few to judge
    assert (few.drifted, few.psi, "at least 30" in few.reason) == (False, None, True)
    unseen = drift.feature_drift(profile_frame(training(500, 1)).features[3], ["purple"] * 100)
    assert unseen.drifted and unseen.test == "chi2"


def test_problem_type() -> None:
    assert problem_type([0, 1, 1], [1, 0, 1]) == CLASSIFICATION
    assert problem_type(["cat", "dog"], ["dog", "dog"]) == CLASSIFICATION
    assert problem_type([0.5, 1.7], [0.4, 1.9]) == REGRESSION


def test_report_from_the_table_with_labels(tmp_path: Path) -> None:
    """Requests written by the logger, labels posted for some: drift, volume, errors and accuracy by hour."""
    logger = InferenceLogger(tmp_path / "inference", "3", start=False)
    base = datetime(2026, 1, 2, 10, 30, tzinfo=UTC).timestamp()
    window = training(60, 5)
    window["b"] = window["b"] + 4.0
    for index, row in enumerate(window.itertuples(index=False)):
        body = json.dumps({"dataframe_records": [row._asdict()]}).encode()
        logger.offer(f"r{index}", base + index * 60, 2.0 + index % 3, 200, "application/json", body,
                     json.dumps({"predictions": [index % 2]}).encode())  # fmt: skip
    logger.offer("bad", base + 3600, 1.0, 400, "application/json", b"{", b'{"error_code": "BAD_REQUEST"}')
    assert logger.flush() == 61
    labels = [Label(request_id=f"r{i}", label=i % 2 if i < 30 else 1 - i % 2) for i in range(40)]
    assert write_labels(tmp_path / "labels", labels) == 40
    since, until = datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    frame, truncated = read_window(tmp_path / "inference", since, until)
    profile = profile_frame(training(2000, 1), predictions=np.array([0, 1] * 1000))
    report = build_report(deployment="m", environment="dev", frame=frame, labels=read_labels(tmp_path / "labels")[0],
                          profile=profile, baseline="test", since=since, until=until, truncated=truncated)  # fmt: skip
    assert (report.requests, report.errors, report.model_versions, report.drifted) == (61, 1, ("3",), ("b",))
    assert report.latency_p50_ms == 3.0 and report.prediction_drift is not None
    assert report.prediction_drift.drifted is False
    assert report.quality is not None
    assert (report.quality.metric, report.quality.labelled, report.quality.value) == ("accuracy", 40, 0.75)
    assert [(p.hour, p.count) for p in report.quality.by_hour] == [("2026-01-02T10:00Z", 30), ("2026-01-02T11:00Z", 10)]
    assert [p.value for p in report.quality.by_hour] == [1.0, 0.0]
    # A window that ends before the traffic holds none of it.
    empty, _ = read_window(tmp_path / "inference", since - timedelta(days=1), since)
    assert len(empty) == 0


def test_an_empty_window_without_baseline_says_so(tmp_path: Path) -> None:
    since, until = datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC)
    frame, truncated = read_window(tmp_path / "inference", since, until)
    report = build_report(deployment="m", environment="dev", frame=frame, labels=read_labels(tmp_path / "labels")[0],
                          profile=None, baseline="", since=since, until=until, truncated=truncated)  # fmt: skip
    assert (report.requests, report.error_rate, report.latency_p50_ms, report.features, report.quality) == (
        0, 0.0, None, (), None)  # fmt: skip
    assert [n.split(":")[0] for n in report.notes] == ["no baseline profile", "no request in the window"]
    assert json.loads(json.dumps(report.to_dict()))["requests"] == 0


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_baseline_logged_through_a_proxying_tracking_server_is_found(tmp_path: Path) -> None:
    """The generated project's training logs through `/mlflow/<env>`, whose runs have `mlflow-artifacts:/`
    locations that only that server resolves: the report reads them from the server's artifact folder."""
    from mlflow import MlflowClient

    from mlyard.monitoring.profile import PROFILE_ARTIFACT, load_profile
    from mlyard.registry import init_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    init_store(uri, tmp_path / "artifacts")  # as the product creates a store (MLflow's migrations: ~2 s of CPU)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("proxied", artifact_location="mlflow-artifacts:/1")
    run = client.create_run(experiment)
    profile = profile_frame(pd.DataFrame({"a": np.arange(100.0)}))
    stored = tmp_path / "mlartifacts" / "1" / run.info.run_id / "artifacts" / PROFILE_ARTIFACT
    stored.parent.mkdir(parents=True)
    stored.write_text(profile.to_json(), encoding="utf-8")
    assert load_profile(uri, run.info.run_id) is None  # what the report saw before: no baseline
    assert load_profile(uri, run.info.run_id, artifacts_destination=tmp_path / "mlartifacts") == profile
    assert load_profile(uri, run.info.run_id, artifacts_destination=tmp_path / "elsewhere") is None


def test_the_artifacts_of_a_run_are_read_in_place_only_inside_the_environments_folder(tmp_path: Path) -> None:
    """The server reads a baseline without MLflow when the run's artifacts are in the environment's artifacts
    folder: logged through its tracking server (`mlflow-artifacts:/`) or straight to its store (`file:`). Any
    other location (another folder, a way out of it, a remote store) is left to MLflow's client."""
    from mlyard.monitoring.profile import PROFILE_ARTIFACT, local_artifacts, read_profile_file

    destination = tmp_path / "env" / "mlartifacts"
    run = destination / "1" / "abc" / "artifacts"
    (run / PROFILE_ARTIFACT).parent.mkdir(parents=True)
    profile = profile_frame(pd.DataFrame({"a": np.arange(100.0)}))
    (run / PROFILE_ARTIFACT).write_text(profile.to_json(), encoding="utf-8")
    (tmp_path / "secret.json").write_text(profile.to_json(), encoding="utf-8")
    assert local_artifacts(destination, "mlflow-artifacts:/1/abc/artifacts") == run.resolve()
    assert local_artifacts(destination, run.as_uri()) == run.resolve()
    assert read_profile_file(run) == profile
    for elsewhere in ("mlflow-artifacts:/../../", (tmp_path / "other").as_uri(), f"file://{destination}/../..",
                      "s3://bucket/1/abc/artifacts", str(run), ""):  # fmt: skip
        assert local_artifacts(destination, elsewhere) is None, elsewhere
    assert read_profile_file(run, "../../../../secret.json") is None  # the file name cannot leave the folder
    assert read_profile_file(run, "missing.json") is None
    (run / "broken.json").write_text("{", encoding="utf-8")
    assert read_profile_file(run, "broken.json") is None
