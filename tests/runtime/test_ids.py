"""Hot-path ids are real UUIDs (version 4, or 7 ordered by time), unique, and safe across threads."""

from __future__ import annotations

import threading
import uuid

from flowledger.runtime.ids import ordered_uuid, random_uuid


def test_random_ids_are_version_4_uuids_written_the_standard_way() -> None:
    for _ in range(600):  # more than one batch of random bytes
        text = random_uuid()
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_random_ids_do_not_repeat_within_or_across_threads() -> None:
    found: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(random_uuid() for _ in range(5000))

    threads = [threading.Thread(target=make, args=(ids,)) for ids in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [text for ids in found for text in ids]
    assert len(set(every)) == len(every) == 20_000


def test_a_forked_child_makes_ids_of_its_own() -> None:
    import os

    random_uuid()  # the parent's buffer now has ids left
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, random_uuid().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert child != random_uuid()


def test_ordered_ids_are_version_7_uuids_that_sort_by_creation() -> None:
    made = [ordered_uuid() for _ in range(600)]
    for text in made:
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
    stamps = [text[:18] for text in made]  # the time (ids within one 244 ns tick may tie)
    assert stamps == sorted(stamps)
    assert len(set(made)) == len(made)


def test_ordered_and_random_ids_share_the_random_buffer_safely() -> None:
    every = []
    for _ in range(1000):  # interleaved: one consumes 16 hex digits, the other 32
        every += [ordered_uuid(), random_uuid()]
    assert len(set(every)) == len(every)
    assert all(uuid.UUID(text).version in (4, 7) for text in every)
