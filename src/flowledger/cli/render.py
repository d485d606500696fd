"""Human-readable views for the terminal: one table style for every command, times
with their zone, and never user text read as markup (the consoles have markup off;
styles come as :class:`Text` only)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from flowledger.app.cancels import cancel_reason
from flowledger.cli import clock
from flowledger.cli.common import command
from flowledger.cli.progress import STATUS_STYLE, event_line, iteration_suffix
from flowledger.cli.terminal import visible

if TYPE_CHECKING:  # rich.table loads with the first table (`run` piped prints none)
    from rich.table import Table

    from flowledger.app.execution_reads import Runner
    from flowledger.app.timeline import Scale
    from flowledger.runtime.refusals import Refusal

#: Above this many step executions, `executions show` sums loop iterations up per step.
COMPACT_ABOVE = 40


def table(*columns: str) -> Table:
    """The one table style of every command: bold header, no box, no padding at the edge."""
    from rich.table import Table

    made = Table(header_style="bold", box=None, pad_edge=False)
    for column in columns:
        made.add_column(column)
    return made


def when(text: str | None) -> str:
    """An ISO time for people: this machine's time zone, which it names (``… UTC``)."""
    if not text:
        return ""
    moment = clock.parse(text)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def clock_time(text: str | None) -> str:
    """Just the time of day (the date is in the header), to the millisecond."""
    return clock.time_of_day(text) if text else ""


def _status(status: str) -> Text:
    style = STATUS_STYLE.get(status, "")
    if status == "CompletedWithNoActionTaken":
        style = "green"
    elif status == "AwaitingUserInput":
        style = "cyan"
    return Text(status, style=style)


def _ended(doc: dict[str, Any]) -> str | None:
    return doc.get("completedAt") or doc.get("failedAt")


def _duration(doc: dict[str, Any]) -> str:
    start, end = doc.get("startedAt"), _ended(doc)
    if not start or not end:
        return ""
    return _seconds((clock.parse(end) - clock.parse(start)).total_seconds())


def _seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def error_text(error: dict[str, Any]) -> str:
    """``step 'enrich' (attempt 3): POST https://… answered 503`` — where, then what; its
    control characters shown (cli.terminal) before Rich's Text drops some (BEL, CR)."""
    message = visible(str(error.get("message")))
    if error.get("stepId"):
        return f"step '{error['stepId']}' (attempt {error.get('attempt', 1)}): {message}"
    return message


def _short_json(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_line(doc: dict[str, Any], column: int = 0) -> Text:
    """An execution's ``error`` as a line, its text from ``column`` (0: after a space):
    what a cancel records is its reason, not a failure, said once and with its sender
    (``reason: not needed (by cli:ada)``, as the web's notice reads)."""
    label, message, style = "error:", error_text(doc["error"]), "red"
    cancel = cancel_reason(doc["error"]) if doc["runtimeStatus"] == "Cancelled" else None
    if cancel is not None:
        by = f" (by {cancel.by})" if cancel.by else ""
        label, message = "reason:", f"{visible(cancel.reason)}{by}"
        style = STATUS_STYLE.get("Cancelled", "")
    return Text(f"{label:<{column}}{message}" if column else f"{label} {message}", style=style)


def summary(console: Console, doc: dict[str, Any]) -> None:
    """The closing lines of ``flowledger run``."""
    steps = doc.get("steps") or {}
    line = Text.assemble(
        _status(doc["runtimeStatus"]),
        f"  {doc['workflowName']} v{doc['workflowVersion']}  {_duration(doc)}  "
        f"{len(steps)} step executions  id {doc['id']}",
    )
    console.print(line, soft_wrap=True)
    if doc.get("error"):
        console.print(_error_line(doc), soft_wrap=True)
    if doc.get("output") is not None:
        console.print(f"output: {_short_json(doc['output'])}", soft_wrap=True)
    if doc.get("rerunOf"):
        console.print(f"rerun of: {doc['rerunOf']}")


def execution_table(
    console: Console, docs: list[dict[str, Any]], orphans: Collection[str] = ()
) -> None:
    """The listing; an execution in ``orphans`` (running, held by no process) says so."""
    if not docs:
        console.print("no executions")
        return
    shown = table("id", "workflow", "status", "created", "duration", "correlation id")
    shown.columns[0].no_wrap = True  # whole, so it can be copied
    shown.columns[0].min_width = 36
    for doc in docs:
        shown.add_row(
            doc["id"],
            f"{doc['workflowName']} v{doc['workflowVersion']}",
            Text.assemble(
                _status(doc["runtimeStatus"]),
                (", held by no process", "red") if doc["id"] in orphans else "",
            ),
            when(doc.get("createdAt")),
            _duration(doc),
            doc["correlationId"] if doc["correlationId"] != doc["id"] else "",
        )
    console.print(shown)


def page_footer(
    console: Console, shown: int, total: int, next_cursor: str | None, noun: str
) -> None:
    """``20 of 312; --cursor X for more`` (or how many there are, when all are shown)."""
    if next_cursor is not None:
        console.print(f"{shown} of {total}; --cursor {next_cursor} for more", soft_wrap=True)
    elif total > shown:  # a later page: these are the last ones
        console.print(f"the last {shown} of {total}")
    elif shown:
        console.print(f"{total} {noun}{'' if total == 1 else 's'}")


def execution_detail(
    console: Console,
    doc: dict[str, Any],
    *,
    show_all: bool = False,
    db: str | None = None,
    runner: str | None = None,
) -> None:
    """``executions show``: the submit commands of its questions on the database ``db``;
    ``runner``, its line of who carries it on (:func:`held_by`)."""
    console.print(Text.assemble(("execution ", "bold"), doc["id"]))
    console.print(Text.assemble("status:   ", _status(doc["runtimeStatus"])))
    if runner:
        console.print(runner, soft_wrap=True)
    if doc.get("pendingSignals"):  # recorded, not acted on yet (no worker took it)
        count = doc["pendingSignals"]
        noun = "cancel or input" if count == 1 else "cancels or inputs"
        console.print(f"pending:  {count} {noun} recorded, waiting for a worker to act on")
    console.print(f"workflow: {doc['workflowName']} v{doc['workflowVersion']}")
    console.print(
        f"started:  {when(doc.get('startedAt')) or '-'}   ended: {when(_ended(doc)) or '-'}"
        f"   duration: {_duration(doc) or '-'}"
    )
    for label, key in (
        ("parent:   ", "parentWorkflowExecutionId"),
        ("rerun of: ", "rerunOf"),
        ("job run:  ", "jobRunId"),
    ):
        if doc.get(key):
            console.print(f"{label}{doc[key]}")
    if doc.get("input") is not None:
        console.print(_data_line("input:    ", doc["input"], doc["id"], db), soft_wrap=True)
    if doc.get("error"):
        console.print(_error_line(doc, 10), soft_wrap=True)
    steps = list((doc.get("steps") or {}).values())
    if show_all or len(steps) <= COMPACT_ABOVE:
        _step_table(console, steps)
    else:
        _compact_steps(console, steps)
    if doc.get("variables"):
        console.print(f"variables: {_short_json(doc['variables'])}")
    if doc.get("pendingInputs"):
        pending_inputs(console, doc["pendingInputs"], db)
    if doc.get("output") is not None:
        console.print(_data_line("output: ", doc["output"], doc["id"], db), soft_wrap=True)


def _data_line(label: str, value: Any, execution_id: str, db: str | None) -> str:
    """``input: {…}``, cut short, and then where the whole of it is."""
    text = _short_json(value)
    if text.endswith("…") and text != json.dumps(value, ensure_ascii=False):
        whole = command("executions", "show", execution_id, "--json", db=db)
        text += f" (whole: {whole})"
    return f"{label}{text}"


def _loop_text(step: dict[str, Any]) -> str:
    return ",".join(f"{k}[{v}]" for k, v in step["loop"].items())


def _step_table(console: Console, steps: Sequence[dict[str, Any]]) -> None:
    shown = table(
        "step", "loop", "type", "status", "attempt", "started", "ended", "took", "output / error"
    )
    for step in steps:
        detail = (
            step["error"]["message"] if step.get("error") else _short_json(step["outputData"], 80)
        )
        shown.add_row(
            step["stepId"],
            _loop_text(step),
            step["type"],
            _status(step["status"]),
            str(step["attempt"]),
            clock_time(step.get("startedAt")),
            clock_time(_ended(step)),
            _duration(step),
            Text(detail, style="red" if step.get("error") else ""),
        )
    console.print(shown)


def _compact_steps(console: Console, steps: Sequence[dict[str, Any]]) -> None:
    """Steps outside loops one a row; loop body steps one a row per step id, with how
    many step executions ended in each status."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for step in steps:
        rows[step["stepId"] if step["loop"] else step["id"]].append(step)
    shown = table(
        "step", "type", "executions", "statuses", "attempts", "took (total)", "last error"
    )
    summed = 0
    for group in rows.values():
        first = group[0]
        statuses = Counter(s["status"] for s in group)
        errors = [s["error"]["message"] for s in group if s.get("error")]
        took = sum(
            (clock.parse(end) - clock.parse(s["startedAt"])).total_seconds()
            for s in group
            if s.get("startedAt") and (end := _ended(s))
        )
        if first["loop"]:
            summed += len(group)
        shown.add_row(
            first["stepId"] + (" (loop body)" if first["loop"] else ""),
            first["type"],
            str(len(group)),
            Text.assemble(
                *(
                    part
                    for status, n in statuses.most_common()
                    for part in ((f"{n} ", ""), (status, STATUS_STYLE.get(status, "")), (" ", ""))
                )
            ),
            str(max(s["attempt"] for s in group)),
            _seconds(took) if took else "",
            Text(errors[-1] if errors else "", style="red"),
        )
    console.print(shown)
    console.print(
        f"{len(steps)} step executions; {summed} of loop bodies summed up per step "
        "(--all shows every one)"
    )


def event_row(event: dict[str, Any]) -> str:
    """One event of ``executions events``: its number, then what :func:`event_line` says."""
    return f"{event['seq']:>5} {event_line(event)}"


TIMELINE_WIDTH = 50
#: Columns of an idle stretch drawn as a break (app.timeline.GAP_MS says which are).
BREAK_COLUMNS = 2


def failed_periods(events: list[dict[str, Any]]) -> list[tuple[datetime, datetime | None]]:
    """When the execution stood ``Failed``, from its events: each failure until the
    retry that re-opened it (None: still failed)."""
    periods: list[tuple[datetime, datetime | None]] = []
    for event in events:
        if event["kind"] == "execution.failed":
            periods.append((clock.parse(event["at"]), None))
        elif event["kind"] == "execution.retried" and periods and periods[-1][1] is None:
            periods[-1] = (periods[-1][0], clock.parse(event["at"]))
    return periods


def timeline(
    console: Console,
    doc: dict[str, Any],
    *,
    show_all: bool = False,
    events: list[dict[str, Any]] | None = None,
) -> None:
    """A text Gantt chart: one row per step (per loop iteration with --all, or when
    few), ``█`` an attempt running, ``x`` one that failed, ``·`` the wait before a
    retry, ``-`` the time the execution stood failed until someone retried it
    (:func:`failed_periods`), ``░`` the time an attempt waited for input, a timer or
    children (without ``events``, its history, only a wait that has not ended). Drawn on
    the web's time axis (app.timeline.layout): an idle stretch long enough is a break
    BREAK_COLUMNS wide, marked ``≈`` on a row of its own that says how long it was."""
    from flowledger.app import timeline as rule  # not loaded by commands that draw none

    history = events or []
    failed = failed_periods(history)
    found = rule.waits(history)
    steps = [s for s in (doc.get("steps") or {}).values() if s.get("startedAt")]
    console.print(
        Text.assemble(("execution ", "bold"), doc["id"], "  ", _status(doc["runtimeStatus"]))
    )
    # Not over: drawn up to now, as the web draws it (app.timeline.drawn_until).
    frame = rule.layout(doc, steps, found, datetime.now(UTC))
    if frame is None:
        console.print("no step has started")
        return
    scale = rule.Scale(frame, TIMELINE_WIDTH, BREAK_COLUMNS)
    start, end = frame.origin, frame.until
    per_row = show_all or len(steps) <= COMPACT_ABOVE
    rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for step in steps:
        rows[(step["stepId"], iteration_suffix(step["loop"]) if per_row else "")].append(step)
    idle = "(idle)" if frame.gaps else ""
    label_width = min(40, max(len(idle), *(len(f"{k[0]}{k[1]}") for k in rows)) + 1)

    def column(moment: datetime) -> int:
        return min(TIMELINE_WIDTH - 1, max(0, int(scale.at(moment))))

    def stood_failed(cell: int) -> bool:
        middle = cell + 0.5
        return any(scale.at(began) <= middle < scale.at(ended or end) for began, ended in failed)

    console.print(
        f"{'':<{label_width}}|{when(start.isoformat())}{'':>10}+{_seconds(frame.span / 1000)}",
        soft_wrap=True,
    )
    drew_failed = False  # the legend names only the marks drawn
    for (step_id, loop), attempts in rows.items():
        cells = [" "] * TIMELINE_WIDTH
        styles = [""] * TIMELINE_WIDTH
        attempts.sort(key=lambda s: s["startedAt"])
        previous_end: datetime | None = None
        for attempt in attempts:
            began = clock.parse(attempt["startedAt"])
            stopped = clock.parse(e) if (e := _ended(attempt)) else None
            if previous_end is not None and attempt["attempt"] > 1 and began > previous_end:
                # From the cell after the last attempt's own: an attempt shorter than a
                # cell ends in the cell it began in, and its mark must stay.
                for i in range(column(previous_end) + 1, column(began)):
                    cells[i], styles[i] = ("-", "red dim") if stood_failed(i) else ("·", "dim")
                    drew_failed = drew_failed or cells[i] == "-"
            mark, style = "█", STATUS_STYLE.get(attempt["status"], "")
            if attempt["status"] == "Failed":
                mark = "x"
            if stopped is None:
                mark, style = ("░", "cyan") if attempt["status"] != "InProgress" else ("█", style)
            for i in range(column(began), column(stopped or end) + 1):
                cells[i], styles[i] = mark, style
            for wait in found.get(attempt.get("id") or "", ()):
                if wait.kind != "wait":  # a retry's back-off: drawn between the attempts
                    continue
                # From the cell after the wait began, so a short run before it shows.
                for i in range(column(wait.since) + 1, column(wait.until or stopped or end) + 1):
                    cells[i], styles[i] = "░", "cyan"
            previous_end = stopped or previous_end
        bar = Text()
        for cell, style in zip(cells, styles, strict=True):
            bar.append(cell, style=style)
        tries = max(a["attempt"] for a in attempts)
        tail = f" {len(attempts)} times" if len(attempts) > 1 else ""
        tail += f" (attempt {tries})" if tries > 1 else ""
        label = f"{step_id}{loop}"[:label_width]
        console.print(Text.assemble(f"{label:<{label_width}}|", bar, f"|{tail}"))
    if frame.gaps:
        _idle_row(console, scale, frame.gaps, idle, label_width)
    console.print(
        "█ running  x failed  · waiting to retry  ░ waiting (input, timer, children)"
        + ("  - execution failed until retried" if drew_failed else "")
        + ("  ≈ idle, not to scale" if frame.gaps else "")
        + ("" if per_row else "  (loop iterations drawn together; --all: one row each)")
    )


def _idle_row(
    console: Console,
    scale: Scale,
    gaps: Sequence[tuple[int, int]],
    label: str,
    label_width: int,
) -> None:
    """The row that marks the breaks (``≈``, each in the cells whose middle it covers,
    at least one) and says how long each idle stretch was."""
    cells = [" "] * TIMELINE_WIDTH
    for since, until in gaps:
        low, high = scale.position(since), scale.position(until)
        covered = [i for i in range(TIMELINE_WIDTH) if low <= i + 0.5 < high]
        for i in covered or [min(TIMELINE_WIDTH - 1, int(low))]:
            cells[i] = "≈"
    said = ", ".join(_seconds((until - since) / 1000) for since, until in gaps)
    console.print(
        Text.assemble(
            f"{label:<{label_width}}|", ("".join(cells), "dim"), f"| {said} idle, drawn narrow"
        )
    )


def pending_inputs(console: Console, waiting: list[dict[str, Any]], db: str | None) -> None:
    """What a person must answer, and the command that answers it (naming the step
    execution when the step waits in several loop iterations, as the command needs) on
    the database ``db`` (the command's --db); with a due time, what happens then: the
    step's timeout applies only in a process that runs executions (a worker, serve),
    never in ``run``, which has exited (tour 24: it seemed that nothing ever would)."""
    counts = Counter((item["executionId"], item["stepId"]) for item in waiting)
    now = datetime.now(UTC)
    for item in waiting:
        several = counts[item["executionId"], item["stepId"]] > 1
        target = item["stepExecutionId"] if several else item["stepId"]
        console.print(
            Text.assemble(
                ("waiting for input: ", "bold magenta"),
                f"step {item['stepId']} of execution {item['executionId']}",
                f" (assignee {item['assignee']})" if item.get("assignee") else "",
                f", due {item['dueAt']}" if item.get("dueAt") else "",
            ),
            soft_wrap=True,
        )
        console.print(f"  {item.get('prompt') or ''}", soft_wrap=True)
        if item.get("schema") is not None:
            console.print(f"  schema: {schema_text(item['schema'])}", soft_wrap=True)
        due = clock.parse(item["dueAt"]) if item.get("dueAt") else None
        if due is None or due > now:
            answer = command(
                "executions",
                "input",
                item["executionId"],
                target,
                "--data",
                _example(item.get("schema")),
                db=db,
            )
            console.print(f"  submit: {answer}", soft_wrap=True)
        if due is not None:
            console.print(f"  {_when_due(due <= now, db)}", soft_wrap=True)


#: A schema's keywords in the order people write them; the rest follow by name.
_SCHEMA_ORDER = (
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "properties",
    "items",
    "required",
    "additionalProperties",
)
_SCHEMA_RANK = {keyword: rank for rank, keyword in enumerate(_SCHEMA_ORDER)}


def schema_text(schema: Any) -> str:
    """A wait's schema, cut short, its keys in one order wherever it comes from: a
    workflow run from its file keeps the file's order, a pushed one is stored with
    sorted keys (tour 25 L7: `run` and `show` printed the same schema differently)."""
    return _short_json(_schema_ordered(schema))


def _schema_ordered(value: Any, names: bool = False) -> Any:
    """``names``: a mapping of names (``properties``), in order of name."""
    if isinstance(value, list):
        return [_schema_ordered(item) for item in value]
    if not isinstance(value, dict):
        return value
    if names:
        keys = sorted(value)
    else:
        keys = sorted(value, key=lambda key: (_SCHEMA_RANK.get(key, len(_SCHEMA_RANK)), key))
    named = ("properties", "patternProperties", "$defs", "definitions")
    return {key: _schema_ordered(value[key], not names and key in named) for key in keys}


def _when_due(passed: bool, db: str | None) -> str:
    """What happens at a waiting step's due time, and what makes it happen."""
    timeout = "its timeout applies (the on_timeout default, else the step fails)"
    runner = f"`{command('worker', db=db)}` or `{command('serve', db=db)}`"
    if passed:
        return f"due: passed; it takes no answer now, and {timeout} once {runner} runs"
    return f"due: unanswered by then, {timeout} in a running {runner}"


def runner_note(runner: Runner, execution_id: str, db: str | None) -> str | None:
    """What ``executions watch`` says when no process carries the execution on (None
    when one does, or when it waits for people or its children): who would, and how to
    start one. It watches on all the same: a worker started now shows up in its lines."""
    runs = f"`{command('worker', db=db)}` or `{command('serve', db=db)}`"
    if runner.refusal is not None and runner.state in ("queued", "orphaned"):
        return (
            f"execution {execution_id} waits: {refused(runner.refusal)}; start a worker "
            "with their plugin (`--plugin MODULE`); watching on"
        )
    if runner.state == "orphaned":
        gone = f"; it was held by {runner.holder}" if runner.holder else ""
        run = (
            f", as does the next `flowledger run` of workflow {runner.workflow}"
            if runner.created_by == "cli:run"
            else ""
        )
        return (
            f"no process is running execution {execution_id}{gone}. "
            f"`{command('worker', db=db)}` takes it over{run}; watching on"
        )
    if runner.state == "queued":
        return (
            f"no process has taken execution {execution_id} yet (it is queued): {runs} "
            "runs it; watching on"
        )
    if runner.state == "parked" and runner.wake_at is not None:
        at = when(runner.wake_at.isoformat())
        if runner.wake_at <= datetime.now(UTC):
            return (
                f"execution {execution_id} was due to go on at {at} and no process has "
                f"taken it: {runs} carries it on; watching on"
            )
        return (
            f"execution {execution_id} sleeps until {at}, held by no process meanwhile; "
            f"then {runs} carries it on; watching on"
        )
    return None


def refused(refusal: Refusal) -> str:
    """``no running worker has step types a.b, a.c (worker host:pid refused it at T)``."""
    return (
        f"no running worker has step types {', '.join(refusal.missing)} (worker "
        f"{refusal.worker_words} refused it at {when(refusal.at.isoformat())})"
    )


def held_by(runner: Runner, db: str | None) -> str | None:
    """The ``runner:`` line of ``executions show`` for an execution that has not ended
    (None for one that waits for people or its children: its status says so)."""
    if runner.state == "held":
        return f"runner:   {runner.holder}"
    if runner.refusal is not None and runner.state in ("queued", "orphaned"):
        return f"runner:   none: {refused(runner.refusal)}"
    if runner.state == "orphaned":
        return f"runner:   held by no process; `{command('worker', db=db)}` takes it over"
    if runner.state == "queued":
        return "runner:   none yet (queued for a worker)"
    if runner.state == "parked" and runner.wake_at is not None:
        return f"runner:   none until {when(runner.wake_at.isoformat())} (then a worker goes on)"
    return None


def _example(schema: Any) -> str:
    """A JSON skeleton of what the schema asks for, for the printed command."""
    if not isinstance(schema, dict):
        return "{}"
    props = schema.get("properties")
    if not isinstance(props, dict):
        return "{}"
    samples = {"boolean": True, "string": "...", "integer": 0, "number": 0, "array": []}
    parts = []
    for name, sub in props.items():
        kind = sub.get("type") if isinstance(sub, dict) else None
        value = samples.get(kind) if isinstance(kind, str) else None
        parts.append(f"{json.dumps(name)}: {json.dumps(value)}")
    return "{" + ", ".join(parts) + "}"
