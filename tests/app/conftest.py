"""An opened application on each database (``db_url`` runs every test on both)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowledger.app import App

HELLO = """\
name: hello
input_schema:
  type: object
  properties: {name: {type: string}}
steps:
  - {id: greet, type: sys.transform, input: {value: "hi {{ input.name }}"}}
"""


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    async with App(db_url) as application:
        yield application


@pytest.fixture
def hello_file(tmp_path: Path) -> str:
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    return str(path)
