"""Rendering: one autoescaping Jinja2 environment over the package's templates, and the
mapping of the application's errors to pages (sign-in, 403, 404, the form again)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, ParamSpec
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from flowledger import __version__
from flowledger.app.models import MAX_CANCEL_REASON
from flowledger.app.sessions import Session
from flowledger.app.statuses import http_status
from flowledger.app.store_tree import STORE_ENTRIES, STORE_NODES
from flowledger.app.tokens import allows
from flowledger.artifacts.service import REFERENCE_KEY, is_reference
from flowledger.controls import escaped
from flowledger.durations import spoken
from flowledger.errors import AuthenticationError, FlowledgerError, ForbiddenError, NotFoundError
from flowledger.logs import log_extra
from flowledger.web.auth import COOKIE
from flowledger.web.forms import fields_of

P = ParamSpec("P")
log = logging.getLogger(__name__)


def _shown(value: Any) -> Any:
    """Every value a template prints, with its control characters escaped (``\\u202e``,
    flowledger.controls): a right-to-left override in an input would otherwise reverse
    the page around it. Here, so no template can forget it; a macro's or a filter's
    Markup was made of values that passed here already."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return escaped(value)
    return value


def _visible(value: Any) -> Any:
    """A value for ``tojson`` (data a script puts on the page): its strings escaped as
    :func:`_shown` escapes printed text, which JSON's own escaping would undo."""
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, Mapping):
        return {_visible(k): _visible(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_visible(v) for v in value]
    return value


def readable(stamp: str) -> str:
    """A stored time (ISO-8601 UTC) as people read it, to the second, its zone named:
    ``2026-12-01 12:57:24 UTC`` (the exact value goes in the ``<time>``'s attributes)."""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _moment(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def took(doc: Mapping[str, Any]) -> str:
    """How long an ended execution ran, from its start (else its creation) to its end,
    as words (``800ms``, ``1m02s``); "" while it runs."""
    end = _moment(doc.get("failedAt") or doc.get("completedAt"))
    begin = _moment(doc.get("startedAt") or doc.get("createdAt"))
    if end is None or begin is None or end < begin:
        return ""
    return spoken(end - begin)


def human_size(size: int) -> str:
    """A size in bytes as people read it: ``812 bytes``, ``4.9 KiB``, ``1.2 MiB``."""
    if size < 1024:
        return "1 byte" if size == 1 else f"{size} bytes"
    value, units = size / 1024, ["KiB", "MiB", "GiB"]
    while value >= 1024 and len(units) > 1:
        value /= 1024
        units.pop(0)
    return f"{value:.1f} {units[0]}"


def own_correlation(doc: Mapping[str, Any]) -> bool:
    """A correlation id that is not the execution's own id (its default): worth a column."""
    given = doc.get("correlationId")
    return bool(given) and given != doc.get("id")


#: Graphs of more steps are not drawn in the browser (dagre lays a graph out by recursion,
#: one level per rank: a chain of 2,500 steps ran out of Chromium's stack, while 2,000
#: drew in about a second); the page says so instead and sends no graph to draw.
MAX_DRAWN = 2000
#: What the page's script reads of a graph node (views.GraphNode has more).
_DRAWN_NODE = ("id", "label", "type", "status", "parent", "isLoop", "done", "total")


def drawable(graph: Mapping[str, Any]) -> dict[str, Any]:
    """A graph as the page's script draws it, with nothing it does not read: a 1,500-step
    graph is sent again on each live refresh. A step with children links to one (the
    failed one when one failed), not every child's id (10,000 of them, for one step)."""
    nodes = []
    for node in graph["nodes"]:
        slim = {key: node[key] for key in _DRAWN_NODE}
        if node.get("child"):
            slim["child"] = node["child"]
            slim["childFailed"] = node["childFailed"]
        if node.get("failedIterations"):
            slim["failedIterations"] = node["failedIterations"]
        nodes.append(slim)
    edges = [{k: v for k, v in edge.items() if v is not None} for edge in graph["edges"]]
    return {**graph, "nodes": nodes, "edges": edges}


env = Environment(
    loader=PackageLoader("flowledger.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_shown,
)
env.policies["json.dumps_function"] = lambda value, **kwargs: json.dumps(_visible(value), **kwargs)
env.globals["flowledger_version"] = __version__
env.globals["fields_of"] = fields_of
env.globals["REFERENCE_KEY"] = REFERENCE_KEY
env.globals["MAX_DRAWN"] = MAX_DRAWN
env.globals["STORE_ENTRIES"] = STORE_ENTRIES
env.globals["STORE_NODES"] = STORE_NODES
#: The cancel forms' maxlength: the application refuses a longer reason all the same.
env.globals["MAX_CANCEL_REASON"] = MAX_CANCEL_REASON
env.filters["drawable"] = drawable


def _artifact_of(value: Any, owner: str | None = None) -> bool:
    """An output offloaded to an artifact of the execution ``owner`` (the page's), shown
    as a link. Data of that shape in an input, an answer or a webhook body is shown as
    data: a sender could otherwise name another execution's artifact under a name of its
    choosing (tour 21). Without an owner nothing is a link."""
    return (
        owner is not None
        and is_reference(value)
        and value[REFERENCE_KEY].get("executionId") == owner
    )


env.tests["artifact_reference"] = _artifact_of
env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str)
env.filters["compact"] = lambda value: json.dumps(value, ensure_ascii=False, default=str)
env.filters["spoken"] = lambda ms: spoken(timedelta(milliseconds=ms))
env.filters["readable"] = readable
env.filters["took"] = took
env.filters["size"] = human_size
env.tests["own_correlation"] = own_correlation


def is_fragment(request: Request) -> bool:
    """htmx asks for a part of the page (``HX-Request``), not the whole."""
    return request.headers.get("hx-request") == "true"


def page(
    request: Request, template: str, session: Session | None, status: int = 200, **values: Any
) -> HTMLResponse:
    role = session.caller["role"] if session is not None else None
    context = {
        "request": request,
        "session": session,
        "who": session.caller if session is not None else None,
        "can_operate": role is not None and allows(role, "operator"),
        "can_admin": role is not None and allows(role, "admin"),
        "csrf": session.csrf if session is not None else "",
        **values,
    }
    html = env.get_template(template).render(context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def guarded(
    handler: Callable[P, Awaitable[Response]],
) -> Callable[P, Awaitable[Response]]:
    """Errors the handler lets through become pages: no session → sign-in (back here
    after; a form posted: a page saying so, signing in back to its page), a role too
    low → 403, nothing there → 404, any other refusal → 400 with the
    application's one-line message."""

    @wraps(handler)
    async def run(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs.get("request")
        assert isinstance(request, Request)
        try:
            return await handler(*args, **kwargs)
        except AuthenticationError as exc:
            if request.method == "GET" and not is_fragment(request):
                target = quote(
                    request.url.path + (f"?{request.url.query}" if request.url.query else "")
                )
                return RedirectResponse(f"/signin?next={target}", status_code=303)
            if not is_fragment(request):
                return _session_ended(request, exc)
            # A page refreshing itself (htmx) after its session ended: htmx leaves a
            # 401 unswapped, so the page went stale in silence. Send it to sign in.
            refused = page(request, "error.html", None, 401, title="Sign in", message=str(exc))
            current = urlsplit(request.headers.get("HX-Current-URL", ""))
            back = current.path + (f"?{current.query}" if current.query else "")
            refused.headers["HX-Redirect"] = f"/signin?next={quote(back or '/')}"
            return refused
        except ForbiddenError as exc:
            who = await _signed_in(request)
            return page(request, "error.html", who, 403, title="Forbidden", message=str(exc))
        except NotFoundError as exc:
            who = await _signed_in(request)
            return page(request, "error.html", who, 404, title="Not found", message=str(exc))
        except FlowledgerError as exc:
            status = http_status(exc)[0]
            who = await _signed_in(request)
            return page(request, "error.html", who, status, title="Refused", message=str(exc))
        except Exception as exc:  # a bug: a page that says so, the traceback in the log
            method, path = request.method, request.url.path
            log.error("%s %s failed: %s", method, path, type(exc).__name__, exc_info=exc,
                      extra=log_extra("web_page", method=method, path=path))  # fmt: skip
            said = (
                f"This page failed ({type(exc).__name__}): a flowledger bug; the server's "
                "log has the details."
            )
            # No session lookup: the database may be what failed.
            return page(request, "error.html", None, 500, title="Something went wrong",
                        message=said)  # fmt: skip

    return run


def safe_next(target: str) -> str:
    """Only a path on this server (no ``//host``, no scheme): an open redirect is a phish."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/executions"


def _session_ended(request: Request, exc: AuthenticationError) -> HTMLResponse:
    """A form posted without a live session (it expired while the page was open, or it
    was signed out): say so, and sign in back to the page it was sent from (the
    ``Referer``, this server's only), where keep.js puts back what was typed."""
    sent_from = urlsplit(request.headers.get("referer", ""))
    back = "/executions"
    if sent_from.netloc == request.url.netloc and sent_from.path:
        back = safe_next(sent_from.path + (f"?{sent_from.query}" if sent_from.query else ""))
    said = (
        "Your session expired, so this form was not sent."
        if COOKIE not in request.cookies
        else f"This form was not sent: {exc}."
    )
    return page(
        request,
        "error.html",
        None,
        401,
        title="Session expired",
        message=said,
        signin=f"/signin?next={quote(back)}",
        back=back,
    )


async def _signed_in(request: Request) -> Session | None:
    """Who is signed in, for an error page's header (None: nobody, or not readable)."""
    from flowledger.web.auth import session_of  # auth renders pages: imported late

    try:
        return await session_of(request)
    except FlowledgerError:
        return None


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
