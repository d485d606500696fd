"""Save a PNG of each web UI page under docs/screenshots/ (see scripts/screenshots)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "screenshots"
FLOWLEDGER = str(Path(sys.executable).parent / "flowledger")
sys.path.insert(0, str(REPO))
from tests.web.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 - the tests' own browser set-up

ORDERS = """
name: order-fulfilment
description: Check stock per line, ask a person above a limit, then confirm
input_schema:
  type: object
  properties:
    customer: {type: string, title: Customer}
    lines: {type: array, title: Order lines}
    express: {type: boolean, default: false}
  required: [customer]
triggers:
  - {type: schedule, cron: "0 9 * * MON-FRI", timezone: Europe/Berlin}
  - {type: webhook, path: new-order, auth: none}
steps:
  - id: total
    type: sys.transform
    input: {value: "{{ input.lines | length }}"}
  - id: big
    type: sys.condition
    input: {expression: "{{ steps.total.output > 2 }}"}
    then: [check_lines]
    else: [small_order]
  - id: check_lines
    type: sys.loop
    input: {items: "{{ input.lines }}", concurrency: 2}
    steps:
      - id: reserve
        type: sys.transform
        input: {value: {sku: "{{ loop.check_lines.item }}", ok: true}}
  - {id: small_order, type: sys.no_action, input: {reason: small}}
  - id: approve
    type: sys.wait_for_input
    after: [check_lines]
    input:
      prompt: "Ship {{ steps.total.output }} lines to {{ input.customer }}?"
      assignee: warehouse
      schema:
        type: object
        properties:
          approved: {type: boolean}
          carrier: {type: string, enum: [dhl, ups, pickup], default: dhl}
          note: {type: string}
        required: [approved]
  - id: confirm
    type: sys.transform
    input: {value: "{{ steps.approve.output.carrier }}"}
"""
FAILING = """
name: nightly-report
steps:
  - {id: fetch, type: sys.transform, input: {value: {rows: 120}}}
  - {id: render, type: sys.fail, input: {message: "template 'weekly.html' not found"}}
  - {id: send, type: sys.transform, input: {value: sent}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([FLOWLEDGER, *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="flowledger-shots-"))
    env = {**os.environ, "FLOWLEDGER_DB": f"sqlite:///{folder / 'shots.db'}"}
    admin = cli(env, "tokens", "create", "alice", "--role", "admin")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [FLOWLEDGER, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("serve did not start")
            time.sleep(0.1)
        for text in (ORDERS, FAILING, ORDERS.replace("concurrency: 2", "concurrency: 3")):
            http.post(
                "/api/v1/workflows",
                content=textwrap.dedent(text),
                headers={"Content-Type": "application/yaml"},
            ).raise_for_status()
        lines = ["A-100", "B-220", "C-310", "D-404"]
        waiting = http.post(
            "/api/v1/workflows/order-fulfilment/executions",
            json={"input": {"customer": "ACME", "lines": lines}},
        ).json()["id"]
        http.get(f"/api/v1/executions/{waiting}", params={"wait": 30})
        failed = http.post("/api/v1/workflows/nightly-report/executions", json={}).json()["id"]
        http.get(f"/api/v1/executions/{failed}", params={"wait": 30})
        for customer in ("Globex", "Initech"):
            http.post(
                "/api/v1/workflows/order-fulfilment/executions",
                json={"input": {"customer": customer, "lines": ["X-1"]}},
            )
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for scheme in ("light", "dark"):
                context = browser.new_context(
                    base_url=url, viewport={"width": 1280, "height": 900}, color_scheme=scheme
                )
                page = context.new_page()
                page.goto("/signin")
                suffix = "" if scheme == "light" else "-dark"
                page.screenshot(path=OUT / f"signin{suffix}.png")
                page.fill("#token", admin)
                page.click("form[action='/signin'] button")
                page.wait_for_url("**/executions")
                page.screenshot(path=OUT / f"executions{suffix}.png")
                page.goto(f"/executions/{waiting}")
                page.wait_for_selector(".graph-svg")
                page.screenshot(path=OUT / f"execution-waiting{suffix}.png", full_page=True)
                if scheme == "light":
                    page.goto(f"/executions/{failed}")
                    page.wait_for_selector(".graph-svg")
                    page.locator('.graph-svg .node[data-step="render"]').click()
                    page.fill("#expression", "{{ steps.fetch.output.rows * 2 }}")
                    page.click("#console button")
                    page.wait_for_selector(".console-result")
                    page.screenshot(path=OUT / "execution-failed.png", full_page=True)
                    page.goto("/workflows/order-fulfilment?version=2&diff=1")
                    page.wait_for_selector(".graph-svg")
                    page.screenshot(path=OUT / "workflow.png", full_page=True)
                    page.goto("/workflows")
                    page.screenshot(path=OUT / "workflows.png")
                context.close()
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    print(f"saved under {OUT.relative_to(REPO)}/")


if __name__ == "__main__":
    main()
