"""``flowledger serve``: the HTTP API on uvicorn, with the worker duties in the same
process unless ``--no-workers``.

FastAPI and uvicorn are imported inside the command: every other command starts
without them. SIGTERM (or Ctrl-C) stops accepting connections, ends the event streams
(clients reconnect), lets requests in flight finish (up to :data:`GRACE` seconds),
drains the worker (running steps finish or are handed back, as ``flowledger worker``
does) and exits 0.

Tokens: on a loopback host a database without tokens gets a hint how to create one;
on any other host ``serve`` refuses to start without one (exit 2): an API reachable
from the network must not be open to nobody-knows-who, nor closed to everybody.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Annotated

import typer

from flowledger.app import App
from flowledger.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    DbOption,
    LogFormatOption,
    PluginOption,
    app,
    call,
    command,
    fail,
    lease_length,
    opened_waiting,
    service_logging,
    within,
)
from flowledger.config import Settings
from flowledger.logs import log_extra
from flowledger.runtime.engine import default_db_url
from flowledger.worker.watchdog import watch_loop
from flowledger.worker.worker import Worker, WorkerOptions

#: Seconds that requests in flight (long polls) get to finish after SIGTERM; event streams
#: end at once.
GRACE = 30
log = logging.getLogger("flowledger.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="TCP port (0 to 65535; 0: any free one).")
    ] = 8080,
    db: DbOption = None,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="Serve the API only; `flowledger worker`s run.")
    ] = False,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Executions run at once (1 to 1000).")
    ] = 8,
    plugin: PluginOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Serve the HTTP API and the web UI and, unless --no-workers, run the workers too."""
    settings = Settings.from_env()
    level = service_logging(log_format, settings)
    within(port, 0, 65535, "--port")
    within(concurrency, 1, 1000, "--concurrency")
    from flowledger.api import ApiSettings, create_api
    from flowledger.api.hosting import server as make_server
    from flowledger.api.tracing import TracingUnavailable
    from flowledger.heap import freeze_heap
    from flowledger.web import mount_web

    lease = lease_length(None)

    async def go() -> None:
        application = App(
            db or default_db_url(), plugins=plugin or (), lease=lease, limits=settings.limits
        )
        async with opened_waiting(application):
            await _check_tokens(application, host, db)
            try:
                api = create_api(
                    application, ApiSettings(limits=settings.limits, otel=settings.otel)
                )
            except TracingUnavailable as exc:
                fail(str(exc), EXIT_INVALID)
            mount_web(api)  # the web UI at / (a peer of the API; this command composes them)
            worker = None
            if not no_workers:
                worker = Worker(application.engine, WorkerOptions(concurrency, lease))
                application.on_work(worker.wake)

            def listening(bound: int) -> None:
                log.info(
                    "serving on http://%s:%d (%s)",
                    host,
                    bound,
                    "API only" if worker is None else f"with a worker, concurrency {concurrency}",
                    extra=log_extra("serve"),
                )

            server = make_server(
                api,
                host,
                port,
                level=level,  # access lines are INFO: shown at serve's default level
                on_listening=listening,
                timeout_graceful_shutdown=GRACE,
                # The C parser (a declared dependency, so never h11 by accident): h11 was a
                # quarter of a start's server time; 17-20% more starts/s (api_bench, wrk).
                http="httptools",
            )

            def stop() -> None:
                server.should_exit = True
                application.end_waits()  # streams never finish by themselves; polls wait
                if worker is not None:
                    worker.stop()

            with watch_loop(settings.loop_stall.total_seconds()) as watchdog:
                watchdog.handle_stops(stop)
                freeze_heap()  # full collections walked the whole start-up heap: 80-240 ms stalls
                working = asyncio.create_task(worker.run()) if worker is not None else None
                if working is not None:  # a worker that stops by itself ends the server too
                    working.add_done_callback(lambda _: stop())
                try:
                    await server.serve()
                except SystemExit:  # uvicorn exits when it cannot bind
                    pass
                finally:
                    stop()
                    if working is not None:
                        await working
                    spans = getattr(api.state, "span_processor", None)
                    if spans is not None:
                        from flowledger.api.tracing import stop_spans

                        stop_spans(spans)  # flushes the spans still batched (bounded)
                if not server.started:
                    fail(f"could not listen on {host}:{port}", EXIT_FAILED)
                if worker is not None and worker.stopped_because is not None:
                    fail(f"stopped: {worker.stopped_because}", EXIT_FAILED)

    call(go, db=db)


async def _check_tokens(application: App, host: str, db: str | None) -> None:
    if await application.tokens.count():
        return
    hint = command("tokens", "create", "NAME", "--role", "admin", db=db)
    if not is_loopback(host):
        fail(
            f"refusing to serve on {host} without an API token: create one first ({hint})",
            EXIT_INVALID,
        )
    # A log line, not a print: a server's stderr is its log (one JSON object per line).
    log.warning(
        "no API tokens yet: every /api/v1 route will answer 401; create one with `%s`",
        hint,
        extra=log_extra("check_tokens"),
    )
