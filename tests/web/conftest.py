"""Browser tests of the web UI: Playwright driving Debian's Chromium against a real
``flowledger serve`` subprocess (tests/api/conftest.py's ``launch``).

One browser and one server per module keep these quick. The browser is not
session-wide because sync Playwright keeps an event loop running on the main thread
while it is open, which the async tests of other directories cannot share. Without
/usr/bin/chromium the tests skip, except in CI (``CI=true``: scripts/test installs it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.api.conftest import Service, launch
from tests.web.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.web.fast_routes import WebApps


@pytest.fixture(scope="module")
def browser(starting_ui: Future[Service]) -> Iterator[object]:
    """Chromium, launched while the module's server starts (each takes seconds): every
    test that drives the browser drives that server."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing (scripts/test installs it in CI)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def starting_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Future[Service]]:
    """One server (SQLite, workers in-process) per module, with a token per role, started
    on a thread of its own (``ui`` waits for it); stopped, and its exit code checked, after
    the module. Outputs over 4 KiB become artifacts (how the UI shows an offloaded output
    is tested too)."""
    folder = tmp_path_factory.mktemp("ui")
    budget = {"FLOWLEDGER_OUTPUT_BUDGET": "4096"}
    with ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        yield pool.submit(
            stack.enter_context, launch(f"sqlite:///{folder / 'ui.db'}", folder, env=budget)
        )


@pytest.fixture(scope="module")
def ui(starting_ui: Future[Service]) -> Service:
    return starting_ui.result()


@pytest.fixture(scope="module")
def web_apps() -> WebApps:
    """The in-process page tests' applications, their routes built once per module."""
    return WebApps()
