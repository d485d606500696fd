"""Human-readable views of executions for the terminal."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from flowledger.cli.progress import STATUS_STYLE


def _status(status: str) -> Text:
    style = STATUS_STYLE.get(status, "")
    if status == "CompletedWithNoActionTaken":
        style = "green"
    elif status == "AwaitingUserInput":
        style = "cyan"
    return Text(status, style=style)


def _duration(doc: dict[str, Any]) -> str:
    start = doc.get("startedAt")
    end = doc.get("completedAt") or doc.get("failedAt")
    if not start or not end:
        return ""
    seconds = (_parse(end) - _parse(start)).total_seconds()
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.2f}s"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _error_text(error: dict[str, Any]) -> str:
    """``step 'enrich' (attempt 3): POST https://… answered 503`` — where, then what."""
    message = str(error.get("message"))
    if error.get("stepId"):
        return f"step '{error['stepId']}' (attempt {error.get('attempt', 1)}): {message}"
    return message


def _short_json(value: Any, limit: int = 400) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        console.print(Text(f"error: {_error_text(doc['error'])}", style="red"), soft_wrap=True)
    if doc.get("output") is not None:
        console.print(f"output: {_short_json(doc['output'])}", markup=False, soft_wrap=True)
    if doc.get("rerunOf"):
        console.print(f"rerun of: {doc['rerunOf']}", markup=False)


def execution_table(console: Console, docs: list[dict[str, Any]]) -> None:
    if not docs:
        console.print("no executions")
        return
    table = Table(header_style="bold", box=None)
    table.add_column("id", no_wrap=True, min_width=36)  # whole, so it can be copied
    for column in ("workflow", "status", "started", "duration", "correlation id"):
        table.add_column(column)
    for doc in docs:
        table.add_row(
            doc["id"],
            f"{doc['workflowName']} v{doc['workflowVersion']}",
            _status(doc["runtimeStatus"]),
            (doc.get("startedAt") or "")[:19].replace("T", " "),
            _duration(doc),
            doc["correlationId"] if doc["correlationId"] != doc["id"] else "",
        )
    console.print(table)


def execution_detail(console: Console, doc: dict[str, Any]) -> None:
    console.print(Text.assemble(("execution ", "bold"), doc["id"]))
    console.print(Text.assemble("status:   ", _status(doc["runtimeStatus"])))
    console.print(f"workflow: {doc['workflowName']} v{doc['workflowVersion']}", markup=False)
    console.print(f"started:  {doc.get('startedAt') or '-'}   duration: {_duration(doc) or '-'}")
    for label, key in (
        ("parent:   ", "parentWorkflowExecutionId"),
        ("rerun of: ", "rerunOf"),
        ("job run:  ", "jobRunId"),
    ):
        if doc.get(key):
            console.print(f"{label}{doc[key]}", markup=False)
    if doc.get("error"):
        console.print(Text(f"error:    {_error_text(doc['error'])}", style="red"), soft_wrap=True)
    table = Table(header_style="bold", box=None)
    for column in ("step", "loop", "type", "status", "attempt", "started", "output / error"):
        table.add_column(column)
    for step in (doc.get("steps") or {}).values():
        loop = ",".join(f"{k}[{v}]" for k, v in step["loop"].items())
        detail = (
            step["error"]["message"] if step.get("error") else _short_json(step["outputData"], 80)
        )
        table.add_row(
            step["stepId"],
            loop,
            step["type"],
            _status(step["status"]),
            str(step["attempt"]),
            (step.get("startedAt") or "")[11:23],
            Text(detail, style="red" if step.get("error") else ""),
        )
    console.print(table)
    if doc.get("variables"):
        console.print(f"variables: {_short_json(doc['variables'])}", markup=False)
    if doc.get("pendingInputs"):
        pending_inputs(console, [{**p, "executionId": doc["id"]} for p in doc["pendingInputs"]])
    if doc.get("output") is not None:
        console.print(f"output: {_short_json(doc['output'])}", markup=False, soft_wrap=True)


def pending_inputs(console: Console, waiting: list[dict[str, Any]]) -> None:
    """What a person must answer, and the command that answers it."""
    for item in waiting:
        console.print(
            Text.assemble(
                ("waiting for input: ", "bold magenta"),
                f"step {item['stepId']} of execution {item['executionId']}",
                f" (assignee {item['assignee']})" if item.get("assignee") else "",
                f", due {item['dueAt']}" if item.get("dueAt") else "",
            ),
            soft_wrap=True,
        )
        console.print(f"  {item.get('prompt') or ''}", markup=False, soft_wrap=True)
        if item.get("schema") is not None:
            console.print(f"  schema: {_short_json(item['schema'])}", markup=False, soft_wrap=True)
        command = (
            f"flowledger executions input {item['executionId']} {item['stepId']} "
            f"--data '{_example(item.get('schema'))}'"
        )
        console.print(f"  submit: {command}", markup=False, soft_wrap=True)


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
