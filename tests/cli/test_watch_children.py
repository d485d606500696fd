"""`executions watch` of a parent shows its children's lines, labelled as `run` labels
them (tour 25 M1: it showed none, so a ten-minute fan-out looked idle for ten minutes)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.cli.conftest import FLOWLEDGER, Cli
from tests.conftest import REPO

KID = """\
name: kid
steps:
  - {id: nap, type: sys.delay, input: {duration: 200ms}}
"""
# One child at a time: the later ones start after `watch` has begun.
FAMILY = """\
name: family
steps:
  - id: kids
    type: sys.sub_workflow
    input: {workflow: kid, items: [1, 2, 3], concurrency: 1, input: {}}
"""


def test_watch_shows_the_lines_of_children_started_later(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    for name, text in (("kid.yaml", KID), ("family.yaml", FAMILY)):
        (tmp_path / name).write_text(text)
    pushed = cli("workflows", "push", str(tmp_path / "kid.yaml"), str(tmp_path / "family.yaml"))
    assert pushed.returncode == 0, pushed.stderr
    started = cli("start", "family")
    assert started.returncode == 0, started.stderr
    parent = started.stdout.strip()
    env = {**os.environ, "FLOWLEDGER_DB": db_url, "COLUMNS": "200"}
    watch = subprocess.Popen(
        [FLOWLEDGER, "executions", "watch", parent],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    worker = subprocess.Popen(
        [FLOWLEDGER, "worker"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        env=env,
    )
    try:
        watched, err = watch.communicate(timeout=120)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    children = cli("executions", "list", "--parent", parent, "--json")
    kids = [doc["id"][:8] for doc in json.loads(children.stdout)]
    assert len(kids) == 3, children.stdout
    for kid in kids:  # each child's lines, from its start to its end, with its label
        assert re.search(rf"child {kid} execution\.created", watched), watched
        assert re.search(rf"child {kid} step\.completed\s+nap \(attempt 1\)", watched), watched
        assert re.search(rf"child {kid} execution\.completed", watched), watched
    lines = watched.splitlines()
    # The parent's own end comes after its children's.
    own_end = next(i for i, line in enumerate(lines) if re.match(r"\S+ execution\.completed", line))
    before = "\n".join(lines[:own_end])
    assert all(f"child {kid} execution.completed" in before for kid in kids), watched
    assert "Completed  family v1" in watched
