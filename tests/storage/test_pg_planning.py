"""PostgreSQL's reads by id are planned for the ids they are given (PostgresStore,
``_read_options``): a generic plan settled on while a table was small would keep
scanning the whole table as it grows."""

from __future__ import annotations

import pytest

from flowledger.storage.postgres import PostgresStore
from tests.storage.conftest import new_execution

pytestmark = pytest.mark.postgresql


async def test_reads_by_id_never_settle_on_a_generic_plan(pg: PostgresStore) -> None:
    """psycopg prepares a statement at its fifth use; PostgreSQL then keeps one generic
    plan for it (on a small table: a sequential scan)."""
    execution_id = await new_execution(pg)
    for _ in range(40):  # on every reader: each read goes to whichever thread is free
        assert await pg.read_execution(execution_id) is not None
        assert await pg.get_execution(execution_id) is not None
    generic: list[int] = []

    def count() -> None:
        # A statement without parameters has one plan, counted as generic.
        found = pg.conn.exec_driver_sql(
            "SELECT count(*) FROM pg_prepared_statements "
            "WHERE generic_plans > 0 AND cardinality(parameter_types) > 0"
        ).scalar_one()
        pg.conn.commit()
        generic.append(int(found))

    await pg._readers.on_each_thread(count)
    assert len(generic) == 3 and sum(generic) == 0
