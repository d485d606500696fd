"""Executions through the application layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowledger.app import (
    App,
    CancelExecution,
    ConflictError,
    FollowEvents,
    GetExecution,
    InvalidInputError,
    ListEvents,
    ListExecutions,
    LoadWorkflow,
    NotFoundError,
    PushWorkflows,
    RerunExecution,
    ResolveId,
    RunExecution,
    StartExecution,
    SubmitInput,
    WorkflowText,
)
from flowledger.app.graph_view import DefinitionGraph
from flowledger.app.hooks import ReceiveHook
from flowledger.app.models import GetWorkflowVersion, TriggerWorkflow
from flowledger.errors import AmbiguousIdError, DefinitionError
from flowledger.runtime import inbox
from flowledger.runtime.engine import Engine
from flowledger.runtime.status import ExecutionStatus
from flowledger.types import ExecutionDocument
from flowledger.worker.worker import Worker, WorkerOptions
from tests.runtime.support import running_worker, wait_until


async def start(app: App, workflow: str, n: int) -> list[str]:
    return [
        (
            await app.executions.start(
                StartExecution(workflow=workflow, input={"name": str(i)}, allow_file=True)
            )
        )["id"]
        for i in range(n)
    ]


async def test_start_enqueues_and_wakes_the_workers(app: App, hello_file: str) -> None:
    woken: list[bool] = []
    app.on_work(lambda: woken.append(True))
    doc = await app.executions.start(
        StartExecution(
            workflow=hello_file, allow_file=True, input={"name": "Ada"}, correlation_id="c-1"
        )
    )
    assert doc["runtimeStatus"] == "NotStarted" and doc["correlationId"] == "c-1"
    assert woken == [True] and app.work_ready.is_set()
    assert await app.executions.resolve_id(ResolveId(prefix=doc["id"][:8])) == doc["id"]


async def test_start_ends_the_idle_wait_of_a_worker_in_this_process(
    app: App, hello_file: str
) -> None:
    worker = Worker(app.engine, WorkerOptions(max_idle=3600))
    app.on_work(worker.wake)
    idle = asyncio.ensure_future(worker._idle(3600))  # SQLite would poll an hour from now
    await asyncio.sleep(0.05)
    assert not idle.done()
    await app.executions.start(
        StartExecution(workflow=hello_file, allow_file=True, input={"name": "Ada"})
    )
    await asyncio.wait({idle}, timeout=30)
    assert idle.done(), "starting an execution did not wake the idle worker"


async def test_pages_are_newest_first_and_end_without_a_cursor(app: App, hello_file: str) -> None:
    ids = await start(app, hello_file, 5)
    first = await app.executions.list(ListExecutions(limit=2))
    assert [d["id"] for d in first.items] == ids[::-1][:2]
    assert first.next_cursor is not None
    second = await app.executions.list(ListExecutions(limit=2, cursor=first.next_cursor))
    third = await app.executions.list(ListExecutions(limit=2, cursor=second.next_cursor))
    seen = [d["id"] for page in (first, second, third) for d in page.items]
    assert seen == ids[::-1]
    assert third.next_cursor is None
    assert first.to_json()["nextCursor"] == first.next_cursor


async def test_filters_select(app: App, hello_file: str) -> None:
    await start(app, hello_file, 2)
    doc = await app.executions.start(
        StartExecution(
            workflow=hello_file, allow_file=True, correlation_id="order-7", created_by="api:ops"
        )
    )
    by_correlation = await app.executions.list(ListExecutions(correlation_id="order-7"))
    by_creator = await app.executions.list(ListExecutions(created_by="api:ops"))
    assert [d["id"] for d in by_correlation.items] == [doc["id"]]
    assert [d["id"] for d in by_creator.items] == [doc["id"]]
    none = await app.executions.list(ListExecutions(status="Completed"))
    assert none.items == [] and none.next_cursor is None


async def test_counts_by_status_follow_the_list_s_filters(app: App, hello_file: str) -> None:
    """The web list's status chips counted by workflow only: a time range, a correlation
    id or a parent left them at the totals (tour 22B M7). Every status is counted, the
    one chosen or not, under the listing's other filters."""
    await start(app, hello_file, 2)
    done = RunExecution(
        workflow=hello_file, allow_file=True, input={"name": "x"}, correlation_id="c-9"
    )
    ran = await app.executions.run(done)
    counts = await app.executions.count_by_status(ListExecutions(status="Completed"))
    assert list(counts) == [s.value for s in ExecutionStatus]
    assert counts["NotStarted"] == 2 and counts["Completed"] == 1 and sum(counts.values()) == 3
    correlated = await app.executions.count_by_status(ListExecutions(correlation_id="c-9"))
    assert correlated["Completed"] == 1 and sum(correlated.values()) == 1
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    before = await app.executions.count_by_status(ListExecutions(created_before=long_ago))
    after = await app.executions.count_by_status(ListExecutions(created_after=long_ago))
    assert sum(before.values()) == 0 and sum(after.values()) == 3
    # A workflow nobody has is said, as an unknown parent is (tour 25 M9).
    with pytest.raises(NotFoundError, match="there is no workflow named 'x'"):
        await app.executions.count_by_status(ListExecutions(workflow="x"))
    # A parent named by the start of its id, as people type it (one code path with the list).
    child_of = ListExecutions(parent_id=ran["id"][:8], id_prefixes=True)
    assert sum((await app.executions.count_by_status(child_of)).values()) == 0
    with pytest.raises(NotFoundError, match="no execution has an id starting with 'zz'"):
        await app.executions.count_by_status(ListExecutions(parent_id="zz", id_prefixes=True))


async def test_a_forged_edited_or_foreign_cursor_is_refused(app: App, hello_file: str) -> None:
    await start(app, hello_file, 3)
    page = await app.executions.list(ListExecutions(limit=1))
    assert page.next_cursor is not None
    head, _, mac = page.next_cursor.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    payload["i"] = "ffffffff-ffff-ffff-ffff-ffffffffffff"
    edited = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    for bad in (f"{edited}.{mac}", "not-a-cursor", page.next_cursor[:-2] + "AA", ""):
        with pytest.raises(InvalidInputError) as caught:
            await app.executions.list(ListExecutions(limit=1, cursor=bad))
        assert caught.value.field_path == ("cursor",)
    with pytest.raises(InvalidInputError, match="other filters"):
        await app.executions.list(
            ListExecutions(limit=1, workflow="hello", cursor=page.next_cursor)
        )


async def test_another_app_on_the_database_accepts_the_cursor(
    app: App, db_url: str, hello_file: str
) -> None:
    ids = await start(app, hello_file, 2)
    page = await app.executions.list(ListExecutions(limit=1))
    async with App(db_url) as other:
        rest = await other.executions.list(ListExecutions(limit=1, cursor=page.next_cursor))
    assert [d["id"] for d in rest.items] == [ids[0]]


async def test_paging_while_others_insert_skips_and_repeats_nothing(
    app: App, hello_file: str
) -> None:
    before = set(await start(app, hello_file, 12))
    inserted: list[str] = []

    async def insert() -> None:
        for _ in range(8):
            inserted.extend(await start(app, hello_file, 1))
            await asyncio.sleep(0)

    async def page_through() -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            page = await app.executions.list(ListExecutions(limit=3, cursor=cursor))
            seen.extend(d["id"] for d in page.items)
            await asyncio.sleep(0)
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    seen, _ = await asyncio.gather(page_through(), insert())
    assert len(seen) == len(set(seen))  # nothing twice
    assert before <= set(seen)  # nothing that existed when paging began is skipped
    assert set(seen) <= before | set(inserted)


async def test_events_after_any_64_bit_position_are_none(app: App, hello_file: str) -> None:
    """``events.seq`` is 32 bits on PostgreSQL: ``after=2147483648`` was a 500 there (and
    the CLI's error sent people to ``db upgrade``); SQLite answered []. Both answer []."""
    doc = await app.executions.run(
        RunExecution(workflow=hello_file, allow_file=True, input={"name": "Ada"})
    )
    history = await app.executions.events(ListEvents(id=doc["id"]))
    assert history["items"]
    for after in (2**31 - 1, 2**31, 2**63 - 1):
        page = await app.executions.events(ListEvents(id=doc["id"], after_seq=after))
        assert page["items"] == [] and page["nextCursor"] is None
        follow = FollowEvents(id=doc["id"], after_seq=after)
        assert await app.streams.ended(follow)
        stream = await app.streams.follow(follow)
        async with asyncio.timeout(10):
            assert [item async for item in stream] == []


async def test_a_name_is_read_as_a_file_only_when_the_caller_allows_it(
    app: App, hello_file: str
) -> None:
    """A start, a run or a load read a name that is a file of this machine as that file
    unless told ``stored_only``: a new service path that forgot read a caller's workflow
    name as a server file. Now only ``allow_file`` (the CLI's ``start FILE_OR_NAME``) does."""
    refused = f"there is no workflow named {hello_file!r}; push it first"
    for call in (
        lambda: app.executions.start(StartExecution(workflow=hello_file)),
        lambda: app.executions.run(RunExecution(workflow=hello_file, input={"name": "A"})),
        lambda: app.workflows.load(LoadWorkflow(workflow=hello_file)),
    ):
        with pytest.raises(NotFoundError) as caught:
            await call()
        assert str(caught.value).startswith(refused)
    assert (await app.executions.list(ListExecutions())).items == []
    loaded = await app.workflows.load(LoadWorkflow(workflow=hello_file, allow_file=True))
    doc = await app.executions.start(StartExecution(workflow=hello_file, allow_file=True))
    assert loaded.name == doc["workflowName"] == "hello"


async def test_unknown_ids_are_not_found(app: App) -> None:
    with pytest.raises(NotFoundError):
        await app.executions.get(GetExecution(id="nope"))
    with pytest.raises(NotFoundError):
        await app.executions.events(ListEvents(id="nope"))
    with pytest.raises(NotFoundError, match="no execution has an id starting with"):
        await app.executions.resolve_id(ResolveId(prefix="zzz"))
    with pytest.raises(NotFoundError):
        await app.executions.start(StartExecution(workflow="never-pushed"))


async def test_an_id_with_a_lone_surrogate_is_not_found_or_refused_clearly(app: App) -> None:
    """A command's argument with an undecodable byte reads as a lone surrogate
    (``\\udcff``): its prefix was refused as "unable to parse raw data as a unicode
    string", and a request's id said so too; the engine's methods raised the driver's raw
    UnicodeEncodeError. A prefix is not found, as any other; an id is refused clearly."""
    with pytest.raises(NotFoundError, match=r"^no execution has an id starting with '\\udcff'$"):
        await app.executions.resolve_id(ResolveId(prefix="\udcff"))
    with pytest.raises(NotFoundError, match=r"^no job run has an id starting with '\\udcff'$"):
        await app.job_runs.resolve_id(ResolveId(prefix="\udcff"))
    with pytest.raises(InvalidInputError, match=r"^id: holds a lone surrogate, which no stored"):
        GetExecution(id="\ud800")


async def test_a_prefix_several_ids_start_with_names_them(app: App, hello_file: str) -> None:
    """The web page of a short id lists the executions it could mean (tour 22b L7)."""
    ids = await start(app, hello_file, 17)  # 16 hexadecimal digits: two share their first
    shared = next(i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1)
    with pytest.raises(
        AmbiguousIdError, match=f"several executions have ids starting with '{shared}' \\("
    ) as found:
        await app.executions.resolve_id(ResolveId(prefix=shared))
    assert sorted(found.value.matches) == sorted(i for i in ids if i.startswith(shared))
    assert not found.value.more
    assert all(match in str(found.value) for match in found.value.matches)


async def test_cancelling_a_finished_execution_is_a_conflict(app: App, hello_file: str) -> None:
    doc = await app.executions.run(
        RunExecution(workflow=hello_file, allow_file=True, input={"name": "Ada"})
    )
    assert doc["runtimeStatus"] == "Completed"
    with pytest.raises(ConflictError, match="already ended"):
        await app.executions.cancel(CancelExecution(id=doc["id"]))
    page = await app.executions.events(ListEvents(id=doc["id"]))
    events = page["items"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert page["nextCursor"] is None  # one page holds it all
    # Two at a time, every page walked: the same history.
    pages = [p async for p in app.executions.history(ListEvents(id=doc["id"], limit=2))]
    assert [e for p in pages for e in p] == events and len(pages) > 1
    waited = await app.executions.get(GetExecution(id=doc["id"], wait=5))
    assert waited["runtimeStatus"] == "Completed"


ASK_THEN_SAY = """
name: ask_then_say
steps:
  - {id: ask, type: sys.wait_for_input, input: {prompt: "go?"}}
  - {id: say, type: sys.transform, input: {value: "said {{ steps.ask.output }}"}}
"""


async def test_only_an_ended_execution_is_rerun(app: App) -> None:
    """A rerun of one still waiting for a person was taken: the new execution asked the
    same question beside it, and both went on to do the work after it."""
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=ASK_THEN_SAY)]))
    waiting = await app.executions.run(RunExecution(workflow="ask_then_say"))
    assert waiting["runtimeStatus"] == "AwaitingUserInput"
    rerun = RerunExecution(id=waiting["id"], from_step="ask", settle=True)
    with pytest.raises(ConflictError, match="is AwaitingUserInput: only an ended execution"):
        await app.executions.rerun(rerun)
    listed = await app.executions.list(ListExecutions(workflow="ask_then_say"))
    assert [doc["id"] for doc in listed.items] == [waiting["id"]]  # nothing was started
    await app.executions.cancel(CancelExecution(id=waiting["id"], settle=True))
    again = await app.executions.rerun(rerun)
    assert (again["rerunOf"], again["runtimeStatus"]) == (waiting["id"], "AwaitingUserInput")


ASK_OR_FAIL = """
name: ask_or_fail
steps:
  - {id: ask, type: sys.wait_for_input, input: {prompt: "ok {{ input.n }}?"}}
  - {id: bad, type: sys.fail, when: "{{ steps.ask.output == 0 }}", input: {message: zero}}
"""
ASK_BOTH = """
name: ask_both
steps:
  - id: kids
    type: sys.sub_workflow
    input: {workflow: ask_or_fail, items: [1, 2], input: {n: "{{ loop.kids.item }}"}}
"""


async def _two_children_waiting(app: App) -> ExecutionDocument:
    """A parent run here until its two children wait for a person."""
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=ASK_OR_FAIL)]))
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=ASK_BOTH)]))
    waiting = await app.executions.run(RunExecution(workflow="ask_both"))
    assert waiting["runtimeStatus"] == "AwaitingUserInput"
    return waiting


async def test_a_settled_cancel_also_cancels_the_children_nobody_runs(app: App) -> None:
    """Children parked waiting for a person are cancelled by the command, like their
    parent, not left AwaitingUserInput until a worker comes by."""
    waiting = await _two_children_waiting(app)
    cancelled = await app.executions.cancel(CancelExecution(id=waiting["id"], settle=True))
    assert cancelled["runtimeStatus"] == "Cancelled"
    children = await app.executions.list(ListExecutions(parent_id=waiting["id"]))
    assert [c["runtimeStatus"] for c in children.items] == ["Cancelled", "Cancelled"]


async def test_count_ended_counts_the_children_that_ended_in_any_terminal_status(
    app: App,
) -> None:
    """What ``watch`` draws under a sub-workflow step, one read a second (it was one
    count per terminal status)."""
    waiting = await _two_children_waiting(app)
    children = ListExecutions(parent_id=waiting["id"])
    assert await app.executions.count_ended(children) == 0
    await app.executions.cancel(CancelExecution(id=waiting["id"], settle=True))
    assert await app.executions.count_ended(children) == 2
    # The listing's own status is set aside: ended is every terminal status.
    running = ListExecutions(parent_id=waiting["id"], status="InProgress")
    assert await app.executions.count_ended(running) == 2


async def test_top_level_only_leaves_the_children_out_of_the_list_and_its_counts(
    app: App,
) -> None:
    """The web list could not leave out a sub-workflow's children (one parent of 1,000
    items buried what people started): ``top_level`` selects the executions without a
    parent, in the list, its pages and its counts, with any statuses."""
    waiting = await _two_children_waiting(app)
    cancelled = await app.executions.run(
        RunExecution(workflow="ask_both", input={})
    )  # two more children, then cancelled with them
    await app.executions.cancel(CancelExecution(id=cancelled["id"], settle=True))
    top = ListExecutions(top_level=True, limit=1)
    first = await app.executions.list(top)
    second = await app.executions.list(ListExecutions(top_level=True, cursor=first.next_cursor))
    assert [d["id"] for d in (*first.items, *second.items)] == [cancelled["id"], waiting["id"]]
    assert second.next_cursor is None
    counts = await app.executions.count_by_status(top)
    assert counts["AwaitingUserInput"] == 1 and counts["Cancelled"] == 1
    assert sum(counts.values()) == 2  # not the four children
    assert sum((await app.executions.count_by_status(ListExecutions())).values()) == 6
    both = ListExecutions(top_level=True, status=["Cancelled", "AwaitingUserInput"])
    assert await app.executions.count(both) == 2
    only = await app.executions.list(ListExecutions(top_level=True, status="Cancelled"))
    assert [d["id"] for d in only.items] == [cancelled["id"]]
    # A cursor is of its filters: one of the whole list does not page the top level.
    whole = await app.executions.list(ListExecutions(limit=1))
    with pytest.raises(InvalidInputError):
        await app.executions.list(ListExecutions(top_level=True, cursor=whole.next_cursor))
    with pytest.raises(InvalidInputError, match="give a parent or top-level only"):
        ListExecutions(top_level=True, parent_id=waiting["id"])


async def test_a_page_carries_its_total_when_asked(app: App) -> None:
    """``include_total``: the one listing both faces call says how many its filters
    select in all (GET /executions?includeTotal=true, the footer of `executions list`);
    absent otherwise. A cursor does not depend on it."""
    waiting = await _two_children_waiting(app)
    kids = ListExecutions(parent_id=waiting["id"], limit=1, include_total=True)
    first = await app.executions.list(kids)
    assert (len(first.items), first.total) == (1, 2)
    assert first.to_json()["total"] == 2
    rest = ListExecutions(parent_id=waiting["id"], cursor=first.next_cursor)
    second = await app.executions.list(rest)
    assert second.total is None and "total" not in second.to_json()
    assert len(second.items) == 1 and second.next_cursor is None
    cancelled = ListExecutions(parent_id=waiting["id"], status="Cancelled", include_total=True)
    none = await app.executions.list(cancelled)
    assert (none.items, none.total) == ([], 0)


async def test_an_answer_that_fails_the_parent_cancels_the_siblings_nobody_runs(
    app: App,
) -> None:
    """The parent failed with its child, and told the other child to cancel; nobody ran
    that one, so it stayed listed AwaitingUserInput (its cancel pending) until a worker
    came by, where ``cancel`` of the parent cancels it in the command."""
    waiting = await _two_children_waiting(app)
    first, second = (await app.executions.list(ListExecutions(parent_id=waiting["id"]))).items
    answer = SubmitInput(id=first["id"], step="ask", data=0, settle=True)
    assert (await app.executions.submit_input(answer))["runtimeStatus"] == "Failed"
    parent_doc = await app.executions.get(GetExecution(id=waiting["id"]))
    assert parent_doc["runtimeStatus"] == "Failed"
    sibling = await app.executions.get(GetExecution(id=second["id"]))
    assert sibling["runtimeStatus"] == "Cancelled"


async def test_the_sent_document_lists_what_the_children_wait_for(app: App) -> None:
    """The JSON the HTTP face sends (kept per rows) also lists the children's waits,
    and shows an answered child's wait gone at the next read."""
    child = "name: ask_one\nsteps:\n  - {id: ask, type: sys.wait_for_input, input: {prompt: ok?}}\n"
    parent = """
name: ask_two
steps:
  - id: kids
    type: sys.sub_workflow
    input: {workflow: ask_one, items: [1, 2]}
"""
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=child)]))
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=parent)]))
    waiting = await app.executions.run(RunExecution(workflow="ask_two"))
    sent = json.loads(await app.executions.get_json(GetExecution(id=waiting["id"])))
    children = {
        c["id"] for c in (await app.executions.list(ListExecutions(parent_id=waiting["id"]))).items
    }
    assert {p["executionId"] for p in sent["pendingInputs"]} == children
    answered = sent["pendingInputs"][0]["executionId"]
    await app.executions.submit_input(SubmitInput(id=answered, step="ask", data=True, settle=True))
    again = json.loads(await app.executions.get_json(GetExecution(id=waiting["id"])))
    assert {p["executionId"] for p in again["pendingInputs"]} == children - {answered}


async def test_every_read_of_an_execution_says_what_it_was_sent_and_not_taken(
    app: App, hello_file: str
) -> None:
    """Tour 19, F10: with no worker, two cancels recorded, and the execution read as if
    nothing had happened: only the control verb's answer said ``pendingSignals``. Every
    read of it says so now (the document and the JSON the API sends), until a runner has
    taken them; and nothing when there is nothing pending, or only what a child told."""
    execution_id = (
        await app.executions.start(
            StartExecution(workflow=hello_file, allow_file=True, input={"name": "a"})
        )
    )["id"]
    read = GetExecution(id=execution_id)
    assert "pendingSignals" not in await app.executions.get(read)
    assert "pendingSignals" not in json.loads(await app.executions.get_json(read))
    for _ in range(2):
        answer = await app.executions.cancel(CancelExecution(id=execution_id))
        assert answer["runtimeStatus"] == "NotStarted"
    assert answer["pendingSignals"] == 2
    doc = await app.executions.get(read)
    assert doc["runtimeStatus"] == "NotStarted" and doc["pendingSignals"] == 2
    assert json.loads(await app.executions.get_json(read))["pendingSignals"] == 2
    await app.engine.drive(execution_id)  # a worker takes them
    doc = await app.executions.get(read)
    assert doc["runtimeStatus"] == "Cancelled" and "pendingSignals" not in doc
    assert "pendingSignals" not in json.loads(await app.executions.get_json(read))

    # A child that ended tells its parent with a signal of its own: nothing a person sent
    # and waits on, so not counted.
    waiting = await _two_children_waiting(app)
    first = (await app.executions.list(ListExecutions(parent_id=waiting["id"]))).items[0]
    await app.executions.submit_input(SubmitInput(id=first["id"], step="ask", data=1))
    assert (await app.engine.drive(first["id"]))["runtimeStatus"] == "Completed"
    parent = await app.engine.store.get_execution(waiting["id"])
    assert parent is not None and parent["signals_sent"] > parent["signals_taken"]
    assert "pendingSignals" not in await app.executions.get(GetExecution(id=waiting["id"]))


FLAKY_PLUGIN = """
from pydantic import BaseModel
from flowledger import StepContext, StepError, step_type

class Nothing(BaseModel):
    pass

@step_type("canceltest.flaky")
async def flaky(data: Nothing, ctx: StepContext) -> dict:
    raise StepError("not yet", retryable=True)
"""
PARKS_ON_A_RETRY = """
name: parks-on-a-retry
steps:
  - id: call
    type: canceltest.flaky
    retry: {max_attempts: 5, backoff: fixed, initial_delay: 1h, jitter: false}
    input: {}
"""


async def test_a_parked_execution_is_cancelled_without_its_plugins(tmp_path: Path) -> None:
    """The cancel was recorded but not applied ("still InProgress", exit 1) by a process
    without the custom step types, though cancelling runs no step."""
    (tmp_path / "cancel_plugin.py").write_text(FLAKY_PLUGIN)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    async with App(url, plugins=[str(tmp_path / "cancel_plugin.py")]) as worker:
        engine = worker.engine
        execution_id = await engine.start(engine.load_text(PARKS_ON_A_RETRY))
        async with running_worker(engine):  # parks it until the retry, an hour on
            await wait_until(engine, execution_id, lambda d: len(d["steps"]) == 2)
    async with App(url) as other:
        request = CancelExecution(id=execution_id, by="ops", reason="not needed", settle=True)
        doc = await other.executions.cancel(request)
    assert doc["runtimeStatus"] == "Cancelled"
    statuses = sorted(step["status"] for step in doc["steps"].values())
    assert statuses == ["Cancelled", "Failed"]  # the first attempt, and the waiting retry


async def test_a_pushed_workflow_is_started_for_the_workers_without_their_plugins(
    tmp_path: Path,
) -> None:
    """`flowledger start NAME`, an API node without the workers' plugins: the start only
    enqueues, so it needs none of them (the push checked the types); running it here
    still does."""
    (tmp_path / "cancel_plugin.py").write_text(FLAKY_PLUGIN)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    async with App(url, plugins=[str(tmp_path / "cancel_plugin.py")]) as pusher:
        await pusher.workflows.push(PushWorkflows(texts=[WorkflowText(text=PARKS_ON_A_RETRY)]))
    async with App(url) as api_node:
        queued = await api_node.executions.start(StartExecution(workflow="parks-on-a-retry"))
        assert queued["runtimeStatus"] == "NotStarted"
        with pytest.raises(DefinitionError, match=r"unknown step type 'canceltest\.flaky'"):
            await api_node.executions.start(StartExecution(workflow="parks-on-a-retry", hold=True))


async def test_an_idempotency_key_tells_true_from_one(app: App, hello_file: str) -> None:
    """Python finds True == 1 == 1.0; a start's input is JSON, where they differ."""
    first = StartExecution(
        workflow=hello_file, allow_file=True, input={"name": "x", "n": True}, idempotency_key="k"
    )
    started = await app.executions.start(first)
    again = await app.executions.start(first)
    assert again["id"] == started["id"]
    for other in (1, 1.0):
        changed = first.model_copy(update={"input": {"name": "x", "n": other}})
        with pytest.raises(ConflictError, match="with another input"):
            await app.executions.start(changed)
    with pytest.raises(InvalidInputError, match="idempotencyKey"):
        StartExecution(workflow=hello_file, allow_file=True, idempotency_key="clé")


async def test_an_idempotency_key_with_another_correlation_id_is_a_conflict(
    app: App, hello_file: str
) -> None:
    """The same key with another correlationId answered the first execution, filed under
    the correlation id of the first request, as if the second had been taken (tour 22C
    F3). A correlation id given against none is another request too."""
    keyed = StartExecution(
        workflow=hello_file, allow_file=True, idempotency_key="c", correlation_id="order-1"
    )
    started = await app.executions.start(keyed)
    assert (await app.executions.start(keyed))["id"] == started["id"]
    for other in ("order-2", None):
        changed = keyed.model_copy(update={"correlation_id": other})
        with pytest.raises(ConflictError) as caught:
            await app.executions.start(changed)
        shown = "no correlation id" if other is None else f"correlation id {other!r}"
        assert str(caught.value) == (
            f"the idempotency key 'c' started execution {started['id']} with correlation id "
            f"'order-1', not {shown}; use a new key for a new start"
        )
    # Started without one, it holds its own id; a retry without one is the same start.
    bare = StartExecution(workflow=hello_file, allow_file=True, idempotency_key="d")
    first = await app.executions.start(bare)
    assert first["correlationId"] == first["id"]
    assert (await app.executions.start(bare))["id"] == first["id"]
    with pytest.raises(ConflictError, match="with no correlation id, not correlation id 'x'"):
        await app.executions.start(bare.model_copy(update={"correlation_id": "x"}))
    listed = await app.executions.list(ListExecutions())
    assert len(listed.items) == 2


HOOKED_CUSTOM = """
name: hooked-custom
triggers:
  - {type: webhook, path: custom-hook, auth: none}
steps:
  - id: call
    type: canceltest.flaky
    input: {}
"""


async def test_triggers_views_and_hooks_need_none_of_the_workers_plugins(
    tmp_path: Path,
) -> None:
    """An API node without the plugins answered a hook for such a workflow 404 (and
    logged an error for it on every hook request); `workflows show` and `trigger` refused
    it. They only start, show or draw it; the process still never runs a stand-in."""
    (tmp_path / "cancel_plugin.py").write_text(FLAKY_PLUGIN)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    async with App(url, plugins=[str(tmp_path / "cancel_plugin.py")]) as pusher:
        await pusher.workflows.push(PushWorkflows(texts=[WorkflowText(text=HOOKED_CUSTOM)]))
    async with App(url) as api_node:
        hook = ReceiveHook(path="custom-hook", headers={}, body=b"{}")
        receipt = await api_node.hooks.receive(hook)
        assert receipt["workflow"] == "hooked-custom" and not receipt["duplicate"]
        manual = await api_node.workflows.trigger(TriggerWorkflow(name="hooked-custom"))
        shown = await api_node.workflows.get_version(
            GetWorkflowVersion(name="hooked-custom", version=1)
        )
        graph = await api_node.views.definition_graph(DefinitionGraph(name="hooked-custom"))
        assert manual["runtimeStatus"] == "NotStarted" and shown["version"] == 1 and graph[0]
        with pytest.raises(DefinitionError, match="unknown step type"):
            await api_node.engine.workflow_for_version(manual["workflowTemplateVersionId"])


def test_a_held_start_takes_no_idempotency_key(hello_file: str) -> None:
    """It was ignored without a word: a held start is driven by its caller."""
    with pytest.raises(InvalidInputError, match="idempotency key is for a start the workers"):
        StartExecution(workflow=hello_file, allow_file=True, hold=True, idempotency_key="k")


NAP = """
name: nap
steps:
  - {id: nap, type: sys.delay, input: {duration: "{{ input.for }}"}}
  - {id: after, type: sys.transform, input: {value: done}}
"""


def _napping(doc: dict[str, object]) -> bool:
    steps = doc.get("steps") or {}
    assert isinstance(steps, dict)
    return any(s["stepId"] == "nap" and s["status"] == "InProgress" for s in steps.values())


async def test_a_cancel_reaches_a_run_of_this_process_without_waiting_for_its_poll(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tour 22C, F1: the run only looked for signals at its poll (every second), so a
    cancel of a run in this very process (``serve``'s worker) waited for it, and one sent
    in the run's last second was not seen before it completed. The engine that runs it
    is told now. With no poll during the test, only that can make it take the cancel."""
    monkeypatch.setattr(inbox, "POLL_INTERVAL", 3600.0)
    workflow = app.engine.load_text(NAP)
    execution_id = await app.engine.start(workflow, {"for": "60s"})
    drive = asyncio.create_task(app.engine.drive(execution_id))
    await wait_until(app.engine, execution_id, _napping)
    answer = await app.executions.cancel(CancelExecution(id=execution_id, wait=10))
    assert answer["runtimeStatus"] == "Cancelled" and "pendingSignals" not in answer
    assert (await drive)["runtimeStatus"] == "Cancelled"


async def test_a_cancel_the_run_ended_without_taking_is_a_conflict(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tour 22C, F1: a cancel recorded while another process ran the execution, which
    completed before it looked for signals, was answered 200 with ``Completed``, as if
    the cancel had done its work: it changed nothing, the conflict an ended execution's
    cancel is. (The other engine here stands for another process; no poll during the
    test, and it does not hear signals (PostgreSQL's NOTIFY, as when the cancel comes in
    its last moment), so it never looks.)"""
    monkeypatch.setattr(inbox, "POLL_INTERVAL", 3600.0)

    async def deaf(heard: object) -> None:
        return None

    async with Engine(app.engine.db_url) as elsewhere:
        monkeypatch.setattr(elsewhere.store, "watch_signals", deaf)
        workflow = elsewhere.load_text(NAP)
        execution_id = await elsewhere.start(workflow, {"for": "3s"})
        drive = asyncio.create_task(elsewhere.drive(execution_id))
        await wait_until(elsewhere, execution_id, _napping)
        with pytest.raises(ConflictError, match="ended Completed before it took the cancel"):
            await app.executions.cancel(CancelExecution(id=execution_id, wait=30))
        assert (await drive)["runtimeStatus"] == "Completed"
