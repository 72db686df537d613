"""`predict`: the inputs as one MLflow scoring request, sent to the deployment's scoring URI (`/invocations`).

The scoring servers of a deployment take no token (as `mlflow models serve`): nothing secret is sent.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from mlflow.deployments import PredictionsResponse
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE
from mlflow.utils.proto_json_utils import NumpyEncoder

from mlyard.deployments_plugin.errors import TargetError, invalid

MAX_REQUEST = 64 * 1024 * 1024  # the scoring server's own limit on a request body
MAX_ANSWER = 256 * 1024 * 1024  # bytes of predictions read back
TIMEOUT = 300.0  # seconds for one prediction (the model runs it to completion)
INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")  # MLflow's request shapes


def request_body(inputs: Any) -> bytes:
    """MLflow's JSON request for `inputs`: a DataFrame as `dataframe_split`, a dict already in one of MLflow's
    shapes as it is, any other dict, list or array as `inputs`."""
    import pandas as pd

    if isinstance(inputs, pd.DataFrame):
        body: Any = {"dataframe_split": inputs.to_dict(orient="split")}
    elif isinstance(inputs, pd.Series):
        body = {"inputs": inputs.tolist()}
    elif isinstance(inputs, dict) and any(key in inputs for key in INPUT_KEYS):
        body = inputs
    elif isinstance(inputs, dict | list | tuple) or hasattr(inputs, "tolist"):
        body = {"inputs": inputs.tolist() if hasattr(inputs, "tolist") else inputs}
    else:
        raise invalid(f"cannot send inputs of type {type(inputs).__name__}: give a pandas DataFrame, a dict, "
                      "a list or a numpy array")  # fmt: skip
    data = json.dumps(body, cls=NumpyEncoder).encode()
    if len(data) > MAX_REQUEST:
        raise invalid(f"the request is {len(data)} bytes, over the scoring server's {MAX_REQUEST} bytes: "
                      "send the rows in batches")  # fmt: skip
    return data


def predict(scoring_uri: str, inputs: Any, *, what: str) -> PredictionsResponse:
    """POST the inputs to `scoring_uri`; the answer as MLflow's PredictionsResponse. `what` names the deployment
    in errors."""
    data = request_body(inputs)
    parts = urlsplit(scoring_uri)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname or "", parts.port, timeout=TIMEOUT)
    try:
        connection.request("POST", parts.path or "/invocations", body=data,
                           headers={"Content-Type": "application/json", "Accept": "application/json"})  # fmt: skip
        answer = connection.getresponse()
        content = answer.read(MAX_ANSWER + 1)
    except (OSError, http.client.HTTPException) as exc:
        message = f"{what}: cannot reach its scoring URI {scoring_uri}: {exc}"
        raise TargetError(message, TEMPORARILY_UNAVAILABLE) from None
    finally:
        connection.close()
    if len(content) > MAX_ANSWER:
        raise TargetError(f"{what}: the predictions are over {MAX_ANSWER} bytes: send fewer rows")
    text = content.decode("utf-8", errors="replace")
    if answer.status >= 400:
        raise TargetError(f"{what}: {scoring_uri} answered {answer.status}: {_message(text)}",
                          INVALID_PARAMETER_VALUE if answer.status < 500 else TEMPORARILY_UNAVAILABLE)  # fmt: skip
    try:
        return PredictionsResponse.from_json(text)
    except MlflowException:
        raise TargetError(f"{what}: {scoring_uri} answered no predictions: {text[:200]!r}") from None


def _message(text: str) -> str:
    """MLflow's error message (`{"error_code", "message"}`), else the start of the body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500] or "(no message)"
    return str(body.get("message") or body)[:2000] if isinstance(body, dict) else text[:500]
