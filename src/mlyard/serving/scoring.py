"""MLflow's scoring protocol for one loaded model, with a fast path for the common case.

Every request MLflow's own server (`mlflow.pyfunc.scoring_server`) would answer is answered the
same way: anything the fast path does not recognise goes through MLflow's `invocations` function
itself, so the predictions, status codes and error bodies are MLflow's.

The fast path covers a model whose signature is named `double` columns (a typical scikit-learn
model) receiving `dataframe_split` / `dataframe_records` JSON, or CSV, whose columns are exactly the
signature's, in order, holding only numbers. The DataFrame such a request turns into is then
already what MLflow's schema enforcement would produce, so that enforcement (the bulk of MLflow's
per-request cost) is skipped, and the frame is built from one numpy array instead of Python lists.
Anything unusual (booleans, nulls, strings, params, extra keys, a failing prediction) falls back to
MLflow's path, which also produces MLflow's error message.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server
from mlflow.types import DataType
from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj

JSON = "application/json"
# Flavors whose pyfunc wrapper only hands the frame to the library: for them a frame that already
# matches the signature can skip PyFuncModel.predict's schema enforcement.
_DIRECT_FLAVORS = frozenset({"mlflow.sklearn", "mlflow.xgboost", "mlflow.lightgbm", "mlflow.catboost"})
_NUMERIC_KINDS = frozenset("iuf")


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, media type and body."""

    status: int
    media_type: str
    body: bytes


class Scorer:
    """Turns `/invocations` request bodies into MLflow-formatted replies for one model."""

    def __init__(self, pyfunc: Any) -> None:
        self._model = pyfunc
        self._schema = pyfunc.metadata.get_input_schema()
        self._columns = _fast_columns(pyfunc, self._schema)
        self._column_list = list(self._columns) if self._columns else None
        self._column_index = pd.Index(self._columns) if self._columns else None
        self._row_of = itemgetter(*self._columns) if self._columns and len(self._columns) > 1 else None
        direct = getattr(pyfunc, "loader_module", None) in _DIRECT_FLAVORS
        self._predict = pyfunc._predict_fn if direct and hasattr(pyfunc, "_predict_fn") else pyfunc.predict

    @property
    def has_fast_path(self) -> bool:
        return self._columns is not None

    def invoke(self, body: bytes, content_type: str | None) -> Reply:
        """Answer one `POST /invocations`."""
        if self._columns is not None:
            try:
                frame = self.fast_frame(body, content_type)
                if frame is not None:
                    return _ok(self._predict(frame))
            except Exception:
                pass  # MLflow's path below reports the error its own way
        return self._mlflow_path(body, content_type)

    def _mlflow_path(self, body: bytes, content_type: str | None) -> Reply:
        try:
            result = scoring_server.invocations(body, content_type or "", self._model, self._schema)
        except MlflowException as exc:
            return Reply(exc.get_http_status_code(), JSON, exc.serialize_as_json().encode())
        return Reply(result.status, result.mimetype, result.response.encode())

    def fast_frame(self, body: bytes, content_type: str | None) -> pd.DataFrame | None:
        """The request as a signature-conforming DataFrame, or None to take MLflow's path."""
        if content_type == JSON:
            if b"true" in body or b"false" in body:  # numpy would silently turn booleans into numbers
                return None
            return self._frame_from_json(body)
        if content_type == scoring_server.CONTENT_TYPE_CSV:
            return self._frame_from_csv(body)
        return None

    def _frame_from_json(self, body: bytes) -> pd.DataFrame | None:
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        if type(doc) is not dict or len(doc) != 1:
            return None
        ((key, value),) = doc.items()
        index = None
        if key == scoring_server.DF_SPLIT:
            if type(value) is not dict or value.get("columns") != self._column_list:
                return None
            if not value.keys() <= {"columns", "data", "index"}:
                return None
            rows, index = value.get("data"), value.get("index")
        elif key == scoring_server.DF_RECORDS:
            rows = self._rows_from_records(value)
        else:
            return None
        return self._frame(rows, index)

    def _rows_from_records(self, records: Any) -> list[Any] | None:
        if type(records) is not list or self._row_of is None:
            return None
        width = len(self._columns or ())
        try:
            if any(type(r) is not dict or len(r) != width for r in records):
                return None
            return [self._row_of(r) for r in records]
        except KeyError:
            return None

    def _frame(self, rows: Any, index: Any) -> pd.DataFrame | None:
        if type(rows) is not list or not rows:
            return None
        try:
            array = np.array(rows)
        except ValueError:  # ragged rows
            return None
        if array.dtype.kind not in _NUMERIC_KINDS or array.ndim != 2 or array.shape[1] != len(self._columns or ()):
            return None
        if index is not None and (type(index) is not list or len(index) != len(rows)):
            return None
        return pd.DataFrame(array.astype(np.float64, copy=False), columns=self._column_index, index=index, copy=False)

    def _frame_from_csv(self, body: bytes) -> pd.DataFrame | None:
        try:
            frame = pd.read_csv(io.BytesIO(body))
        except Exception:
            return None
        if list(frame.columns) != self._column_list or frame.empty:
            return None
        if any(dtype.kind not in _NUMERIC_KINDS for dtype in frame.dtypes):
            return None
        return frame.astype(np.float64)


def _ok(raw_predictions: Any) -> Reply:
    """MLflow's `predictions_to_json`, as one `json.dumps` call."""
    payload = {"predictions": _get_jsonable_obj(raw_predictions, pandas_orient="records")}
    return Reply(200, JSON, json.dumps(payload, cls=NumpyEncoder).encode())


def _fast_columns(pyfunc: Any, schema: Any) -> tuple[str, ...] | None:
    """The signature's column names when every column is a required named `double`, else None."""
    metadata = pyfunc.metadata
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None
    if metadata.get_params_schema() is not None or metadata._is_signature_from_type_hint():
        return None
    if metadata._is_type_hint_from_example():
        return None
    inputs = schema.inputs
    if any(getattr(spec, "type", None) != DataType.double or not spec.required for spec in inputs):
        return None
    names = tuple(spec.name for spec in inputs)
    return names if len(set(names)) == len(names) else None
