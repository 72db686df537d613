"""Model URIs resolve to one concrete version in the registry, with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlyard.errors import InvalidInput
from mlyard.serving.model import ModelLoadFailed, ModelNotFound, ModelRef, local_artifacts, resolve_model_uri
from tests.serving.conftest import MODEL, Store

pytestmark = pytest.mark.slow  # the session store trains and registers models

RESOLVED = [
    (f"models:/{MODEL}/1", "1"),
    (f"models:/{MODEL}/2", "2"),
    (f"models:/{MODEL}@champion", "1"),
    (f"models:/{MODEL}/Production", "1"),
    (f"models:/{MODEL}/production", "1"),
    (f"models:/{MODEL}/Staging", "2"),
]

FAILURES = [
    ("models:/nope/1", ModelNotFound, "registered model 'nope' not found in the registry"),
    (f"models:/{MODEL}/7", ModelNotFound, f"registered model '{MODEL}' has no version 7"),
    (f"models:/{MODEL}@nope", ModelNotFound, f"registered model '{MODEL}' has no alias 'nope'"),
    (f"models:/{MODEL}/Archived", ModelNotFound, f"registered model '{MODEL}' has no version in stage 'Archived'"),
    (
        f"models:/{MODEL}/latest-ish",
        InvalidInput,
        f"invalid model reference 'latest-ish' for '{MODEL}': use a version number, @alias, "
        "or one of the stages Production, Staging, Archived, None",
    ),
    (
        "models:/a/b/c",
        InvalidInput,
        "invalid model URI 'models:/a/b/c': expected models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/STAGE",
    ),
]


@pytest.fixture(scope="module")
def client(store: Store) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(store.uri, registry_uri=store.uri)


@pytest.mark.parametrize(("uri", "version"), RESOLVED)
def test_resolves_to_a_version(uri: str, version: str, client: Any) -> None:
    assert resolve_model_uri(uri, client) == ModelRef(
        uri=uri, load_uri=f"models:/{MODEL}/{version}", name=MODEL, version=version
    )


def test_other_uris_pass_through(client: Any) -> None:
    assert resolve_model_uri("runs:/abc/model", client) == ModelRef(uri="runs:/abc/model", load_uri="runs:/abc/model")


@pytest.mark.parametrize(("uri", "error", "message"), FAILURES, ids=[f[0] for f in FAILURES])
def test_clear_errors(uri: str, error: type[Exception], message: str, client: Any) -> None:
    with pytest.raises(error) as caught:
        resolve_model_uri(uri, client)
    assert str(caught.value) == message


class DownloadUris:
    """The one MlflowClient call local_artifacts makes."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def get_model_version_download_uri(self, name: str, version: str) -> str:
        return self.uri


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("mlflow-artifacts:/1/models/m-1/artifacts", "{root}/1/models/m-1/artifacts"),
        ("mlflow-artifacts://127.0.0.1:5000/1/models/m-1/artifacts", "{root}/1/models/m-1/artifacts"),
        ("/elsewhere/artifacts", "models:/m/1"),  # logged straight to the store: loaded through the registry
    ],
)
def test_versions_logged_through_the_tracking_server_load_from_its_artifacts(
    tmp_path: Path, source: str, expected: str
) -> None:
    root = tmp_path / "mlartifacts"
    (root / "1/models/m-1/artifacts").mkdir(parents=True)
    ref = ModelRef(uri="models:/m@production", load_uri="models:/m/1", name="m", version="1")
    assert local_artifacts(DownloadUris(source), ref, root) == expected.format(root=root.resolve())
    assert local_artifacts(DownloadUris(source), ref, None) == "models:/m/1"


@pytest.mark.parametrize("source", ["mlflow-artifacts:/../outside", "mlflow-artifacts:/2/models/missing"])
def test_proxied_artifacts_must_be_inside_the_destination(tmp_path: Path, source: str) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "mlartifacts").mkdir()
    ref = ModelRef(uri="models:/m/1", load_uri="models:/m/1", name="m", version="1")
    with pytest.raises(ModelLoadFailed, match=r"the artifacts of models:/m/1 \(mlflow-artifacts:/.*\) are not in "):
        local_artifacts(DownloadUris(source), ref, tmp_path / "mlartifacts")
