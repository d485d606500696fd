"""Artifacts: files steps save, and step outputs too large for the data store.

Each artifact is a file ``<root>/<execution id>/<artifact id>`` plus a row in the
``artifacts`` table (name, content type, size, sha256, execution and step). The
file is written completely (temporary file, fsync, rename) before its row is
inserted, so a row never names a missing file (a crash in between leaves an
unlisted file, never the reverse; a step re-run after a crash saves anew). File
names on disk never come from user input; ``name`` is what people see and
downloads keep. Files are never changed once written: a rerun's copies of the artifacts
its reused steps hold are hard links to the same files (:meth:`ArtifactService.copy_file`,
``runtime.rerun_artifacts``), so pruning either execution leaves the other's whole.

The root defaults to ``<db file stem>-artifacts`` next to a SQLite file and to
``./flowledger-artifacts`` for PostgreSQL; ``FLOWLEDGER_ARTIFACTS`` overrides it.
Workers on several machines sharing one PostgreSQL database must all see the same
folder (a shared mount, at the same path), or they cannot read each other's files.

A step output whose JSON exceeds the budget (``FLOWLEDGER_OUTPUT_BUDGET``, 256 KiB)
is stored as an artifact of kind ``output``, and the data store keeps a reference
in its place::

    {"$artifact": {"id", "executionId", "name", "contentType", "size", "sha256"}}

Documents and the event history show that reference; templates read the real
value (``runtime.datastore`` loads it through :meth:`ArtifactService.read_output` on
first use).

Only references the engine made are honoured. A reference is recognised by its shape
(:func:`is_reference`), and data of that shape can come from anyone: an input passed
through whole, an answer to ``sys.wait_for_input``, a webhook body. So the engine makes
itself the only writer of that shape: :meth:`ArtifactService.offload`, which every step
output passes through (``runner.step_succeeded``; only ``sys.condition``'s is kept inline,
and it is always ``{result, evaluatedExpression}``), stores an output shaped like a
reference as an artifact too, whatever its size. What the data store keeps in that shape
is then always the engine's reference, and a template reading it gets the sender's dict
back from the file, never a file the dict names. This costs a plain output below the
budget a type check and, for a dict, one key lookup, and needs no change to the stored
rows or to the reference's fields. Not chosen: a flag in the step row (a
loop's output holds its body steps' outputs inside one row, so a flag per row cannot say
which of them are references; and a schema change), a MAC with a per-database key (a new
secret to keep; every stored reference, made before it, becomes unreadable; and a copy of
a genuine reference from a document still verifies), escaping user data (every reader
of stored outputs would have to unescape).

Reading is checked as well, for rows stored before this rule and for whatever else could
end up there (:meth:`ArtifactService.read_file`): the reference's ids must have the
engine's format (UUIDs, so no separators, ``..`` or absolute parts), the file must be a
regular file whose real path is ``<root>/<execution id>/<artifact id>`` (no symlink
anywhere on the way out), of exactly the recorded size, which bounds the read; and its
sha256 must match. Nothing outside the root is ever opened, so no message can tell
whether a path outside it exists. A template reads synchronously (its render is one
synchronous call inside the round, as :meth:`ArtifactService.offload` writes), so that
read is bounded by the size the engine itself wrote; reads for the API
(:meth:`ArtifactService.read`) and downloads run on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import uuid
from collections.abc import AsyncIterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from sqlalchemy.engine import make_url

from flowledger.codec import Codec, UnstorableError
from flowledger.config import Settings
from flowledger.errors import ArtifactDamagedError, StepError, StorageError
from flowledger.logs import log_extra
from flowledger.lru import LRU
from flowledger.steps.artifact_access import ArtifactAccess
from flowledger.storage import Row, Store
from flowledger.timeutil import iso, utcnow

log = logging.getLogger(__name__)

#: The one key of a reference object that stands for an offloaded output.
REFERENCE_KEY = "$artifact"
_REFERENCE_FIELDS = frozenset({"id", "executionId", "name", "contentType", "size", "sha256"})
SAVED, OUTPUT = "saved", "output"
MAX_NAME = 200
#: Loaded outputs kept in memory per process (JSON bytes); the newest always stays.
LOADED_CACHE_BYTES = 32 * 1024 * 1024
_ABSENT = object()
_CHUNK = 1024 * 1024
_UNSAFE = re.compile(r"[^\w.\- ()+,=@]")
#: Execution and artifact ids as the engine makes them (runtime.ids, uuid.uuid4): the
#: only path parts a reference may name.
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Opening never follows a final symlink, nor waits for a FIFO's writer (flags that
#: Windows lacks are 0 there).
_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def default_artifacts_root(db_url: str, settings: Settings | None = None) -> Path:
    """``FLOWLEDGER_ARTIFACTS``, else next to the SQLite file, else ``./flowledger-artifacts``.

    The runtime never reads the environment: without settings, the defaults apply."""
    settings = settings or Settings()
    if settings.artifacts_dir:
        return Path(settings.artifacts_dir).expanduser().resolve()
    if db_url.startswith("sqlite:"):
        database = make_url(db_url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            db_file = Path(database).expanduser().resolve()
            return db_file.parent / f"{db_file.stem}-artifacts"
    return Path("flowledger-artifacts").resolve()


def sanitize_name(name: str) -> str:
    """A name safe to show and to download as: no folders, no ``..``, bounded length."""
    base = re.split(r"[/\\]", name.strip())[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")
    if len(cleaned) > MAX_NAME:
        _, dot, ext = cleaned.rpartition(".")
        keep = ext if dot and 0 < len(ext) <= 16 else ""
        cleaned = cleaned[: MAX_NAME - len(keep) - 1] + "." + keep if keep else cleaned[:MAX_NAME]
    return cleaned or "artifact"


def artifact_document(row: Row) -> dict[str, Any]:
    """An artifact as the CLI, the API and ``ctx.artifacts.save`` show it."""
    return {
        "id": row["id"],
        "executionId": row["execution_id"],
        "stepExecutionId": row["step_execution_id"],
        "stepId": row["step_id"],
        "name": row["name"],
        "contentType": row["content_type"],
        "size": int(row["size"]),
        "sha256": row["sha256"],
        "kind": row["kind"],
        "createdAt": iso(row["created_at"]),
    }


def reference_to(row: Row) -> dict[str, Any]:
    """The reference that stands for an output kept as the artifact ``row``."""
    return {REFERENCE_KEY: _reference(row)}


def well_formed(info: Any) -> bool:
    """Whether a reference's fields (``value[REFERENCE_KEY]``) have the engine's formats:
    only such a reference names a file anyone reads (see the module's docstring)."""
    return _parse(info) is not None


def is_reference(value: Any) -> bool:
    """True for the reference object an offloaded output left in the data store."""
    if type(value) is not dict or len(value) != 1:
        return False
    inner = value.get(REFERENCE_KEY)
    return type(inner) is dict and inner.keys() >= _REFERENCE_FIELDS


class ArtifactService:
    """Writes and reads artifacts for one engine: one store, one root folder."""

    def __init__(self, store: Store, root: Path, *, budget: int | None = None) -> None:
        self.store = store
        self.root = root
        self.budget = budget if budget is not None else Settings().output_budget
        self._codec = Codec()
        #: Outputs loaded back for templates by artifact id, bounded by their JSON size, so
        #: memory stays flat however many large outputs the executions of this engine read.
        self.loaded: LRU[str, Any] = LRU(LOADED_CACHE_BYTES)

    def path_of(self, execution_id: str, artifact_id: str) -> Path:
        return self.root / execution_id / artifact_id

    def remove_files(self, execution_id: str) -> bool:
        """Delete the folder of a deleted execution's files (pruning); False: it had none.
        Called after its rows are gone, so no row ever names a missing file."""
        folder = self.root / execution_id
        if folder.parent != self.root or not folder.is_dir():
            return False  # not an id (no separators, no ..), or nothing saved
        shutil.rmtree(folder, ignore_errors=True)
        return True

    # -- writing ------------------------------------------------------------------------------

    def bind(self, execution_id: str, step_execution_id: str, step_id: str) -> ArtifactAccess:
        """Where one step execution saves its files."""
        return _StepArtifacts(self, execution_id, step_execution_id, step_id)

    async def save(
        self,
        execution_id: str,
        step_execution_id: str | None,
        step_id: str | None,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        """Store ``data`` as a file and describe it (kind ``saved``)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"artifact data must be bytes, not {type(data).__name__}")
        payload = data if isinstance(data, bytes) else bytes(data)
        row = self._row(execution_id, step_execution_id, step_id, name, content_type, SAVED)
        # Hashing and writing a large file must not stall the other executions' rounds.
        await asyncio.to_thread(self._write, row, payload)
        self.store.add_artifact(row)
        return artifact_document(row)

    async def save_stream(
        self,
        execution_id: str,
        step_execution_id: str | None,
        step_id: str | None,
        name: str,
        chunks: AsyncIterable[bytes],
        content_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        """Store the bytes ``chunks`` yields as a file, never holding more than a chunk in
        memory (a large download); an exception from ``chunks`` leaves no file and no row."""
        row = self._row(execution_id, step_execution_id, step_id, name, content_type, SAVED)
        writer = await asyncio.to_thread(self._open, row)
        try:
            async for chunk in chunks:
                self._put(row, writer, chunk)  # to the page cache: the flush waits for the end
            await asyncio.to_thread(self._finish, row, writer)
        except BaseException:
            writer.discard()
            raise
        self.store.add_artifact(row)
        return artifact_document(row)

    def offload(
        self,
        execution_id: str,
        step_execution_id: str,
        step_id: str,
        output: Any,
        codec: Codec | None = None,
    ) -> tuple[Any, str | None]:
        """The output as the data store keeps it (over the budget, a reference to an
        artifact), and its JSON text when measuring it produced that text already, so the
        commit does not serialize the output a second time.

        Synchronous: the runner calls it while it records a completion. ``codec`` is the
        execution's, so secrets the execution read are redacted in the file as well.

        An output shaped like a reference is stored as an artifact whatever its size:
        the engine is then the only writer of that shape (see the module's docstring).
        """
        if output is None or isinstance(output, bool | int | float):
            return output, None
        if isinstance(output, str) and 4 * len(output) + 2 <= self.budget:
            return output, None  # at most 4 bytes per character: surely under the budget
        text = (codec or self._codec).dumps(output) or "null"
        # At most 4 bytes per character: no need to encode. A dict pays one key lookup
        # for the reference check (``is_reference`` only when it has the key).
        if 4 * len(text) <= self.budget and (
            type(output) is not dict or REFERENCE_KEY not in output
        ):
            return output, text
        data = text.encode("utf-8")
        lookalike = is_reference(output)
        if len(data) <= self.budget and not lookalike:
            return output, text
        name = f"{step_id}.output.json"
        row = self._row(execution_id, step_execution_id, step_id, name, "application/json", OUTPUT)
        try:
            self._write(row, data)
            self.store.add_artifact(row)
        except Exception as exc:
            if lookalike:  # kept inline, it would be taken for a reference: fail the step
                raise UnstorableError(
                    f'it has the shape of an artifact reference ({{"{REFERENCE_KEY}": ...}}), '
                    f"which is kept only as an artifact, and the artifact could not be "
                    f"written: {exc}"
                ) from exc
            # Losing the output would be worse than a big row: keep it in the data store.
            log.warning(
                "could not store the %d-byte output of step %s as an artifact (%s); "
                "keeping it in the database",
                len(data),
                step_id,
                exc,
                extra=log_extra("offload_output", execution_id, step_id),
            )
            return output, text
        return reference_to(row), None

    def _row(
        self,
        execution_id: str,
        step_execution_id: str | None,
        step_id: str | None,
        name: str,
        content_type: str,
        kind: str,
    ) -> Row:
        """The row of a new artifact; ``_write`` fills in its size and checksum."""
        return {
            "id": str(uuid.uuid4()),
            "execution_id": execution_id,
            "step_execution_id": step_execution_id,
            "step_id": step_id,
            "name": sanitize_name(name),
            "content_type": (content_type or "application/octet-stream").strip()[:255],
            "size": 0,
            "sha256": "",
            "created_at": utcnow(),
            "kind": kind,
        }

    def _write(self, row: Row, data: bytes) -> None:
        writer = self._open(row)
        try:
            self._put(row, writer, data)
            self._finish(row, writer)
        except BaseException:
            writer.discard()
            raise

    def _put(self, row: Row, writer: _DurableFile, data: bytes) -> None:
        try:
            writer.write(data)
        except OSError as exc:  # a full disk
            raise self._cannot_write(row, exc) from exc

    def _open(self, row: Row) -> _DurableFile:
        try:
            return _DurableFile(self.path_of(row["execution_id"], row["id"]), self.root)
        except OSError as exc:
            raise self._cannot_write(row, exc) from exc

    def _finish(self, row: Row, writer: _DurableFile) -> None:
        """Flush and rename the file into place; its size and checksum go into ``row``."""
        try:
            writer.commit()
        except OSError as exc:
            raise self._cannot_write(row, exc) from exc
        row["size"] = writer.size
        row["sha256"] = writer.digest.hexdigest()

    def _cannot_write(self, row: Row, exc: OSError) -> StorageError:
        return StorageError(
            f"cannot write artifact {row['name']!r} of execution {row['execution_id']} "
            f"under {self.root}: {exc.strerror or exc}"
        )

    # -- a rerun's copies ---------------------------------------------------------------------

    def copy_file(self, info: Mapping[str, Any], row: Row) -> bool:
        """Give the file of the artifact ``info`` describes (``{id, executionId, size,
        sha256}``: a reference's or a row's fields) a second name: the path of ``row``, a
        new artifact of another execution (a rerun's copy, ``runtime.rerun_artifacts``).
        False, and nothing written, when there is no file there.

        A hard link: no byte is read or written, however large the file, and no space is
        taken; the file lives while either name does (pruning one execution removes its
        names only). Artifact files are never changed once written, so sharing one is
        safe. Where linking fails (another filesystem, one without hard links), a copy
        read in chunks and verified against the recorded sha256.

        The source is checked as a read checks it (a regular file at its own path under
        the root, no symlink on the way, of the recorded size), and the link must be that
        very file (one swapped in between is refused). Its sha256 is not read for a link:
        every read of the rerun's copy verifies it.
        """
        ref = _parse(info)
        if ref is None:
            raise StorageError(
                f"artifact {str(info.get('id'))[:100]!r} is not described in the engine's "
                "format (id, executionId, size, sha256); its file was not copied"
            )
        opened = self._open_for_reading(ref)
        if opened is None:
            return False
        source, size = opened
        with source:
            if size != ref.size:
                raise self._damaged(ref)
            target = self.path_of(row["execution_id"], row["id"])
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self._cannot_write(row, exc) from exc
            try:
                # Not following a symlink swapped in since the check: the inode check sees it.
                source_path = self.path_of(ref.execution_id, ref.artifact_id)
                os.link(source_path, target, follow_symlinks=False)
            except (OSError, NotImplementedError):
                self._copy_verified_from(source, ref, row)
                return True
            if not os.path.samestat(os.lstat(target), os.fstat(source.fileno())):
                target.unlink(missing_ok=True)
                raise self._replaced(ref, "was replaced while it was being linked")
        return True

    def _copy_verified_from(self, source: BinaryIO, ref: _Ref, row: Row) -> None:
        writer = self._open(row)
        try:
            size = 0
            # One byte past the recorded size is enough to know it is not that file.
            while size <= ref.size and (chunk := source.read(min(_CHUNK, ref.size + 1 - size))):
                self._put(row, writer, chunk)
                size += len(chunk)
            if size != ref.size or writer.digest.hexdigest() != ref.sha256:
                raise self._damaged(ref)
            self._finish(row, writer)
        except BaseException:
            writer.discard()
            raise

    def write_copy(self, row: Row, data: bytes) -> None:
        """Write ``data`` as the new artifact ``row``'s file (durably, as every artifact
        is); its size and sha256 go into ``row``. For a rerun's copy whose content changes
        (a loop output kept as a file holds its body's references)."""
        self._write(row, data)

    def sync_folder(self, execution_id: str) -> None:
        """Make the links :meth:`copy_file` made into the execution's folder durable
        (written files are synced as they are written): once, after the last one."""
        folder = self.root / execution_id
        if folder.is_dir():
            _fsync_folder(folder)
            _fsync_folder(self.root)

    # -- reading ------------------------------------------------------------------------------

    async def for_execution(self, execution_id: str) -> list[dict[str, Any]]:
        """The execution's artifacts (SPEC: ``executions artifacts``), oldest first."""
        return [artifact_document(r) for r in await self.store.list_artifacts(execution_id)]

    async def download(self, execution_id: str, folder: Path) -> list[Path]:
        """Copy every artifact of the execution into ``folder``; verify each checksum.

        All or nothing: every target is checked first (an existing file, or a dangling
        symlink, refuses the whole download), every file is copied to a hidden part file
        and verified, and only then linked into place without overwriting; any failure
        removes what this call wrote. Two artifacts with one name get the artifact id's
        start appended to the second.
        """
        rows = await self.store.list_artifacts(execution_id)
        targets = _download_names(rows, folder)
        existing = [str(t) for t in targets if os.path.lexists(t)]
        if existing:
            raise StorageError(
                f"will not overwrite {', '.join(existing)}: it already exists; remove it "
                "or download into another folder"
                if len(existing) == 1
                else f"will not overwrite {', '.join(existing)}: they already exist; remove "
                "them or download into another folder"
            )
        refs = [_row_ref(row) for row in rows]
        for row, ref in zip(rows, refs, strict=True):
            # Damaged or replaced (a FIFO, a symlink) is told as a read tells it, not as missing.
            if self._in_place(ref) is None:
                raise StorageError(
                    f"the file of artifact {row['name']!r} ({row['id']}) is missing: "
                    f"{self.path_of(ref.execution_id, ref.artifact_id)} does not exist; "
                    "nothing was downloaded"
                )
        try:
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        await asyncio.to_thread(self._copy_all, refs, targets)
        return targets

    def _copy_all(self, refs: list[_Ref], targets: list[Path]) -> None:
        parts: list[Path] = []
        placed: list[Path] = []
        try:
            for ref, target in zip(refs, targets, strict=True):
                part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
                parts.append(part)
                self._copy_verified(ref, part, target)
            for part, target in zip(parts, targets, strict=True):
                try:
                    os.link(part, target)  # fails instead of overwriting
                except OSError as exc:
                    raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
                placed.append(target)
        except BaseException:
            for path in placed:
                path.unlink(missing_ok=True)
            raise
        finally:
            for part in parts:
                part.unlink(missing_ok=True)

    def _copy_verified(self, ref: _Ref, part: Path, target: Path) -> None:
        source = self.path_of(ref.execution_id, ref.artifact_id)
        digest = hashlib.sha256()
        size = 0
        try:
            opened = self._open_for_reading(ref)
            if opened is None:
                raise StorageError(
                    f"the file of artifact {ref.name!r} ({ref.artifact_id}) is missing: "
                    f"{source} does not exist"
                )
            src, found = opened
            with src:
                if found != ref.size:  # as a read refuses it: before a byte is copied
                    raise self._damaged(ref)
                with part.open("xb") as dst:
                    # One byte past the recorded size is enough to know it is not that file.
                    while size <= ref.size and (
                        chunk := src.read(min(_CHUNK, ref.size + 1 - size))
                    ):
                        digest.update(chunk)
                        size += len(chunk)
                        dst.write(chunk)
        except FileNotFoundError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror}") from exc
        except OSError as exc:
            raise StorageError(f"cannot copy {source} to {target}: {exc.strerror or exc}") from exc
        if digest.hexdigest() != ref.sha256 or size != ref.size:
            raise self._damaged(ref)

    def read_output(self, reference: Mapping[str, Any], step_id: str) -> Any:
        """The output an offloaded reference stands for (cached, verified against its sha256).

        Synchronous (a template's render): the read is bounded by the recorded size."""
        ref = _parse(reference[REFERENCE_KEY])
        if ref is None:
            raise StorageError(
                f"the output of step '{step_id}' holds an artifact reference flowledger did not "
                "make (its id, executionId, size or sha256 is not in the engine's format); "
                "no file was read"
            )
        key = f"{ref.execution_id}/{ref.artifact_id}"
        value = self.loaded.get(key, _ABSENT)
        if value is not _ABSENT:  # an output may be null: absence is its own marker
            return value
        data = self._read(ref)
        if data is None:
            raise StorageError(
                f"the output of step '{step_id}' was stored as artifact {ref.artifact_id} "
                f"({reference[REFERENCE_KEY].get('name')}), but its file is not in "
                f"{self.root}; was the artifacts folder moved, or is it not shared with this "
                "worker (FLOWLEDGER_ARTIFACTS)?"
            )
        value = json.loads(data)
        self.loaded.put(key, value, len(data))
        return value

    async def read(self, info: Mapping[str, Any]) -> bytes | None:
        """:meth:`read_file` on a thread: an artifact may be large."""
        return await asyncio.to_thread(self.read_file, info)

    def read_file(self, info: Mapping[str, Any]) -> bytes | None:
        """The verified bytes of an artifact (``{id, executionId, size, sha256}``, a
        reference's or a document's), or None when its file is not under this root."""
        ref = _parse(info)
        if ref is None:
            raise StorageError(
                f"artifact {str(info.get('id'))[:100]!r} is not described in the engine's "
                "format (id, executionId, size, sha256); no file was read"
            )
        return self._read(ref)

    def _read(self, ref: _Ref) -> bytes | None:
        """Read at most the recorded size, and verify the sha256."""
        opened = self._open_for_reading(ref)
        if opened is None:
            return None
        file, size = opened
        with file:
            if size != ref.size:  # before reading: the recorded size bounds the read
                raise self._damaged(ref)
            data = file.read(ref.size)
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise self._damaged(ref)
        return data

    def _in_place(self, ref: _Ref) -> os.stat_result | None:
        """The artifact's file's ``lstat`` when it is a regular file at
        ``<root>/<execution id>/<artifact id>`` itself (no symlink on the way); None when
        there is nothing there; ArtifactDamagedError when something else is. ``ref``'s ids
        are the engine's (``_parse``): the path has no separator, ``..`` or absolute part
        of theirs."""
        path = self.path_of(ref.execution_id, ref.artifact_id)
        not_ours = self._replaced(
            ref,
            f"is not a regular file inside the artifacts folder {self.root} (a symlink, a "
            "FIFO, a folder or a device); flowledger did not write it",
        )
        # Resolved before anything is looked at: nothing outside the root is even stat'ed.
        real = os.path.join(os.path.realpath(self.root), ref.execution_id, ref.artifact_id)
        if os.path.realpath(path) != real:
            raise not_ours
        try:
            before = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._unreadable(ref, exc) from exc
        if not stat.S_ISREG(before.st_mode):
            raise not_ours
        return before

    def _open_for_reading(self, ref: _Ref) -> tuple[BinaryIO, int] | None:
        """The artifact's file, opened, and its size, when it is in place
        (:meth:`_in_place`); None when there is no file there. Never opens a FIFO or a
        device."""
        path = self.path_of(ref.execution_id, ref.artifact_id)
        before = self._in_place(ref)
        if before is None:
            return None
        try:
            fd = os.open(path, _READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._unreadable(ref, exc) from exc
        file = os.fdopen(fd, "rb")
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
                raise self._replaced(ref, "was replaced while it was opened")
        except BaseException:
            file.close()
            raise
        return file, opened.st_size

    def _damaged(self, ref: _Ref) -> ArtifactDamagedError:
        return self._replaced(
            ref,
            f"does not match its recorded sha256 {ref.sha256} and size ({ref.size} bytes); "
            "it was changed or damaged after it was written",
        )

    def _replaced(self, ref: _Ref, what: str) -> ArtifactDamagedError:
        """The one error, and words, of a damaged or replaced artifact file, whichever
        face reads it (a download, ``GET /artifacts/{id}``, a template, a rerun's copy)."""
        path = self.path_of(ref.execution_id, ref.artifact_id)
        named = f"{ref.name!r} ({ref.artifact_id})" if ref.name else ref.artifact_id
        return ArtifactDamagedError(
            f"artifact {named} is damaged or was replaced: its file {path} {what}"
        )

    def _unreadable(self, ref: _Ref, exc: OSError) -> StorageError:
        path = self.path_of(ref.execution_id, ref.artifact_id)
        return StorageError(f"cannot read artifact file {path}: {exc.strerror or exc}")


class _Ref(NamedTuple):
    """An artifact's reference whose fields have the engine's formats (:func:`_parse`)."""

    execution_id: str
    artifact_id: str
    size: int
    sha256: str
    #: What people call it, for messages (None when not given as text).
    name: str | None = None


def _row_ref(row: Row) -> _Ref:
    """An artifact row's reference; StorageError for a row the engine did not write."""
    ref = _parse(
        {
            "executionId": row["execution_id"],
            "id": row["id"],
            "size": int(row["size"]),
            "sha256": row["sha256"],
            "name": row["name"],
        }
    )
    if ref is None:
        raise StorageError(
            f"artifact {row['name']!r} ({row['id']}) is not described in the engine's "
            "format; nothing was downloaded"
        )
    return ref


def _parse(info: Any) -> _Ref | None:
    """The reference, or None when a field is not as the engine writes it."""
    if not isinstance(info, Mapping):
        return None
    execution_id, artifact_id = info.get("executionId"), info.get("id")
    size, sha256, name = info.get("size"), info.get("sha256"), info.get("name")
    if (
        type(execution_id) is str
        and _ID.fullmatch(execution_id)
        and type(artifact_id) is str
        and _ID.fullmatch(artifact_id)
        and type(size) is int
        and size >= 0
        and type(sha256) is str
        and _SHA256.fullmatch(sha256)
    ):
        shown = name[:MAX_NAME] if type(name) is str and name else None
        return _Ref(execution_id, artifact_id, size, sha256, shown)
    return None


class _StepArtifacts:
    """``StepContext.artifacts``: saves files linked to one step execution."""

    def __init__(
        self, service: ArtifactService, execution_id: str, step_execution_id: str, step_id: str
    ) -> None:
        self._service = service
        self._execution_id = execution_id
        self._step_execution_id = step_execution_id
        self._step_id = step_id

    async def save(
        self, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        with _retryable():
            return await self._service.save(
                self._execution_id,
                self._step_execution_id,
                self._step_id,
                name,
                data,
                content_type,
            )

    async def save_stream(
        self,
        name: str,
        chunks: AsyncIterable[bytes],
        content_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        with _retryable():
            return await self._service.save_stream(
                self._execution_id,
                self._step_execution_id,
                self._step_id,
                name,
                chunks,
                content_type,
            )


@contextlib.contextmanager
def _retryable() -> Iterator[None]:
    """A storage failure while a step saves (a full disk) fails the attempt, retryable:
    it may clear up."""
    try:
        yield
    except StorageError as exc:
        raise StepError(str(exc), retryable=True) from exc


# -- lazy read-back ---------------------------------------------------------------------------


def _reference(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "executionId": row["execution_id"],
        "name": row["name"],
        "contentType": row["content_type"],
        "size": row["size"],
        "sha256": row["sha256"],
    }


def _download_names(rows: list[Row], folder: Path) -> list[Path]:
    taken: set[str] = set()
    targets = []
    for row in rows:
        name = str(row["name"])
        if name in taken:
            stem, dot, ext = name.rpartition(".")
            suffix = str(row["id"])[:8]
            name = f"{stem}-{suffix}.{ext}" if dot and stem else f"{name}-{suffix}"
        taken.add(name)
        targets.append(folder / name)
    return targets


class _DurableFile:
    """A file written to a temporary name, then fsynced and renamed into place
    (``commit``): it is whole or absent. Writes count and hash what they write."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root
        self.created = not path.parent.is_dir()
        if self.created:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        self.file: BinaryIO = self.temp.open("xb")
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)
        self.digest.update(data)

    def commit(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.temp, self.path)
        _fsync_folder(self.path.parent)
        if self.created:
            _fsync_folder(self.root)

    def discard(self) -> None:
        self.file.close()
        self.temp.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Make a rename or a new entry durable; folders cannot be opened on Windows."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
