"""Webhook triggers in: ``POST /hooks/{path}`` starts the workflow whose pushed version
has a ``type: webhook`` trigger on that path (SPEC §1, §6).

What a request goes through, in this order (nothing is written before the last step):

1. Size: a body over ``Settings.hook_body_limit`` (default 1 MiB) is refused
   (:class:`TooLargeError`, 413). The HTTP face stops reading at the limit.
2. Routing: the pushed workflows' webhook triggers; no trigger on the path (or the
   workflow is not pushed) is a :class:`NotFoundError`; two pushed workflows claiming
   the same path is a :class:`ConflictError` until one of them is changed.
3. Authentication: a trigger with ``secret_env`` checks the Standard Webhooks headers
   (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``: HMAC-SHA256 over
   ``id.timestamp.body``, a timestamp within 5 minutes either way, any of several
   ``v1,`` signatures, constant-time compare — the ``standardwebhooks`` package). The
   variable may hold several secrets (rotation on this side): any of them verifies.
   Failure is an :class:`AuthenticationError` (401) saying what was wrong; an unset
   variable is an :class:`UnavailableError` (503: the operator must set it; the
   variable's name goes to the log, not to the caller). ``auth: none`` triggers skip this.
4. Idempotency: the ``webhook-id`` (signed triggers) or the ``Idempotency-Key`` header
   (``auth: none``; optional) becomes the execution's trigger key
   ``webhook:<workflow>:<path>:<key>``. The database's unique index on trigger keys
   makes the start happen once: a replay (a sender's retry, or an attacker's copy, which
   the timestamp check bounds to the tolerance) gets the first execution's id and starts
   nothing. The path is part of the key: one workflow's hooks are different senders (an
   open one, a signed one), and a key sent to one must not stand for a delivery to
   another (an unsigned request pre-empting a signed one). Keys are at most 200
   characters.
5. The trigger document ``{type: webhook, path, headers, body, queryParams}``: header
   names lower-cased; the value of each header and query parameter named like a
   credential (``codec.looks_like_credential``: Authorization, Cookie,
   X-Shopify-Hmac-Sha256, ?code=, ?sig=, ?key=) is ``***``. Decision: hidden here, in
   the one document every face shows and the workflow reads, not where it is shown (the
   API, the pages, the console, a step's output and a child's input would each have to
   hide it, and any one that forgot would show it); a workflow needs no sender's
   credential, the signature being checked above. The body parsed as JSON when the
   content type says JSON (invalid JSON is refused), else kept as text (it must be
   UTF-8). ``input`` in templates is the body; a workflow with an ``input_schema``
   refuses a body that does not match it.
6. The execution is created ``NotStarted`` (``createdBy: webhook:<path>``) and the
   workers are woken; the caller gets its id before any of it runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field
from typing_extensions import TypedDict

from flowledger.app.inputs import parse_json_checked
from flowledger.app.limits import check_no_nul, hook_body_too_large
from flowledger.app.models import Request
from flowledger.app.workflow_ops import webhook_paths
from flowledger.codec import HIDDEN, loads, looks_like_credential, same_json
from flowledger.config import webhook_secrets
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.triggers import WebhookTrigger
from flowledger.errors import (
    AuthenticationError,
    ConflictError,
    InputError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
)
from flowledger.logs import log_extra
from flowledger.runtime.creation import Lineage, execution_rows, validate_input
from flowledger.runtime.engine import Engine
from flowledger.storage import WorkflowVersion

log = logging.getLogger(__name__)

MAX_KEY = 200
#: Seconds a sender of a delivery to a disabled workflow's hook is asked to wait.
DISABLED_RETRY_AFTER = 60


class ReceiveHook(Request):
    """One request to ``/hooks/{path}``: header names in any case; ``query`` maps each
    parameter to its value, or its values when it is repeated."""

    path: str = Field(min_length=1, max_length=200)
    headers: dict[str, str] = Field(default_factory=dict)
    body: bytes = b""
    query: dict[str, str | list[str]] = Field(default_factory=dict)


class HookReceipt(TypedDict):
    executionId: str
    workflow: str
    #: True when this request repeated an earlier one (same webhook-id or Idempotency-Key):
    #: nothing new was started.
    duplicate: bool


@dataclass(frozen=True)
class _Route:
    workflow: CompiledWorkflow
    version: WorkflowVersion
    trigger: WebhookTrigger


def _without_credentials(values: Mapping[str, Any]) -> dict[str, Any]:
    """Headers or query parameters as a trigger stores them: the value of each whose name
    looks like a credential (Authorization, X-Gitlab-Token, ?access_token=) hidden."""
    return {k: HIDDEN if looks_like_credential(k) else v for k, v in values.items()}


class Hooks:
    """The webhook operations of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine, wake: Callable[[], Awaitable[None]]) -> None:
        self._engine = engine
        self._wake = wake

    @property
    def body_limit(self) -> int:
        """The largest body accepted, in bytes (the HTTP face reads no more than this + 1)."""
        return self._engine.settings.hook_body_limit

    async def receive(self, request: ReceiveHook) -> HookReceipt:
        if len(request.body) > self.body_limit:
            raise hook_body_too_large(self.body_limit)
        route = await self._route(request.path)
        headers = {name.lower(): value for name, value in request.headers.items()}
        if route.trigger.secret_env is not None:
            key: str | None = self._verify(route, headers, request.body)
        else:
            key = headers.get("idempotency-key") or None
        if key is not None and (len(key) > MAX_KEY or not key.isprintable()):
            raise InvalidInputError(
                f"the webhook-id or Idempotency-Key must be at most {MAX_KEY} printable characters",
                ("headers",),
            )
        body = _body(headers, request.body)
        check_no_nul(body, ("body",))
        trigger = {
            "type": "webhook",
            "path": request.path,
            "headers": _without_credentials(headers),
            "body": body,
            "queryParams": _without_credentials(request.query),
        }
        workflow = route.workflow
        if workflow.spec.input_schema is not None:
            if not isinstance(body, Mapping):
                raise InputError(
                    f"{workflow.name} has an input_schema, so the webhook body must be a "
                    "JSON object (Content-Type: application/json)"
                )
            trigger["body"] = body = validate_input(workflow, body)  # defaults filled in
        trigger_key = f"webhook:{workflow.name}:{request.path}:{key}" if key else None
        row, created = execution_rows(
            workflow,
            route.version,
            trigger=trigger,
            now=self._engine.clock.now(),
            created_by=f"webhook:{request.path}",
            lineage=Lineage(trigger_key=trigger_key),
        )
        execution_id = await self._engine.store.create_execution(row, [created])
        duplicate = execution_id != row["id"]
        if not duplicate:
            await self._wake()
        else:
            await self._same_body(execution_id, loads(row["trigger"])["body"], key)
        return {"executionId": execution_id, "workflow": workflow.name, "duplicate": duplicate}

    async def _same_body(self, execution_id: str, body: Any, key: str | None) -> None:
        """A delivery again (the sender retried): the same body, or a ConflictError. A key
        sent again with another body is a sender's bug or a replay, never a retry, and
        its payload would be dropped without a word."""
        earlier = await self._engine.store.get_execution(execution_id)
        if earlier is not None and not same_json(
            (loads(earlier["trigger"]) or {}).get("body"), body
        ):
            raise ConflictError(
                f"the webhook-id or Idempotency-Key {key!r} started execution {execution_id} "
                "with another body; a new delivery needs a new key"
            )

    async def _route(self, path: str) -> _Route:
        found: list[_Route] = []
        for version, _, workflow in await self._engine.live_workflows("webhook triggers"):
            for compiled in workflow.triggers:
                spec = compiled.spec
                if isinstance(spec, WebhookTrigger) and spec.path == path:
                    found.append(_Route(workflow, version, spec))
                    break
        if not found:
            for pushed in await self._engine.store.pushed_workflows():
                document = json.loads(pushed.version["document"])
                if pushed.disabled_at is not None and path in webhook_paths(document):
                    # Said to anyone who calls (no token, no signature checked yet): that
                    # it is off, not which workflow it starts nor how to turn it on.
                    # Decision: 503, not 404 (tour 20B): senders take a 404 as "gone" and
                    # stop; a 503 with Retry-After makes them deliver again, so a pause
                    # (disable, then enable) loses no delivery within their retry window.
                    raise UnavailableError(
                        f"the webhook trigger on path {path!r} is disabled for now; "
                        "deliver again later",
                        retry_after=DISABLED_RETRY_AFTER,
                    )
            raise NotFoundError(f"no pushed workflow has a webhook trigger on path {path!r}")
        if len(found) > 1:
            names = ", ".join(sorted(r.workflow.name for r in found))
            raise ConflictError(
                f"several pushed workflows have a webhook trigger on path {path!r} ({names}); "
                "change one of them so the path names one workflow"
            )
        return found[0]

    def _verify(self, route: _Route, headers: dict[str, str], body: bytes) -> str:
        """The verified ``webhook-id``; AuthenticationError when the request is not signed
        with (one of) the trigger's secret(s)."""
        name = route.trigger.secret_env
        assert name is not None
        secrets = webhook_secrets(name)
        if not secrets:
            log.error(
                "webhook path %r of workflow %s: environment variable %s is not set; every "
                "request is refused until it holds the signing secret",
                route.trigger.path,
                route.workflow.name,
                name,
                extra=log_extra("receive_hook"),
            )
            raise UnavailableError(
                "this webhook cannot check signatures: the server has no secret for it yet"
            )
        missing = [h for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
                   if not headers.get(h)]  # fmt: skip
        if missing:
            raise AuthenticationError(
                "the request is not signed: missing header(s) " + ", ".join(missing)
                + " (Standard Webhooks)"
            )  # fmt: skip
        from standardwebhooks import Webhook  # imported by the first signed hook
        from standardwebhooks.webhooks import WebhookVerificationError

        problem = "no signature matches"
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
            except WebhookVerificationError as exc:
                problem = _reason(str(exc))
                if problem != "no signature matches":
                    break  # the timestamp is wrong for every secret alike
            except (ValueError, UnicodeDecodeError):  # malformed header or body; bad secret
                problem = "the signature header is malformed or the body is not UTF-8"
            else:
                return headers["webhook-id"]
        raise AuthenticationError(f"the webhook signature does not verify: {problem}")


def _reason(message: str) -> str:
    if "too old" in message:
        return "the webhook-timestamp is more than 5 minutes in the past (stale or replayed)"
    if "too new" in message:
        return "the webhook-timestamp is more than 5 minutes in the future"
    if "Invalid Signature Headers" in message:
        return "the webhook-timestamp is not a Unix time in seconds"
    return "no signature matches"


def _body(headers: Mapping[str, str], body: bytes) -> Any:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        if not body.strip():
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError("the JSON body is not UTF-8 text", ("body",)) from None
        try:  # the rules every JSON input follows (strict numbers, no lone surrogates)
            return parse_json_checked(text, "the body")
        except InvalidInputError as exc:  # a value JSON cannot hold, at its place in it
            raise InvalidInputError(exc.message, ("body", *exc.field_path[1:])) from None
        except InputError as exc:
            raise InvalidInputError(str(exc), ("body",)) from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(
            "the body is neither JSON (by its Content-Type) nor UTF-8 text", ("body",)
        ) from None
