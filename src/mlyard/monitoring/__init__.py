"""Model monitoring: baseline profiles of training data, the inference table of a deployment, and drift and
quality reports (docs/monitoring.md).

`profile` is importable anywhere (a training job calls it); `table` holds the inference table's writer (run by
the scoring server, off the request path) and readers; `drift` the statistics; `report` the report.
"""
