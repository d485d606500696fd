"""``sys.http_request`` with ``save_as: artifact``, and large answers offloaded on their own."""

from __future__ import annotations

import hashlib
import logging
import textwrap
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowledger import Engine, StepRegistry
from flowledger.artifacts.service import REFERENCE_KEY
from flowledger.errors import DefinitionError, StepError
from flowledger.steps.base import StepContext
from flowledger.steps.http_request import HTTP_REQUEST
from tests import tls
from tests.steps.http_server import serve


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture(autouse=True)
def artifacts_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "artifacts"
    monkeypatch.setenv("FLOWLEDGER_ARTIFACTS", str(root))
    monkeypatch.setenv("FLOWLEDGER_OUTPUT_BUDGET", "1KiB")
    return root


@pytest.fixture
async def engine(db_url: str, registry: StepRegistry) -> AsyncIterator[Engine]:
    # trust_env=False: a proxy configured in the environment must not sit in between.
    async with (
        httpx.AsyncClient(trust_env=False, timeout=5, verify=tls.CONTEXT) as http,
        Engine(db_url, registry=registry, http=http) as eng,
    ):
        yield eng


async def run(engine: Engine, text: str, **input: Any) -> dict[str, Any]:
    return await engine.run(engine.load_text(textwrap.dedent(text)), input)


def output(doc: dict[str, Any], step_id: str) -> Any:
    [step] = [s for s in doc["steps"].values() if s["stepId"] == step_id]
    return step["outputData"]


async def test_the_body_is_saved_as_a_file_and_described_in_the_output(
    engine: Engine, base: str, artifacts_root: Path
) -> None:
    doc = await run(
        engine,
        """
        name: download
        steps:
          - id: dl
            type: sys.http_request
            input: {url: "{{ input.base }}/big?n=300000", save_as: artifact}
          - id: next
            type: sys.transform
            input: {value: "{{ steps.dl.output.statusCode }} {{ steps.dl.output.body.size }}"}
        """,
        base=base,
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    dl = output(doc, "dl")
    [listed] = await engine.artifacts.for_execution(doc["id"])
    assert dl["statusCode"] == 200
    assert dl["headers"]["content-type"] == "text/plain"
    assert dl["body"] == listed
    data = b"x" * 300000
    assert (listed["name"], listed["contentType"], listed["kind"]) == ("big", "text/plain", "saved")
    assert (listed["size"], listed["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert (artifacts_root / doc["id"] / listed["id"]).read_bytes() == data
    assert output(doc, "next") == "200 300000"
    rows = await engine.store.get_step_executions(doc["id"])
    assert max(len(r["output"] or "") for r in rows) < 1024


async def test_a_json_answer_is_saved_unparsed_under_the_name_given(
    engine: Engine, base: str, tmp_path: Path
) -> None:
    doc = await run(
        engine,
        """
        name: named
        steps:
          - id: dl
            type: sys.http_request
            input: {url: "{{ input.base }}/json", save_as: artifact, artifact_name: ../hello.json}
        """,
        base=base,
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    body = output(doc, "dl")["body"]
    assert (body["name"], body["contentType"]) == ("hello.json", "application/json")
    [path] = await engine.artifacts.download(doc["id"], tmp_path / "out")
    assert path == tmp_path / "out" / "hello.json"
    assert path.read_text() == '{"hello": "world", "unicode": "gr\\u00fc\\u00dfe \\u2713"}'


async def test_a_large_download_streams_to_disk_without_the_body_in_memory(
    engine: Engine, base: str, artifacts_root: Path
) -> None:
    size = 24 * 1024 * 1024  # past the 10 MiB an output may hold: no max_response_bytes
    tracemalloc.start()
    try:
        doc = await run(
            engine,
            """
            name: large
            steps:
              - {id: dl, type: sys.http_request, input: {url: "{{ input.url }}", save_as: artifact}}
            """,
            url=f"{base}/big?n={size}&chunked=1",
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    saved = output(doc, "dl")["body"]
    assert saved["size"] == size
    assert saved["sha256"] == hashlib.sha256(b"x" * size).hexdigest()
    assert peak < size / 4  # it held the body whole (twice, with the join) before


async def test_a_download_past_its_limit_leaves_no_file_and_no_row(
    engine: Engine, base: str, artifacts_root: Path
) -> None:
    doc = await run(
        engine,
        """
        name: too-large
        steps:
          - id: dl
            type: sys.http_request
            input: {url: "{{ input.url }}", save_as: artifact, max_response_bytes: 200000}
        """,
        url=f"{base}/big?n=300000&chunked=1",
    )
    assert doc["runtimeStatus"] == "Failed"
    assert "more than 200,000 bytes; raise max_response_bytes" in doc["error"]["message"]
    assert await engine.artifacts.for_execution(doc["id"]) == []
    assert [p for p in artifacts_root.rglob("*") if p.is_file()] == []  # no temporary file


async def test_an_error_answer_saves_nothing(engine: Engine, base: str) -> None:
    doc = await run(
        engine,
        """
        name: failing
        steps:
          - {id: dl, type: sys.http_request, input: {url: "{{ input.base }}/status/404", save_as: artifact}}
        """,
        base=base,
    )
    assert doc["runtimeStatus"] == "Failed"
    assert "answered 404 Not Found" in doc["error"]["message"]
    assert await engine.artifacts.for_execution(doc["id"]) == []


def test_save_as_accepts_only_artifact(registry: StepRegistry) -> None:
    text = """
    name: wrong
    steps:
      - {id: dl, type: sys.http_request, input: {url: "http://x/", save_as: file}}
    """
    with pytest.raises(
        DefinitionError, match=r'step .dl.: input.save_as: must be one of artifact, not "file"'
    ):
        Engine("sqlite://", registry=registry).load_text(textwrap.dedent(text))


async def test_a_large_answer_without_save_as_is_offloaded_and_read_back(
    engine: Engine, base: str
) -> None:
    doc = await run(
        engine,
        """
        name: big-answer
        steps:
          - {id: get, type: sys.http_request, input: {url: "{{ input.base }}/big?n=5000"}}
          - id: next
            type: sys.transform
            input: {value: "{{ steps.get.output.statusCode }} {{ steps.get.output.body | length }}"}
        """,
        base=base,
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert set(output(doc, "get")) == {REFERENCE_KEY}
    assert output(doc, "next") == "200 5000"
    [listed] = await engine.artifacts.for_execution(doc["id"])
    assert (listed["kind"], listed["stepId"]) == ("output", "get")


async def test_without_an_artifacts_service_the_step_says_so(base: str) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=5, verify=tls.CONTEXT) as http:
        ctx = StepContext(
            execution_id="e",
            step_id="dl",
            step_execution_id="se",
            attempt=1,
            idempotency_key="k",
            loop={},
            started_at=datetime.now(UTC),
            http=http,
            logger=logging.LoggerAdapter(logging.getLogger("test"), {}),
        )
        data = HTTP_REQUEST.input_model.model_validate(
            {"url": f"{base}/json", "save_as": "artifact"}
        )
        with pytest.raises(StepError, match=r"ctx\.artifacts is not available"):
            await HTTP_REQUEST.handler(data, ctx)
