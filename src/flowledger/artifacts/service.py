"""Artifacts: files steps save, and step outputs too large for the data store.

Each artifact is a file ``<root>/<execution id>/<artifact id>`` plus a row in the
``artifacts`` table (name, content type, size, sha256, execution and step). The
file is written completely (temporary file, fsync, rename) before its row is
inserted, so a row never names a missing file (a crash in between leaves an
unlisted file, never the reverse; a step re-run after a crash saves anew). File
names on disk never come from user input; ``name`` is what people see and
downloads keep.

The root defaults to ``<db file stem>-artifacts`` next to a SQLite file and to
``./flowledger-artifacts`` for PostgreSQL; ``FLOWLEDGER_ARTIFACTS`` overrides it.
Workers on several machines sharing one PostgreSQL database must all see the same
folder (a shared mount, at the same path), or they cannot read each other's files.

A step output whose JSON exceeds the budget (``FLOWLEDGER_OUTPUT_BUDGET``, 256 KiB)
is stored as an artifact of kind ``output``, and the data store keeps a reference
in its place::

    {"$artifact": {"id", "executionId", "name", "contentType", "size", "sha256"}}

Documents and the event history show that reference; templates read the real
value (``runtime.datastore`` loads it through :func:`read_reference` on first use).
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
import uuid
from collections.abc import AsyncIterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.engine import make_url

from flowledger.codec import Codec
from flowledger.config import Settings
from flowledger.errors import StepError, StorageError
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
        """
        if output is None or isinstance(output, bool | int | float):
            return output, None
        if isinstance(output, str) and 4 * len(output) + 2 <= self.budget:
            return output, None  # at most 4 bytes per character: surely under the budget
        text = (codec or self._codec).dumps(output) or "null"
        if 4 * len(text) <= self.budget:  # at most 4 bytes per character: no need to encode
            return output, text
        data = text.encode("utf-8")
        if len(data) <= self.budget:
            return output, text
        name = f"{step_id}.output.json"
        row = self._row(execution_id, step_execution_id, step_id, name, "application/json", OUTPUT)
        try:
            self._write(row, data)
            self.store.add_artifact(row)
        except Exception as exc:
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
        return {REFERENCE_KEY: _reference(row)}, None

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
        for row in rows:
            source = self.path_of(row["execution_id"], row["id"])
            if not source.is_file():
                raise StorageError(
                    f"the file of artifact {row['name']!r} ({row['id']}) is missing: "
                    f"{source} does not exist; nothing was downloaded"
                )
        try:
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        await asyncio.to_thread(self._copy_all, rows, targets)
        return targets

    def _copy_all(self, rows: list[Row], targets: list[Path]) -> None:
        parts: list[Path] = []
        placed: list[Path] = []
        try:
            for row, target in zip(rows, targets, strict=True):
                part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
                parts.append(part)
                self._copy_verified(row, part, target)
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

    def _copy_verified(self, row: Row, part: Path, target: Path) -> None:
        source = self.path_of(row["execution_id"], row["id"])
        digest = hashlib.sha256()
        size = 0
        try:
            with source.open("rb") as src, part.open("xb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
        except FileNotFoundError as exc:
            if exc.filename == str(source):
                raise StorageError(
                    f"the file of artifact {row['name']!r} ({row['id']}) is missing: "
                    f"{source} does not exist"
                ) from exc
            raise StorageError(f"cannot write {target}: {exc.strerror}") from exc
        except OSError as exc:
            raise StorageError(f"cannot copy {source} to {target}: {exc.strerror or exc}") from exc
        if digest.hexdigest() != row["sha256"] or size != row["size"]:
            raise StorageError(
                f"artifact {row['name']!r} ({row['id']}) is corrupt: {source} has sha256 "
                f"{digest.hexdigest()} and {size} bytes, the database recorded "
                f"{row['sha256']} and {row['size']} bytes; nothing was kept at {target}"
            )

    def read_output(self, reference: Mapping[str, Any], step_id: str) -> Any:
        """The output an offloaded reference stands for (cached, verified against its sha256)."""
        info = reference[REFERENCE_KEY]
        value = self.loaded.get(str(info["id"]), _ABSENT)
        if value is not _ABSENT:  # an output may be null: absence is its own marker
            return value
        data = self.read_file(info)
        if data is None:
            raise StorageError(
                f"the output of step '{step_id}' was stored as artifact {info['id']} "
                f"({info.get('name')}), but its file is not in {self.root}; was the artifacts "
                "folder moved, or is it not shared with this worker (FLOWLEDGER_ARTIFACTS)?"
            )
        value = json.loads(data)
        self.loaded.put(str(info["id"]), value, len(data))
        return value

    def read_file(self, info: Mapping[str, Any]) -> bytes | None:
        """The verified bytes of a referenced artifact, or None when it is not under this root."""
        path = self.path_of(str(info["executionId"]), str(info["id"]))
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot read artifact file {path}: {exc.strerror or exc}") from exc
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise StorageError(
                f"artifact file {path} does not match its recorded sha256 {info['sha256']}; "
                "it was changed or damaged after it was written"
            )
        return data


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
