"""uvicorn as flowledger runs it, for ``serve`` and a worker's ``--metrics-port`` alike.

uvicorn's own logging set-up is left out (``log_config=None``): its loggers
(``uvicorn.error`` for start-up, shutdown and "Exception in ASGI application",
``uvicorn.access`` for one line per request) then have no handlers of their own and
propagate to the root handler :func:`flowledger.logs.configure_logging` installed, so
``FLOWLEDGER_LOG_FORMAT=json`` covers them too and text stays one format.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp


class Server(uvicorn.Server):
    """uvicorn that leaves SIGTERM and SIGINT to the command running it (it drains its
    own work first), and calls ``on_listening`` with the port it listens on once its
    socket is bound (a port in use fails before: nothing says it serves)."""

    def __init__(
        self, config: uvicorn.Config, on_listening: Callable[[int], None] | None = None
    ) -> None:
        super().__init__(config)
        self.on_listening = on_listening

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_listening is not None:
            bound = [s for server in self.servers for s in server.sockets or ()]
            self.on_listening(bound[0].getsockname()[1] if bound else self.config.port)


def server(
    api: ASGIApp,
    host: str,
    port: int,
    *,
    level: str,
    on_listening: Callable[[int], None] | None = None,
    **options: Any,
) -> Server:
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
    return Server(config, on_listening)
