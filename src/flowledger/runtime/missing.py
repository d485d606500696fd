"""The error for an execution id that names none, saying when it is the beginning of
one: the CLI takes a prefix of an id, the API only whole ids (tour 25 L5: a copied
short id answered a bare 404). Every read of an execution by id raises this."""

from __future__ import annotations

from flowledger.errors import NotFoundError
from flowledger.runtime.ids import known_execution_id
from flowledger.storage.base import Row, Store

#: An execution id's length (a UUID's): only a shorter one can begin another.
WHOLE_ID = 36


async def missing_execution(store: Store, execution_id: str) -> NotFoundError:
    message = f"execution {execution_id} does not exist"
    if len(execution_id) < WHOLE_ID:  # a full id is looked up once only
        found = await store.find_executions(execution_id, 2)
        if len(found) == 1:
            message += f"; it begins the id of execution {found[0]}: the API takes whole ids"
        elif found:
            message += "; it begins the ids of several executions: the API takes whole ids"
    return NotFoundError(message)


async def execution_row(store: Store, execution_id: str) -> Row:
    """The execution's row, or the error that says there is none (or what it begins)."""
    known_execution_id(execution_id)
    row = await store.get_execution(execution_id)
    if row is None:
        raise await missing_execution(store, execution_id)
    return row
