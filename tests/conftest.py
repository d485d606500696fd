"""Shared fixtures: every test that uses ``db_url`` runs on SQLite and on PostgreSQL,
each time on its own fresh database."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from flowledger import Engine, StepRegistry
from tests.pg import BACKENDS, Cluster, migrate, session_cluster

REPO = Path(__file__).resolve().parent.parent

RunYaml = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster per session, started on first use."""
    yield from session_cluster()


@pytest.fixture(autouse=True)
def _local_http_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests serve HTTP on 127.0.0.1, which the engine's egress guard refuses by default
    (tests/test_egress.py checks the default itself)."""
    monkeypatch.setenv("FLOWLEDGER_HTTP_ALLOW", "127.0.0.1,::1,localhost")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the current schema, once per process: a test's database
    is a copy (~10 ms), not Alembic's migrations again (~80 ms, ~150 ms under coverage).
    tests/storage/test_migrations.py still migrates empty databases."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    # Fixtures may be set up while an event loop runs: migrate on a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate(f"sqlite:///{path}")).result()
    return path


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database with the current schema: a copy of the migrated SQLite file, or a
    PostgreSQL database copied from the migrated template (~15 ms, versus ~35 ms to
    migrate an empty one)."""
    if request.param == "sqlite":
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "flow.db")
        yield f"sqlite:///{tmp_path / 'flow.db'}"
        return
    # No SQLite file to keep artifacts next to: keep them in the test's folder, not the repo.
    request.getfixturevalue("monkeypatch").setenv(
        "FLOWLEDGER_ARTIFACTS", str(tmp_path / "artifacts")
    )
    yield request.getfixturevalue("pg_url")


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A fresh PostgreSQL database with the current schema (for PostgreSQL-only tests)."""
    name = pg_cluster.lend_database()
    yield pg_cluster.url(name)
    pg_cluster.give_back(name)


@pytest.fixture
def registry() -> StepRegistry:
    return StepRegistry.with_builtins()


@pytest.fixture
async def engine(db_url: str, registry: StepRegistry) -> AsyncIterator[Engine]:
    async with Engine(db_url, registry=registry) as eng:
        yield eng


@pytest.fixture
def run_yaml(engine: Engine) -> RunYaml:
    """Compile a YAML text and run it to the end; returns the execution document."""

    async def run(text: str, input: dict[str, Any] | None = None) -> dict[str, Any]:
        workflow = engine.load_text(textwrap.dedent(text), "test.yaml")
        return await engine.run(workflow, input or {})

    return run


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    """stepId -> status of its latest attempt (top-level steps; loop bodies keyed by index)."""
    out: dict[str, tuple[int, str]] = {}
    for step in doc["steps"].values():
        key = step["stepId"] + "".join(f"[{i}]" for i in step["loop"].values())
        if key not in out or step["attempt"] >= out[key][0]:
            out[key] = (step["attempt"], step["status"])
    return {k: v[1] for k, v in out.items()}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cycles",
        type=int,
        default=None,
        help="kill cycles for the crash test (default $FLOWLEDGER_CRASH_CYCLES or 20)",
    )


#: The faces' tests: the CLI, the HTTP API and the web UI parse, call the application
#: layer and render, so what differs between the databases lies below them and is
#: tested there (tests/app, runtime, storage, worker, ... run on both). Their
#: database-parametrized tests run on SQLite only, unless marked ``both_databases``.
FACE_TESTS = ("tests/api/", "tests/cli/", "tests/web/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the PostgreSQL run of a face test that is not about the database. Decision
    (2026-12-02): the suite had grown to ~27 minutes on CI's two cores, a third of it
    the PostgreSQL runs of face tests that repeat what the layers below test on it."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if _repeats_a_lower_layer_on_postgresql(item):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _repeats_a_lower_layer_on_postgresql(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None or "postgresql" not in callspec.params.values():
        return False  # not a database-parametrized run (PostgreSQL-only tests stay)
    if not item.nodeid.startswith(FACE_TESTS):
        return False
    return item.get_closest_marker("both_databases") is None
