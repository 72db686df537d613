"""The `local` serving target: one scoring server process per deployed model.

`mlyard.serving.process` starts and stops endpoints (no MLflow import); `mlyard.serving.app`
(`create_app`) and `mlyard.serving.server` (`serve`, `python -m mlyard.serving`) are the server
itself. See docs/serving.md.
"""

from mlyard.serving.process import (
    Endpoint,
    EndpointFailed,
    find_free_port,
    start_endpoint,
    stop_process_group,
    wait_healthy,
)

__all__ = ["Endpoint", "EndpointFailed", "find_free_port", "start_endpoint", "stop_process_group", "wait_healthy"]
