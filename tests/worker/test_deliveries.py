"""Notifications out: the outbox, the delivery duty and a real receiver (both databases)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import pytest
from standardwebhooks import Webhook

from flowledger import Engine
from flowledger.app import App, SubmitInput
from flowledger.app.subscriptions import (
    CreateSubscription,
    DeleteSubscription,
    Event,
    GetSubscription,
    ListDeliveries,
)
from flowledger.config import DeliverySchedule, Settings
from flowledger.errors import InvalidInputError, NotFoundError
from flowledger.worker.deliveries import DeliveryDuty, retry_delay
from flowledger.worker.worker import Worker, WorkerOptions
from tests.raw_sql import run_sql
from tests.worker.receiver import Receiver, receiver

FAST = DeliverySchedule(
    initial=timedelta(milliseconds=20),
    max=timedelta(milliseconds=100),
    retry_for=timedelta(hours=1),
    timeout=timedelta(seconds=5),
)
OK = """\
name: ok
steps:
  - {id: a, type: sys.transform, input: {value: 1}}
"""
BAD = """\
name: bad
steps:
  - {id: a, type: sys.fail, input: {message: "no luck"}}
"""
ASKS = """\
name: asks
steps:
  - {id: a, type: sys.wait_for_input, input: {prompt: "ok?"}}
"""


def settings(db_url: str, schedule: DeliverySchedule = FAST) -> Settings:
    return dataclasses.replace(Settings.from_env(), db_url=db_url, deliveries=schedule)


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    async with Engine(db_url, settings=settings(db_url)) as engine, App(engine=engine) as app:
        yield app


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Wait for a condition (a bound against hanging, not a speed claim)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.02)


async def run(app: App, text: str) -> str:
    doc = await app.engine.run(app.engine.load_text(text, "wf.yaml"), {})
    return str(doc["id"])


@asynccontextmanager
async def refused_once(
    db_url: str, hook: Receiver, schedule: DeliverySchedule
) -> AsyncIterator[tuple[App, str]]:
    """An application on ``schedule`` whose one subscription (to ``hook``, now down) has
    a delivery to make: the application and the subscription's id."""
    async with (
        Engine(db_url, settings=settings(db_url, schedule)) as engine,
        App(engine=engine) as app,
    ):
        sub = await app.subscriptions.create(
            CreateSubscription(url=hook.url, events=["execution.completed"])
        )
        hook.down = True
        await run(app, OK)
        yield app, sub["id"]


async def test_a_receiver_down_for_a_while_gets_every_event_once(
    db_url: str, app: App, hook: Receiver
) -> None:
    sub = await app.subscriptions.create(
        CreateSubscription(url=hook.url, events=["execution.completed", "execution.failed"])
    )
    assert sub["secret"].startswith("whsec_")
    assert "secret" not in (await app.subscriptions.list())[0]
    hook.down = True
    ran = [await run(app, OK), await run(app, BAD), await run(app, OK)]
    # A first worker tries while the receiver is down, and is stopped.
    worker = Worker(app.engine, WorkerOptions(max_duty_wait=0.05))
    task = asyncio.create_task(worker.run())

    async def refused_a_few() -> bool:
        return hook.refused >= 6

    await until(refused_a_few)
    worker.stop()
    await task
    hook.down = False
    # Another worker, in another engine (process), finds every delivery still to do.
    async with Engine(db_url, settings=settings(db_url)) as other:
        second = Worker(other, WorkerOptions(max_duty_wait=0.05))
        task = asyncio.create_task(second.run())

        async def all_delivered() -> bool:
            page = await app.subscriptions.deliveries(ListDeliveries(subscription_id=sub["id"]))
            return len(page.items) == 3 and all(d["status"] == "delivered" for d in page.items)

        await until(all_delivered)
        second.stop()
        await task
    assert sorted(hook.accepted.values()) == [1, 1, 1]  # nothing doubled, nothing lost
    webhook = Webhook(sub["secret"])
    seen = {}
    for webhook_id, request in hook.first_accepted().items():
        payload = webhook.verify(request.body, request.headers)
        assert request.headers["webhook-id"] == webhook_id
        seen[payload["data"]["executionId"]] = payload["type"]
    assert seen == {
        ran[0]: "execution.completed",
        ran[1]: "execution.failed",
        ran[2]: "execution.completed",
    }
    page = await app.subscriptions.deliveries(ListDeliveries(subscription_id=sub["id"]))
    for delivery in page.items:
        assert delivery["attempts"] >= 2 and delivery["lastStatusCode"] == 200
        assert delivery["nextAttemptAt"] is None and delivery["deliveredAt"] is not None
    # The same webhook-id on every attempt of a delivery.
    ids_tried = {r.headers["webhook-id"] for r in hook.requests}
    assert ids_tried == {d["id"] for d in page.items}


async def test_a_worker_stopped_mid_attempt_hands_the_delivery_back_at_once(
    db_url: str, app: App, hook: Receiver
) -> None:
    """A clean stop does not leave the delivery it was sending claimed until the claim's
    lease (the attempt timeout + 30 s) lapses: it is due again at once, and the next
    worker sends it (the same webhook-id; the receiver may have seen it: at least once)."""
    sub = await app.subscriptions.create(
        CreateSubscription(url=hook.url, events=["execution.completed"])
    )
    hook.answering.clear()
    await run(app, OK)
    worker = Worker(app.engine, WorkerOptions(max_duty_wait=0.05))
    task = asyncio.create_task(worker.run())

    async def in_flight() -> bool:
        return len(hook.requests) == 1

    await until(in_flight)
    worker.stop()
    await task
    hook.answering.set()
    [delivery] = (
        await app.subscriptions.deliveries(ListDeliveries(subscription_id=sub["id"]))
    ).items
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    async with Engine(db_url, settings=settings(db_url)) as other:
        assert await DeliveryDuty(other).deliver_pending() == 1  # due now, not in 35 s
    # The held request and the new one, with the same webhook-id (receivers dedupe on it).
    assert hook.accepted == {delivery["id"]: 2}
    [done] = (await app.subscriptions.deliveries(ListDeliveries(subscription_id=sub["id"]))).items
    assert done["status"] == "delivered" and done["attempts"] == 2


async def test_a_worker_dying_mid_attempt_loses_nothing(
    db_url: str, app: App, hook: Receiver
) -> None:
    sub = await app.subscriptions.create(
        CreateSubscription(url=hook.url, events=["execution.completed"])
    )
    execution_id = await run(app, OK)  # committed, with its outbox row; nobody sent it
    store = app.engine.store
    lease = timedelta(hours=1)
    (taken,) = await store.claim_deliveries("dead-worker", 10, lease)  # then it dies
    assert await store.claim_deliveries("another", 10, lease) == []  # leased: not twice
    # The hour passes (moving the lease's end back, not waiting: no load can make a
    # short lease end between the two claims above, as a 300 ms one did).
    # created_at: a past moment, in the form each database stores its times in.
    ended = "UPDATE deliveries SET next_attempt_at = created_at WHERE id = :id"
    assert await asyncio.to_thread(run_sql, db_url, ended, id=taken.id) == 1
    duty = DeliveryDuty(app.engine)

    async def sent() -> bool:
        await duty.deliver_pending()
        return bool(hook.accepted)

    await until(sent)
    # The dead worker's late answer is fenced off.
    late = await store.finish_delivery(
        taken, "dead-worker", delivered=True, status_code=200, error=None, retry_in=None
    )
    assert late is False
    (delivery,) = (
        await app.subscriptions.deliveries(ListDeliveries(subscription_id=sub["id"]))
    ).items
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    assert delivery["executionId"] == execution_id


async def test_two_claimers_never_take_the_same_delivery(db_url: str, app: App) -> None:
    await app.subscriptions.create(
        CreateSubscription(url="http://127.0.0.1:9/none", events=["execution.completed"])
    )
    for _ in range(12):
        await run(app, OK)
    async with Engine(db_url, settings=settings(db_url)) as other:
        lease = timedelta(minutes=1)
        results = await asyncio.gather(
            *(e.store.claim_deliveries(e.owner, 4, lease) for e in [app.engine, other] * 4)
        )
    ids = [d.id for claimed in results for d in claimed]
    assert len(ids) == len(set(ids)) == 12


async def test_events_and_workflow_filters_and_what_subscribing_sees(
    app: App, hook: Receiver
) -> None:
    early = await run(app, OK)  # before any subscription: reported to nobody
    everything = await app.subscriptions.create(
        CreateSubscription(
            url=hook.url,
            events=[
                "execution.completed",
                "execution.failed",
                "execution.cancelled",
                "execution.awaiting_input",
            ],
        )
    )
    only_bad = await app.subscriptions.create(
        CreateSubscription(url=hook.url, events=["execution.failed", "execution.completed"],
                           workflow="bad")
    )  # fmt: skip
    await run(app, OK)
    await run(app, BAD)
    waiting = await run(app, ASKS)

    async def events(sub_id: str) -> list[tuple[str, str]]:
        page = await app.subscriptions.deliveries(ListDeliveries(subscription_id=sub_id))
        return sorted((d["event"], d["executionId"]) for d in page.items)

    all_events = await events(everything["id"])
    assert [e for e, _ in all_events] == [
        "execution.awaiting_input",
        "execution.completed",
        "execution.failed",
    ]
    assert ("execution.awaiting_input", waiting) in all_events
    assert early not in {x for _, x in all_events}
    assert [e for e, _ in await events(only_bad["id"])] == ["execution.failed"]
    await DeliveryDuty(app.engine).deliver_pending()
    assert len(hook.accepted) == 4
    bodies = [json.loads(r.body) for r in hook.first_accepted().values()]
    assert {b["data"]["workflowName"] for b in bodies} == {"ok", "bad", "asks"}
    # Deleting a subscription deletes its deliveries.
    await app.subscriptions.delete(DeleteSubscription(id=only_bad["id"]))
    with pytest.raises(NotFoundError):
        await app.subscriptions.get(GetSubscription(id=only_bad["id"]))
    with pytest.raises(NotFoundError):
        await app.subscriptions.deliveries(ListDeliveries(subscription_id=only_bad["id"]))
    with pytest.raises(NotFoundError):
        await app.subscriptions.delete(DeleteSubscription(id=only_bad["id"]))


async def test_deliveries_carry_their_event_s_seq_on_every_attempt(
    app: App, hook: Receiver
) -> None:
    """A delivery carried a timestamp and nothing to order one execution's by: a retried
    awaiting_input came after the completed that followed it."""
    sub = await app.subscriptions.create(
        CreateSubscription(url=hook.url, events=["execution.awaiting_input", "execution.completed"])
    )
    hook.down = True
    waiting = await run(app, ASKS)
    duty = DeliveryDuty(app.engine)

    async def refused(times: int) -> bool:
        await duty.deliver_pending()
        return hook.refused >= times

    await until(lambda: refused(2))  # the awaiting_input, tried twice
    await app.executions.submit_input(SubmitInput(id=waiting, step="a", data=1, settle=True))
    hook.down = False

    async def delivered() -> bool:
        await duty.deliver_pending()
        return len(hook.accepted) == 2

    await until(delivered)
    events = {e["kind"]: e["seq"] for e in await app.engine.events(waiting)}
    seqs: dict[str, set[int]] = {}
    for request in hook.requests:  # every attempt, refused ones too
        body = Webhook(sub["secret"]).verify(request.body, request.headers)
        assert body["data"]["executionId"] == waiting
        seqs.setdefault(body["type"], set()).add(body["data"]["seq"])
    assert seqs == {
        "execution.awaiting_input": {events["execution.awaiting_input"]},
        "execution.completed": {events["execution.completed"]},
    }
    assert events["execution.awaiting_input"] < events["execution.completed"]


async def test_a_delivery_failing_for_its_whole_window_is_given_up(
    db_url: str, hook: Receiver
) -> None:
    # The window holds several 20-100 ms retries even when the machine is slow to make the
    # first attempt (at a load of 20 on 2 cores, 300 ms held only the first one).
    short = dataclasses.replace(FAST, retry_for=timedelta(seconds=2))
    async with refused_once(db_url, hook, short) as (app, subscription):
        duty = DeliveryDuty(app.engine)

        async def given_up() -> bool:
            await duty.deliver_pending()
            page = await app.subscriptions.deliveries(ListDeliveries(subscription_id=subscription))
            return page.items[0]["status"] == "failed"

        await until(given_up)
        (delivery,) = (
            await app.subscriptions.deliveries(ListDeliveries(subscription_id=subscription))
        ).items
        assert delivery["lastStatusCode"] == 503 and delivery["attempts"] >= 2
        assert "503" in (delivery["lastError"] or "")
        assert delivery["nextAttemptAt"] is None


async def test_the_log_says_when_the_next_attempt_is_in_words(
    db_url: str, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    slow = dataclasses.replace(FAST, initial=timedelta(minutes=2), max=timedelta(minutes=5))
    async with refused_once(db_url, hook, slow) as (app, _):
        with caplog.at_level(logging.WARNING, logger="flowledger.worker.deliveries"):
            await DeliveryDuty(app.engine).deliver_pending()
    (line,) = [r.getMessage() for r in caplog.records if "next attempt in" in r.getMessage()]
    # The first retry waits 1-2 minutes (half of `initial`, and up to as much again).
    assert re.search(r"; next attempt in (1m\d\ds|1m|2m)$", line), line


@pytest.mark.parametrize(
    ("status", "header", "least"),
    [
        (503, "4", 4.0),
        (429, "Wed, 21 Oct 2099 07:28:00 GMT", 10.0),  # capped at the schedule's max
        (503, None, 1.0),  # no header: the schedule's own wait, 1-2 s
    ],
)
async def test_a_receiver_s_retry_after_is_waited_up_to_the_schedule_s_max(
    db_url: str, hook: Receiver, status: int, header: str | None, least: float
) -> None:
    """Deliveries were retried on their own schedule (1-2 s here) whatever the receiver
    asked for in its Retry-After."""
    schedule = dataclasses.replace(FAST, initial=timedelta(seconds=2), max=timedelta(seconds=10))
    hook.down_status, hook.retry_after = status, header
    async with refused_once(db_url, hook, schedule) as (app, subscription):
        assert await DeliveryDuty(app.engine).deliver_pending() == 1
        page = await app.subscriptions.deliveries(ListDeliveries(subscription_id=subscription))
    (delivery,) = page.items
    assert (delivery["status"], delivery["lastStatusCode"]) == ("pending", status)
    assert delivery["nextAttemptAt"] is not None and delivery["lastAttemptAt"] is not None
    due = datetime.fromisoformat(delivery["nextAttemptAt"])
    waited = (due - datetime.fromisoformat(delivery["lastAttemptAt"])).total_seconds()
    assert least - 0.1 <= waited <= max(least, 2.0) + 3.0  # an attempt of a loaded machine
    if header is not None:
        assert f"answered {status} asking to retry after" in str(delivery["lastError"])


async def test_a_workflow_of_no_known_name_is_subscribed_with_a_warning(app: App) -> None:
    events: list[Event] = ["execution.completed"]
    typo = await app.subscriptions.create(
        CreateSubscription(url="https://example.com/in", events=events, workflow="nosuch")
    )
    assert typo["warnings"] == [
        "workflow: no workflow named 'nosuch' exists yet; the subscription reports its "
        "executions once it is pushed"
    ]
    await run(app, OK)  # stored by running it, never pushed: known all the same
    known = await app.subscriptions.create(
        CreateSubscription(url="https://example.com/in", events=events, workflow="ok")
    )
    anything = await app.subscriptions.create(
        CreateSubscription(url="https://example.com/in", events=events)
    )
    assert known["warnings"] == [] and anything["warnings"] == []
    assert "warnings" not in await app.subscriptions.get(GetSubscription(id=typo["id"]))


async def test_an_address_the_egress_policy_refuses_is_refused(app: App) -> None:
    for url in ["http://169.254.169.254/latest", "http://[::ffff:a9fe:a9fe]/", "ftp://x/"]:
        with pytest.raises(InvalidInputError) as caught:
            await app.subscriptions.create(
                CreateSubscription(url=url, events=["execution.completed"])
            )
        assert caught.value.field_path == ("url",)


def test_a_retry_after_is_waited_when_longer_and_never_past_the_max() -> None:
    schedule = DeliverySchedule(initial=timedelta(seconds=5), max=timedelta(minutes=30))
    ask = timedelta(minutes=2)
    assert retry_delay(1, schedule, rand=lambda: 1.0, asked=ask) == ask
    assert retry_delay(1, schedule, rand=lambda: 1.0, asked=timedelta(0)) == timedelta(seconds=5)
    assert retry_delay(1, schedule, rand=lambda: 0.0, asked=timedelta(days=1)) == schedule.max
    # A wait of its own longer than the one asked stays.
    assert retry_delay(20, schedule, rand=lambda: 1.0, asked=ask) == schedule.max


def test_the_retry_schedule_doubles_up_to_its_cap_with_jitter() -> None:
    schedule = DeliverySchedule(initial=timedelta(seconds=5), max=timedelta(minutes=30))
    lows = [retry_delay(n, schedule, rand=lambda: 0.0) for n in (1, 2, 3, 20)]
    highs = [retry_delay(n, schedule, rand=lambda: 1.0) for n in (1, 2, 3, 20)]
    assert lows == [timedelta(seconds=2.5), timedelta(seconds=5), timedelta(seconds=10),
                    timedelta(minutes=15)]  # fmt: skip
    assert highs == [timedelta(seconds=5), timedelta(seconds=10), timedelta(seconds=20),
                     timedelta(minutes=30)]  # fmt: skip


async def test_an_attempt_ends_at_its_timeout_however_slowly_the_receiver_answers(
    db_url: str, hook: Receiver
) -> None:
    """A receiver answering 200 and then trickling its body, each byte well within a
    read's timeout, held the attempt for as long as it liked: past its claim's lease,
    when another worker sent the delivery again and this answer was thrown away."""
    hook.trickle = 0.1  # 100 bytes: 10 s, each read well within the 1 s timeout
    # Its next attempt a minute away (FAST's 100 ms cap had it due again before a
    # loaded machine's next claim, and deliver_pending attempted it twice).
    minute = timedelta(minutes=1)
    schedule = dataclasses.replace(FAST, timeout=timedelta(seconds=1), initial=minute, max=minute)
    async with refused_once(db_url, hook, schedule) as (app, subscription):
        hook.down = False
        assert await DeliveryDuty(app.engine).deliver_pending() == 1
        page = await app.subscriptions.deliveries(ListDeliveries(subscription_id=subscription))
    (delivery,) = page.items
    assert (delivery["status"], delivery["attempts"]) == ("pending", 1)
    assert delivery["lastStatusCode"] is None
    assert delivery["lastError"] == "TimeoutException: the exchange did not finish within 1s"
    assert len(hook.requests) == 1


async def test_a_slow_receiver_holds_back_no_other_subscription_s_delivery(db_url: str) -> None:
    """The duty awaited its whole batch: one receiver taking its time held every later
    delivery (and the worker's other duties) until its attempt ended."""
    patient = dataclasses.replace(FAST, timeout=timedelta(minutes=1))
    with receiver() as slow, receiver() as fast:
        slow.answering.clear()
        slow.hold = 60.0
        async with (
            Engine(db_url, settings=settings(db_url, patient)) as engine,
            App(engine=engine) as app,
        ):
            held = await app.subscriptions.create(
                CreateSubscription(url=slow.url, events=["execution.completed"])
            )
            other = await app.subscriptions.create(
                CreateSubscription(url=fast.url, events=["execution.failed"])
            )
            worker = Worker(engine, WorkerOptions(max_duty_wait=0.05))
            task = asyncio.create_task(worker.run())
            try:
                await run(app, OK)

                async def in_flight() -> bool:
                    return len(slow.requests) == 1

                await until(in_flight)
                await run(app, BAD)  # its delivery is claimed after the slow one's

                async def delivered() -> bool:
                    page = await app.subscriptions.deliveries(
                        ListDeliveries(subscription_id=other["id"])
                    )
                    return [d["status"] for d in page.items] == ["delivered"]

                await until(delivered)
                # The slow attempt is still in flight: not recorded, not answered.
                page = await app.subscriptions.deliveries(
                    ListDeliveries(subscription_id=held["id"])
                )
                assert [(d["status"], d["lastError"]) for d in page.items] == [("pending", None)]
                assert slow.answered == 0
            finally:
                worker.stop()
                await task
                slow.answering.set()
            # Stopped, the worker handed the held delivery back.
            page = await app.subscriptions.deliveries(ListDeliveries(subscription_id=held["id"]))
            assert page.items[0]["lastError"] == "the worker stopped during the attempt"


async def test_a_receiver_that_is_gone_fails_the_delivery_at_once(
    db_url: str, hook: Receiver
) -> None:
    """A 410 was retried for a day like a 500."""
    hook.down_status = 410
    async with refused_once(db_url, hook, FAST) as (app, subscription):
        assert await DeliveryDuty(app.engine).deliver_pending() == 1
        page = await app.subscriptions.deliveries(ListDeliveries(subscription_id=subscription))
        (delivery,) = page.items
        assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
        assert delivery["lastStatusCode"] == 410 and delivery["nextAttemptAt"] is None
        assert delivery["lastError"] == (
            "the receiver answered 410 Gone: the endpoint is no more; not retried"
        )
        assert await DeliveryDuty(app.engine).deliver_pending() == 0
        # The subscription stays: removing it is an admin's decision.
        assert (await app.subscriptions.get(GetSubscription(id=subscription)))["id"]


async def test_the_log_names_a_subscription_by_id_and_origin_never_its_whole_url(
    db_url: str, hook: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed attempt's warning held the whole URL: user info, path token, query secret."""
    origin = hook.url.removesuffix("/hook")
    host = origin.removeprefix("http://")
    url = f"http://alice:pa55word@{host}/services/T0/XyZsecretToken123?sig=QUERYSECRET999"
    # A retry an hour away: under load FAST's 20 ms retry came due inside deliver_pending.
    hourly = dataclasses.replace(FAST, initial=timedelta(hours=1), max=timedelta(hours=1))
    async with (
        Engine(db_url, settings=settings(db_url, hourly)) as engine,
        App(engine=engine) as app,
    ):
        sub = await app.subscriptions.create(
            CreateSubscription(url=url, events=["execution.completed"])
        )
        hook.down = True
        await run(app, OK)
        with caplog.at_level(logging.DEBUG, logger="flowledger"):
            await DeliveryDuty(app.engine).deliver_pending()
    assert len(hook.requests) == 1
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in ("pa55word", "alice", "XyZsecretToken123", "QUERYSECRET999", "services"):
        assert secret not in text
    (line,) = [r.getMessage() for r in caplog.records if "attempt 1" in r.getMessage()]
    assert f"(subscription {sub['id']}) to {origin}/…, attempt 1: the receiver answered 503" in line


async def test_a_stop_hands_back_an_attempt_that_never_started(app: App, hook: Receiver) -> None:
    """An attempt's task cancelled before it first ran never ran its body, which is where
    a stop handed the delivery back: it stayed claimed until its lease lapsed (40 s), and
    another worker found nothing to send meanwhile."""
    sub = await app.subscriptions.create(
        CreateSubscription(url=hook.url, events=["execution.completed"])
    )
    await run(app, OK)
    duty = DeliveryDuty(app.engine)
    await duty.run_once()  # claims it and makes its attempt's task, not yet run
    await duty.stop()
    [delivery] = (
        await app.subscriptions.deliveries(ListDeliveries(subscription_id=sub["id"]))
    ).items
    assert (delivery["status"], delivery["lastError"]) == (
        "pending",
        "the worker stopped during the attempt",
    )
    assert await DeliveryDuty(app.engine).deliver_pending() == 1  # due at once, claimable
    assert sorted(hook.accepted.values()) == [1]
