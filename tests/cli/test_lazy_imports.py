"""A cold start imports only what a command needs (issue 10): no timing, just ``sys.modules``.

Each check runs in a fresh interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.inprocess import run_in_process

#: Heavy libraries that a plain run on SQLite never needs at import time.
NEVER_AT_IMPORT = ["httpx", "jsonschema", "fastapi", "uvicorn", "psycopg", "prometheus_client"]
#: ... and that ``import flowledger`` and the entry point (``--version``) also avoid.
ENGINE_LIBRARIES = ["sqlalchemy", "alembic", "pydantic", "jinja2", "typer"]


def imported_after(code: str, names: list[str]) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([n for n in {names!r} if n in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize(
    "code", ["import flowledger", "import flowledger.cli", "import flowledger.cli.app"]
)
def test_importing_the_cli_loads_no_http_schema_or_server_library(code: str) -> None:
    assert imported_after(code, NEVER_AT_IMPORT) == []


@pytest.mark.parametrize("code", ["import flowledger", "import flowledger.cli"])
def test_the_package_and_the_entry_point_load_no_engine_library(code: str) -> None:
    assert imported_after(code, ENGINE_LIBRARIES) == []


def test_the_public_api_still_loads_on_first_use() -> None:
    code = "import flowledger\nflowledger.Engine\nfrom flowledger import step_type, Worker"
    assert imported_after(code, ["sqlalchemy"]) == ["sqlalchemy"]


def test_version_answers_without_the_command_modules() -> None:
    code = (
        "import sys\nsys.argv = ['flowledger', '--version']\n"
        "from flowledger.cli import main\nmain()"
    )
    assert imported_after(code, ["typer", "flowledger.cli.app", *ENGINE_LIBRARIES]) == []


#: What `flowledger run` of a one-step workflow has no use for: servers, HTTP and schema
#: libraries, Alembic (a new file is created at head, an up-to-date one only checked), the
#: other commands' modules and the application resources it does not call; piped, no live
#: table either; nor SQLAlchemy's PostgreSQL dialect (storage.schema.partial_index), nor the
#: built-in step modules the workflow does not name (steps.registry.LAZY_BUILTINS).
NOT_ON_RUN = [
    *NEVER_AT_IMPORT,
    "alembic",
    "sqlalchemy.dialects.postgresql",
    "flowledger.steps.http_request",
    "flowledger.steps.entities",
    "rich.live",
    "rich.table",
    "opentelemetry",
    "flowledger.api",
    "flowledger.web",
    "flowledger.cli.app",
    "flowledger.cli.entities",
    "flowledger.cli.jobs",
    "flowledger.cli.serve",
    "flowledger.cli.tokens",
    "flowledger.cli.workflows",
    "flowledger.app.artifacts",
    "flowledger.app.entities",
    "flowledger.app.hooks",
    "flowledger.app.sessions",
    "flowledger.app.subscriptions",
    "flowledger.app.tokens",
    "flowledger.app.views",
    "flowledger.app.artifact_previews",
    "flowledger.app.endings",
    "flowledger.app.graph_view",
    "flowledger.app.rerun_reuse",
    "flowledger.app.store_tree",
    "flowledger.app.template_values",
]


@pytest.mark.parametrize("database", ["new", "up to date"])
def test_run_of_a_plain_workflow_loads_only_what_it_uses(tmp_path: Path, database: str) -> None:
    workflow = tmp_path / "one.yaml"
    workflow.write_text("name: one\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n")
    db = f"sqlite:///{tmp_path / 'run.db'}"
    argv = ["flowledger", "run", str(workflow), "--db", db]
    code = (
        f"import sys\nsys.argv = {argv!r}\nfrom flowledger.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code"
    )
    if database == "up to date":  # made by a run in this process: not the one looked at
        made = run_in_process(argv[1:], env=os.environ, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
    assert imported_after(code, NOT_ON_RUN) == []
