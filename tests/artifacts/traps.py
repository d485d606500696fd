"""Files a forged artifact reference may name, and what tells whether one was opened.

A FIFO blocks whoever opens it for reading until a writer comes: code that opens one on
the event loop stalls the whole process. :class:`FifoTrap` notices such an open within a
few milliseconds, records it, and releases the reader (it writes ``{}`` and closes), so a
test of code that opens it fails at once instead of hanging.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flowledger.artifacts.service import REFERENCE_KEY


class FifoTrap:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened = False
        self._stop = threading.Event()
        os.mkfifo(path)
        self._thread = threading.Thread(target=self._watch, name="fifo-trap", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            try:
                # Succeeds only while someone has it open for reading.
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    continue
                raise
            self.opened = True
            try:
                os.write(fd, b"{}")
            finally:
                os.close(fd)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@contextmanager
def fifo_trap(path: Path) -> Iterator[FifoTrap]:
    trap = FifoTrap(path)
    try:
        yield trap
    finally:
        trap.close()


def forged(execution_id: str, artifact_id: str, data: bytes = b"", **fields: Any) -> dict[str, Any]:
    """A reference as an outsider writes it: the shape the engine's has, naming any file."""
    info = {
        "id": artifact_id,
        "executionId": execution_id,
        "name": "a",
        "contentType": "application/json",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        **fields,
    }
    return {REFERENCE_KEY: info}


def outside_file(folder: Path) -> tuple[Path, bytes]:
    """A JSON file outside the artifacts root, as an attacker who knows its bytes sees it."""
    data = json.dumps({"hello": "from a file outside the artifacts root"}).encode()
    path = folder / "target.json"
    path.write_bytes(data)
    return path, data
