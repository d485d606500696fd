"""Which holders are known gone (runtime.orphans), with real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowledger.runtime.orphans import owner_is_dead, this_host


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux's /proc tells zombies")
def test_a_killed_process_its_parent_has_not_reaped_yet_is_dead() -> None:
    """Tour 19, F7: a killed worker's pid answered as alive until it was reaped (its
    parent gone, this machine's init came by a second or two later), so a cancel waited
    on the children it held as on a live holder's. It has ended: it runs nothing."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    owner = f"{this_host()}:{process.pid}:x"
    try:
        assert not owner_is_dead(owner)
        process.kill()  # not waited for: a zombie until reaped
        deadline = time.monotonic() + 30
        while not owner_is_dead(owner):
            assert time.monotonic() < deadline, "still taken for alive"
            time.sleep(0.01)
        os.kill(process.pid, 0)  # not reaped yet: its pid still answers
    finally:
        process.kill()
        process.wait(timeout=30)
