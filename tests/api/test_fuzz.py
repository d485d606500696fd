"""Property-based fuzzing of the served OpenAPI document with schemathesis: a real
``flowledger serve`` (the ``service`` fixture, SQLite and PostgreSQL), an admin token,
every operation, checks "not a server error" and "response conforms to schema".

Bounded for CI: :data:`EXAMPLES` per operation (about 1,500 requests per backend; at 100
it was the suite's longest test, and a derandomized run repeats the same examples each
time, so a larger fixed set finds nothing new from run to run),
no deadline (a request's time is the server's, not hypothesis's), derandomized so a
run is repeatable. Where its time goes: generating the cases in this process (about
10 ms of CPU each, 18 ms under coverage's tracer) and the server's answer; the server is
another process, so the test pauses this process's coverage, which counts nothing here
(tests/untraced.py).

Excluded, and why: ``GET /api/v1/events`` is a live Server-Sent Events stream of every
execution that only ends when the client leaves — a fuzzed request would hang until its
timeout and no response schema describes a stream. ``GET /api/v1/executions/{id}/events``
stays in: without ``Accept: text/event-stream`` it answers JSON, and a stream for an
unknown id answers 404 at once.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.transport.requests import ManagedCookiesSession

from tests.api.conftest import Service
from tests.untraced import coverage_paused

#: What it tests differs between the databases (tests/conftest.py: FACE_TESTS).
pytestmark = pytest.mark.both_databases

EXAMPLES = 50
#: Live streams: long-lived, see the module docstring.
STREAMS = r"^/api/v1/events$"
#: The run must reach at least this many requests (per backend), or it proves little.
AT_LEAST = 1200


@pytest.mark.slow
def test_api_fuzz(service: Service) -> None:
    """Every operation fuzzed in turn; failures are gathered, then reported together."""
    with coverage_paused():  # no flowledger code runs in this process: the server's does
        _fuzz(service)


def _fuzz(service: Service) -> None:
    # Fetched with the suite's 30 s client: from_url's own 10 s limit failed once under load.
    with service.client() as client:
        document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200, document.text
    schema = schemathesis.openapi.from_dict(document.json())
    schema = schema.exclude(path_regex=STREAMS)
    headers = {"Authorization": f"Bearer {service.tokens['admin']}"}
    calls = 0
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    # One keep-alive session for every request (its cookies are dropped between them):
    # schemathesis otherwise opens a session, and a connection, per request, and reads
    # the proxy settings of the environment each time, most of the client's time.
    session = ManagedCookiesSession()
    session.trust_env = False
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(
                base_url=service.base_url,
                session=session,
                headers=headers,
                checks=[not_a_server_error, response_schema_conformance],
                timeout=30,
            )

        try:
            fuzz()
        except Exception as exc:  # every operation is tried; all failures are reported
            failures.append(f"{operation.label}: {exc}"[:3000])
    session.close()
    assert not failures, "\n\n".join(failures)
    assert calls >= AT_LEAST, calls
