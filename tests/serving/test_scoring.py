"""The Scorer answers every request exactly as MLflow's scoring function does, fast path or not."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server

from mlyard.serving.scoring import Reply, Scorer
from tests.serving.cases import CASES, ids, message_pattern
from tests.serving.conftest import COLUMNS, Store

pytestmark = pytest.mark.slow  # the session store trains and registers models


def mlflow_reply(model: Any, body: bytes, content_type: str) -> Reply:
    """What `mlflow models serve` answers: its `invocations` wrapped as its route wraps it."""
    try:
        result = scoring_server.invocations(body, content_type, model, model.metadata.get_input_schema())
    except MlflowException as exc:
        return Reply(exc.get_http_status_code(), "application/json", exc.serialize_as_json().encode())
    return Reply(result.status, result.mimetype, result.response.encode())


def comparable(reply: Reply) -> tuple[int, str, Any]:
    if reply.media_type != "application/json":
        return reply.status, reply.media_type, reply.body
    body = json.loads(reply.body)
    body.pop("stack_trace", None)  # the traceback names the caller's frames
    return reply.status, reply.media_type, body


@pytest.fixture(scope="module")
def scorer(store: Store) -> Scorer:
    return Scorer(store.model)


# MLflow's own parsing of the ragged rows case warns of a pandas 4 change (both replies go through it, and are
# compared): shown, the warning's report makes the xdist controller import pandas to rebuild its class (1-2 s of CPU).
@pytest.mark.filterwarnings("ignore:Constructing a DataFrame from a list of sequences with mismatched lengths")
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_same_reply_as_mlflow(case: dict[str, Any], scorer: Scorer, store: Store) -> None:
    body = case["body"].encode()
    reply = scorer.invoke(body, case["content_type"])
    assert comparable(reply) == comparable(mlflow_reply(store.model, body, case["content_type"]))
    assert reply.status == case["status"]
    assert (scorer.fast_frame(body, case["content_type"]) is not None) == case["fast"]
    if case["status"] == 200:
        assert json.loads(reply.body) == {"predictions": store.predict(case["rows"])}
    elif reply.media_type == "application/json":
        assert message_pattern(case).match(json.loads(reply.body)["message"])
    else:
        assert message_pattern(case).match(reply.body.decode())


def test_fast_path_is_byte_identical_on_random_rows(scorer: Scorer, store: Store) -> None:
    rows = np.random.default_rng(7).normal(scale=3, size=(100, 3)).tolist()
    for body in (
        json.dumps({"dataframe_split": {"columns": COLUMNS, "data": rows}}),
        json.dumps({"dataframe_records": [dict(zip(COLUMNS, row, strict=True)) for row in rows]}),
    ):
        assert scorer.fast_frame(body.encode(), "application/json") is not None
        reply = scorer.invoke(body.encode(), "application/json")
        assert reply == mlflow_reply(store.model, body.encode(), "application/json")
        assert json.loads(reply.body) == {"predictions": store.predict(rows)}


def test_fast_path_applies_to_this_model(scorer: Scorer) -> None:
    assert scorer.has_fast_path
