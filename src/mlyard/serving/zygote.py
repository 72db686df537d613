"""The warm pool's fork server: one process imports what scoring needs once, then forks a standby per request.

`python -m mlyard.serving --zygote --control-fd N` (mlyard.serving.server.zygote) is started by the pool
(mlyard.serving.pool) with the pool's clean environment. The protocol, the `Zygote` handle and the forks'
`Forked` handles are mlyard.forkserver's, shared with the environments' MLflow servers
(mlyard.registry.tracking_server): see that module.
"""

from mlyard.forkserver import EXIT_UNKNOWN, MAX_MESSAGE, Forked, Zygote, ZygoteGone, serve_forks

__all__ = ["EXIT_UNKNOWN", "MAX_MESSAGE", "Forked", "Zygote", "ZygoteGone", "serve_forks"]
