"""Engine's own rules that no other runtime module owns."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowledger import CompiledWorkflow, Engine, NotFoundError

HELLO = "name: hello\nsteps: [{id: a, type: sys.no_action}]\n"


async def test_locate_reads_a_file_only_when_asked(engine: Engine, tmp_path: Path) -> None:
    """``locate`` took a name that matched an existing file as that file, unless every
    service path remembered ``stored_only``: a caller's workflow name read as a server
    file. A file is now an opt-in (``allow_file``), a name the default."""
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    for find in (engine.locate, engine.find_workflow):
        with pytest.raises(NotFoundError, match=r"there is no workflow named .*hello\.yaml"):
            await find(str(path))
    found = await engine.locate(str(path), allow_file=True)
    assert isinstance(found, CompiledWorkflow) and found.name == "hello"
    assert (await engine.find_workflow(str(path), allow_file=True)).name == "hello"
    await engine.push(found)
    assert (await engine.find_workflow("hello")).name == "hello"  # a name, as before
