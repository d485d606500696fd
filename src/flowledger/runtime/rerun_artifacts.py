"""A rerun's own copies of the artifacts its reused steps hold (``control.rerun``).

A rerun starts from copies of the original's finished step rows (SPEC: ``executions
rerun``). Those steps hold artifacts: an output over the budget is a reference
(``{"$artifact": {id, executionId, ...}}``) in its row; a loop's output holds its body
steps' outputs, references among them, inside its one row (or inside its own file, when
the loop's output is over the budget too); and steps save files (``ctx.artifacts``).
Copies that kept naming the original's files broke when the original, which ended first,
was pruned with its files while the rerun was kept: a rerun of it failed reading an output,
and its artifacts listed none of its reused steps' files. So a rerun is self-contained:

- Every artifact of a copied step row (a reused step's attempt, a reused loop's
  iterations), saved file or offloaded output, becomes a new artifact of the rerun: a new
  id, the same name, type, size and sha256, the copied row's id and step, and the original
  ``created_at`` (the copied rows keep their times too). Its file is a hard link in the
  rerun's folder (``ArtifactService.copy_file``; a verified copy where linking fails): no
  byte is read however large the file, and one file is handled at a time.
- Every reference a copied row holds where the engine reads references is rewritten to
  the new artifact: the output itself, and a loop output's ``results[i][body step]``
  (nested loops alike), as ``runtime.datastore`` reads them. A dict of that shape
  anywhere else is data (an input, a value nested in an output) and stays as it is. A loop
  output kept as a file holds its body's references inside the file: that file is read
  (whole, as a template reading it would), rewritten after its body's files, and written
  anew, so its size and sha256 change.
- A reference to another execution's file is copied the same way: a rerun made before
  this rule names its original's files, and a rerun of it is then whole again.
- A reused artifact whose file is gone refuses the rerun (ConflictError, naming the step):
  a step reading it would fail later, and the rerun would list less than its steps saved.
  Rerunning from an earlier step runs that step again. A reference not in the engine's
  format (a row from before references were checked) names no file anyone reads: it stays.

Files first, then rows, as for every artifact (``artifacts.service``): the files are in
place before the rerun's rows (execution, copied steps, events, artifacts) are committed
in one transaction (``Store.create_execution``). A failure before that commit removes the
rerun's folder, which no execution owns yet, so nothing is left; a crash in between leaves
an unlisted folder (nothing sweeps it, as nothing sweeps an offload's file left by a
crash), never a row without its file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flowledger.artifacts.service import (
    OUTPUT,
    REFERENCE_KEY,
    ArtifactService,
    is_reference,
    reference_to,
    sanitize_name,
    well_formed,
)
from flowledger.codec import Codec, loads
from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.errors import ConflictError
from flowledger.runtime.ids import random_uuid
from flowledger.storage import Row, Store


async def copy_artifacts(
    artifacts: ArtifactService,
    workflow: CompiledWorkflow,
    original_id: str,
    from_step: str,
    copies: list[tuple[Row, Row]],
    now: datetime,
) -> list[Row]:
    """Give the rerun its own copy of every artifact its copied step rows hold.

    ``copies`` pairs each original step row with its copy (the rerun's id already in it);
    a copy's ``output`` is rewritten in place to the new references. Returns the rerun's
    artifact rows, to be inserted with it; its files are in place. ``workflow`` is the
    version that wrote the rows (it says which steps are loops)."""
    wanted = {old["id"] for old, _ in copies}
    saved = [
        r
        for r in await artifacts.store.list_artifacts(original_id)
        if r["step_execution_id"] in wanted
    ]
    copier = _Copier(artifacts, workflow, from_step, now, saved)
    if not copier.needed(copies):
        return []
    execution_id = str(copies[0][1]["execution_id"])
    try:
        await asyncio.to_thread(copier.run, copies)
    except Exception:
        # No row names these files yet. (Cancelled, the thread may still be writing: its
        # files stay, unlisted.)
        await asyncio.to_thread(artifacts.remove_files, execution_id)
        raise
    return copier.rows


async def forget_copies(artifacts: ArtifactService, store: Store, execution_id: str) -> None:
    """After the rerun's rows failed to commit: remove its files, unless its row is there
    after all (a failure after the commit) or that cannot be told (a file too many beats a
    row without its file)."""
    try:
        committed = await store.get_execution(execution_id) is not None
    except Exception:
        return
    if not committed:
        await asyncio.to_thread(artifacts.remove_files, execution_id)


class _Copier:
    """Copies one rerun's artifacts (synchronous: it runs on a thread)."""

    def __init__(
        self,
        service: ArtifactService,
        workflow: CompiledWorkflow,
        from_step: str,
        now: datetime,
        saved: list[Row],
    ) -> None:
        self._service = service
        self._workflow = workflow
        self._from_step = from_step
        self._now = now
        self._saved = saved
        #: The original's artifact rows by id (a reference's row tells kind and time).
        self._known = {str(r["id"]): r for r in saved}
        #: Old artifact id → the reference to its copy (one copy, however often named).
        self._done: dict[str, dict[str, Any]] = {}
        #: Old artifact id → the copied row whose own output it is (a body step's, named
        #: again in its loop's output).
        self._owner_of: dict[str, Row] = {}
        self.rows: list[Row] = []

    def needed(self, copies: list[tuple[Row, Row]]) -> bool:
        """Whether anything is to copy (most reruns reuse no artifact: no thread for them)."""
        return bool(self._saved) or any(
            f'"{REFERENCE_KEY}"' in (old["output"] or "") for old, _ in copies
        )

    def run(self, copies: list[tuple[Row, Row]]) -> None:
        outputs: list[tuple[Row, Any, CompiledStep]] = []
        for old, new in copies:
            step = self._workflow.steps.get(old["step_id"])
            if step is None or old["output"] is None:
                continue
            value = loads(old["output"])
            if is_reference(value) and well_formed(value[REFERENCE_KEY]):
                self._owner_of.setdefault(str(value[REFERENCE_KEY]["id"]), new)
            outputs.append((new, value, step))
        codec = Codec()
        for new, value, step in outputs:
            rewritten = self._rewrite(value, step, new)
            if rewritten is not value:
                new["output"] = codec.dumps(rewritten)
        by_step = {old["id"]: new for old, new in copies}
        for row in self._saved:  # saved files, and any output file no reference named
            if str(row["id"]) not in self._done:
                info = {
                    "id": row["id"],
                    "name": row["name"],
                    "executionId": row["execution_id"],
                    "size": int(row["size"]),
                    "sha256": row["sha256"],
                }
                owner = by_step[row["step_execution_id"]]
                self._link(info, self._new_row(info, row, owner), owner)
        if self.rows:
            self._service.sync_folder(str(self.rows[0]["execution_id"]))

    def _rewrite(self, value: Any, step: CompiledStep, owner: Row) -> Any:
        """``value`` with its references rewritten to the copies; the same object when
        it holds none, so an untouched output keeps its stored text."""
        if is_reference(value):
            return self._reference(value, step, owner)
        body = step.body
        if body is None or type(value) is not dict or type(value.get("results")) is not list:
            return value
        results: list[Any] = value["results"]
        rewritten: list[Any] = []
        for iteration in results:
            if type(iteration) is not dict:
                rewritten.append(iteration)
                continue
            changed = {}
            for step_id, output in iteration.items():
                inner = body.steps.get(step_id)
                if inner is not None and (new := self._rewrite(output, inner, owner)) is not output:
                    changed[step_id] = new
            rewritten.append({**iteration, **changed} if changed else iteration)
        if all(a is b for a, b in zip(rewritten, results, strict=True)):
            return value
        return {**value, "results": rewritten}

    def _reference(self, value: dict[str, Any], step: CompiledStep, owner: Row) -> Any:
        info = value[REFERENCE_KEY]
        if not well_formed(info):
            return value  # names no file anyone reads (the reading side refuses it)
        old_id = str(info["id"])
        done = self._done.get(old_id)
        if done is not None:
            return done
        owner = self._owner_of.get(old_id, owner)
        row = self._new_row(info, self._known.get(old_id), owner)
        content = self._loop_content(info, step, owner) if step.body is not None else None
        if content is None:
            self._link(info, row, owner)
        else:
            self._service.write_copy(row, content)
            self.rows.append(row)
        self._done[old_id] = done = reference_to(row)
        return done

    def _loop_content(
        self, info: Mapping[str, Any], step: CompiledStep, owner: Row
    ) -> bytes | None:
        """A loop output file rewritten to its body's copies (they are made first); None
        when it names no artifact (then it is linked as it is)."""
        data = self._service.read_file(info)
        if data is None:
            raise self._gone(info, owner)
        value = json.loads(data)
        rewritten = self._rewrite(value, step, owner)
        if rewritten is value:
            return None
        return (Codec().dumps(rewritten) or "null").encode("utf-8")

    def _link(self, info: Mapping[str, Any], row: Row, owner: Row) -> None:
        if not self._service.copy_file(info, row):
            raise self._gone(info, owner)
        self.rows.append(row)

    def _new_row(self, info: Mapping[str, Any], known: Row | None, owner: Row) -> Row:
        return {
            "id": random_uuid(),
            "execution_id": owner["execution_id"],
            "step_execution_id": owner["id"],
            "step_id": owner["step_id"],
            "name": sanitize_name(str(known["name"] if known else info.get("name"))),
            "content_type": str(known["content_type"] if known else info.get("contentType"))[:255],
            "size": int(info["size"]),
            "sha256": info["sha256"],
            "created_at": known["created_at"] if known else self._now,
            "kind": known["kind"] if known else OUTPUT,
        }

    def _gone(self, info: Mapping[str, Any], owner: Row) -> ConflictError:
        root = self._service.root
        return ConflictError(
            f"cannot rerun from '{self._from_step}': step '{owner['step_id']}' runs before "
            f"it, and its artifact {info.get('name', '')!r} ({info['id']}) has no file in "
            f"{root} (its execution {info['executionId']} was pruned, or the folder moved?); "
            "rerun from an earlier step, which runs that step again"
        )
