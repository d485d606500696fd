"""uvicorn as flowledger runs it, for ``serve`` and a worker's ``--metrics-port`` alike.

uvicorn's own logging set-up is left out (``log_config=None``): its loggers
(``uvicorn.error`` for start-up, shutdown and "Exception in ASGI application",
``uvicorn.access`` for one line per request) then have no handlers of their own and
propagate to the root handler :func:`flowledger.logs.configure_logging` installed, so
``FLOWLEDGER_LOG_FORMAT=json`` covers them too and text stays one format. An access
line hides the values of query parameters named like credentials (``?access_token=``),
as a webhook trigger stores them: logs are collected and kept where secrets must not be.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_plus

import uvicorn
from starlette.types import ASGIApp

from flowledger.codec import HIDDEN, looks_like_credential


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


class CredentialsHidden(logging.Filter):
    """On ``uvicorn.access``: its record's path (``args[2]``, "GET /x?a=1") with the
    values of credential-named query parameters hidden."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 2 and "?" in str(args[2]):
            record.args = (*args[:2], hidden_query(str(args[2])), *args[3:])
        return True


def hidden_query(path: str) -> str:
    """``path`` with the value of each query parameter named like a credential hidden."""
    base, _, query = path.partition("?")
    parts = []
    for part in query.split("&"):
        name, equals, _value = part.partition("=")
        hidden = equals and looks_like_credential(unquote_plus(name))
        parts.append(f"{name}={HIDDEN}" if hidden else part)
    return f"{base}?{'&'.join(parts)}"


_ACCESS = logging.getLogger("uvicorn.access")
if not any(isinstance(f, CredentialsHidden) for f in _ACCESS.filters):
    _ACCESS.addFilter(CredentialsHidden())


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
