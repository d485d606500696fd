"""Request bodies of the HTTP face, as models for the OpenAPI document. They only parse
JSON into the fields of an application request; every rule is the request's own
(``flowledger.app.models``), checked when the route builds it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel
from starlette.requests import Request

from flowledger.app import RerunExecution, StartExecution
from flowledger.app.models import MAX_CANCEL_REASON
from flowledger.errors import InvalidInputError
from flowledger.numbers import NumbersNotBooleans


async def text_body(request: Request, what: str) -> str:
    """The request body as text; a body that is not UTF-8 is refused, naming ``what``."""
    try:
        return (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{what} must be UTF-8 text") from None


class Body(NumbersNotBooleans):
    # NumbersNotBooleans: this face parses a body before the request does, and lax
    # pydantic made "version": true a 1 here, out of the request's sight.
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class StartBody(Body):
    """Start a pushed workflow: its live version, or ``version``."""

    input: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = None
    # As sent: the request holds it to a number or "latest" (a lax int took "1").
    version: Any = Field(
        default=None,
        description='a stored version number, or "latest" (the pushed one)',
        json_schema_extra={"anyOf": [{"type": "integer"}, {"const": "latest"}]},
    )

    def request(
        self, workflow: str, created_by: str, idempotency_key: str | None = None
    ) -> StartExecution:
        """The start this body asks for, of the pushed workflow ``workflow``."""
        return StartExecution(
            workflow=workflow,
            input=self.input,
            version=self.version,
            correlation_id=self.correlation_id,
            created_by=created_by,
            idempotency_key=idempotency_key,
        )


class InputBody(Body):
    """A waiting step's input: ``{"data": …}``."""

    data: Any = None


class RerunBody(Body):
    """A rerun: ``{"fromStep": …, "version": "pinned"|"latest"}`` (the CLI's ``executions
    rerun ID --from STEP_ID --version …``)."""

    from_step: str = Field(description="The first step to run again; earlier ones are reused")
    version: Literal["pinned", "latest"] = Field(
        default="pinned", description="pinned: the original's version; latest: the live one"
    )

    def request(self, execution_id: str, by: str) -> RerunExecution:
        """The rerun this body asks for, of the execution ``execution_id``."""
        return RerunExecution(
            id=execution_id, from_step=self.from_step, version=self.version, by=by
        )


class CancelBody(Body):
    # The limit is the application's (CancelExecution, CancelJobRun check it, with their
    # message); the schema only shows it, so a generated client knows it too.
    reason: (
        Annotated[str, WithJsonSchema({"type": "string", "maxLength": MAX_CANCEL_REASON})] | None
    ) = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_none(cls, value: Any) -> Any:
        # A JSON null was taken as no body before the body was declared a plain object.
        return {} if value is None else value


class EntityTypeBody(Body):
    name: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
