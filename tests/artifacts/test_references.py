"""Reading an artifact opens only a regular file the engine wrote under its root, of the
recorded size, off the event loop where it can be: a reference that names anything else
(an absolute path, ``..``, a symlink out, a FIFO, /dev/zero) is refused before a file is
opened, in words that do not tell whether the path exists (security tour 20 F1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

import flowledger
from flowledger import Engine
from flowledger.app import App
from flowledger.app.models import GetArtifact
from flowledger.artifacts.service import REFERENCE_KEY
from flowledger.errors import StorageError
from tests.artifacts.traps import fifo_trap, forged, outside_file

BUDGET = 1024
REFUSED = "artifact reference flowledger did not make"
NOT_OURS = "is not a regular file inside the artifacts folder"


@pytest.fixture(autouse=True)
def artifacts_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "artifacts"
    monkeypatch.setenv("FLOWLEDGER_ARTIFACTS", str(root))
    monkeypatch.setenv("FLOWLEDGER_OUTPUT_BUDGET", str(BUDGET))
    return root


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


async def offloaded(engine: Engine) -> dict[str, Any]:
    """A genuine reference: an output over the budget, written by the engine."""
    execution_id = await engine.start(
        engine.load_text("name: s\nsteps: [{id: a, type: sys.no_action}]")
    )
    output = {"pad": "x" * 2000}
    reference, _ = engine.artifacts.offload(execution_id, "se-1", "big", output)
    assert set(reference) == {REFERENCE_KEY}
    return reference


def ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.parametrize(
    "place",
    ["absolute", "dotdot", "slash in id", "absolute id"],
)
async def test_a_reference_naming_a_file_outside_the_root_is_refused_unread(
    engine: Engine, elsewhere: Path, artifacts_root: Path, place: str
) -> None:
    path, data = outside_file(elsewhere)
    execution, artifact = {
        "absolute": (str(elsewhere), path.name),
        "dotdot": (f"../{elsewhere.name}", path.name),
        "slash in id": (str(uuid.uuid4()), f"../../{elsewhere.name}/{path.name}"),
        "absolute id": (str(uuid.uuid4()), str(path)),
    }[place]
    with pytest.raises(StorageError) as refused:
        engine.artifacts.read_output(forged(execution, artifact, data), "t")
    assert REFUSED in str(refused.value) and str(elsewhere) not in str(refused.value)
    with pytest.raises(StorageError, match="not described in the engine's format"):
        engine.artifacts.read_file(forged(execution, artifact, data)[REFERENCE_KEY])


async def test_no_message_tells_whether_an_outside_path_exists(
    engine: Engine, elsewhere: Path
) -> None:
    path, _ = outside_file(elsewhere)
    messages = []
    for name in (path.name, "no-such-file"):
        with pytest.raises(StorageError) as refused:
            engine.artifacts.read_output(forged(str(elsewhere), name, b"wrong"), "t")
        messages.append(str(refused.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("link", ["file", "execution folder"])
async def test_a_symlink_out_of_the_root_is_refused(
    engine: Engine, elsewhere: Path, artifacts_root: Path, link: str
) -> None:
    execution, artifact = ids()
    data = json.dumps({"hello": "outside"}).encode()
    if link == "file":
        (elsewhere / "target.json").write_bytes(data)
        (artifacts_root / execution).mkdir(parents=True)
        (artifacts_root / execution / artifact).symlink_to(elsewhere / "target.json")
    else:
        (elsewhere / artifact).write_bytes(data)
        artifacts_root.mkdir()
        (artifacts_root / execution).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StorageError, match=NOT_OURS):
        engine.artifacts.read_output(forged(execution, artifact, data), "t")


async def test_a_fifo_under_the_root_is_never_opened(engine: Engine, artifacts_root: Path) -> None:
    execution, artifact = ids()
    (artifacts_root / execution).mkdir(parents=True)
    fifo = artifacts_root / execution / artifact
    with fifo_trap(fifo) as trap, pytest.raises(StorageError, match=NOT_OURS):
        engine.artifacts.read_output(forged(execution, artifact, b"{}"), "t")
    assert not trap.opened


async def test_the_recorded_size_bounds_the_read(engine: Engine) -> None:
    reference = await offloaded(engine)
    info = reference[REFERENCE_KEY]
    for size in (info["size"] - 1, info["size"] + 1, 10**12):
        wrong = {REFERENCE_KEY: {**info, "size": size}}
        with pytest.raises(StorageError, match=r"does not match its recorded sha256 .* size"):
            engine.artifacts.read_output(wrong, "t")
    for field, value in [("size", str(info["size"])), ("size", True), ("size", -1),
                         ("sha256", info["sha256"].upper()), ("executionId", None)]:  # fmt: skip
        with pytest.raises(StorageError, match=REFUSED):
            engine.artifacts.read_output({REFERENCE_KEY: {**info, field: value}}, "t")
    assert engine.artifacts.read_output(reference, "t") == {"pad": "x" * 2000}


DEV_ZERO = textwrap.dedent(
    """
    import os, resource, sys
    from pathlib import Path
    from flowledger.artifacts.service import ArtifactService
    from tests.artifacts.traps import forged

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    root = Path(sys.argv[1])
    execution, artifact = sys.argv[2], sys.argv[3]
    (root / execution).mkdir(parents=True)
    os.symlink("/dev/zero", root / execution / artifact)
    service = ArtifactService(None, root)
    for reference in (forged("/dev", "zero", b"x"), forged(execution, artifact, b"x")):
        try:
            service.read_output(reference, "t")
            print("read")
        except MemoryError:
            print("ran out of memory")
        except Exception as exc:
            print("refused:", exc)
    """
)


def test_dev_zero_is_never_read(tmp_path: Path) -> None:
    """In a process of its own, with 1 GiB of address space: reading /dev/zero there
    ends in MemoryError within seconds instead of growing the test run until killed."""
    repo = Path(__file__).resolve().parents[2]
    package = Path(flowledger.__file__).resolve().parents[1]  # the flowledger under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package), str(repo)])}
    done = subprocess.run(
        [sys.executable, "-c", DEV_ZERO, str(tmp_path / "root"), *ids()],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=repo,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("refused:") for line in lines), lines
    assert REFUSED in lines[0] and NOT_OURS in lines[1]


async def test_the_api_read_refuses_a_fifo_in_place_of_the_file(
    db_url: str, artifacts_root: Path
) -> None:
    async with App(db_url) as app:
        reference = await offloaded(app.engine)
        info = reference[REFERENCE_KEY]
        path = artifacts_root / info["executionId"] / info["id"]
        path.unlink()
        with fifo_trap(path) as trap, pytest.raises(StorageError, match=NOT_OURS):
            await app.artifacts.read(GetArtifact(id=info["id"]))
        assert not trap.opened


async def test_a_download_refuses_a_symlink_in_place_of_the_file(
    engine: Engine, elsewhere: Path, artifacts_root: Path, tmp_path: Path
) -> None:
    reference = await offloaded(engine)
    info = reference[REFERENCE_KEY]
    path = artifacts_root / info["executionId"] / info["id"]
    copy = elsewhere / "copy.json"
    copy.write_bytes(path.read_bytes())  # the same bytes: only where it lives differs
    path.unlink()
    path.symlink_to(copy)
    with pytest.raises(StorageError, match=NOT_OURS):
        await engine.artifacts.download(info["executionId"], tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
