"""uvicorn as flowledger runs it, for ``serve`` and a worker's ``--metrics-port`` alike.

uvicorn's own logging set-up is left out (``log_config=None``): its loggers
(``uvicorn.error`` for start-up, shutdown and "Exception in ASGI application",
``uvicorn.access`` for one line per request) then have no handlers of their own and
propagate to the root handler :func:`flowledger.logs.configure_logging` installed, so
``FLOWLEDGER_LOG_FORMAT=json`` covers them too and text stays one format.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp


class Server(uvicorn.Server):
    """uvicorn that leaves SIGTERM and SIGINT to the command running it (it drains its
    own work first)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server(api: ASGIApp, host: str, port: int, *, level: str, **options: Any) -> Server:
    """A server of ``api`` on ``host:port`` logging at ``level`` and above (access lines
    are INFO) through the process's handlers; ``options`` are more ``uvicorn.Config``."""
    config = uvicorn.Config(
        api,
        host=host,
        port=port,
        log_level=level.lower(),
        log_config=None,
        lifespan="off",
        server_header=False,
        **options,
    )
    return Server(config)
