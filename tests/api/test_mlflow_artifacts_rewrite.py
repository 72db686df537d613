"""`/mlflow/<env>` answers with the environment's local artifact locations as `mlflow-artifacts:/` URIs.

A version trained by a workspace job (on the environment's SQLite store) has its artifacts in the store's
`mlartifacts/` folder, recorded as a `file://` URI that only the server's machine can open; MLflow's
tracking server serves that same folder as `mlflow-artifacts:/`. Model CI on a remote agent (or in the
sandbox, where the data directory is hidden) must download them over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlyard.api.mlflow_mount import _local_artifacts, rewrite_artifacts


@pytest.mark.parametrize(
    ("given", "served"),
    [
        ("file://{root}/my-model/models/m-1/artifacts", "mlflow-artifacts:/my-model/models/m-1/artifacts"),
        ("{root}/0", "mlflow-artifacts:/0"),
        ("file://{root}", "mlflow-artifacts:/"),
        ("file://{root}-other/x", "file://{root}-other/x"),  # another folder that starts alike: kept
        ("mlflow-artifacts:/1/models/m-2/artifacts", "mlflow-artifacts:/1/models/m-2/artifacts"),
        ("s3://bucket{root}/x", "s3://bucket{root}/x"),  # only at the start of a string
    ],
)
def test_local_artifact_locations_become_mlflow_artifacts_uris(tmp_path: Path, given: str, served: str) -> None:
    root = (tmp_path / "mlartifacts").resolve()
    body = json.dumps({"model_version": {"source": given.format(root=root), "name": "m"}}).encode()
    answer = json.loads(rewrite_artifacts(body, _local_artifacts(tmp_path / "mlartifacts")))
    assert answer["model_version"] == {"source": served.format(root=root), "name": "m"}
