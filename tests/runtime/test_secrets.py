"""Secrets: confined to the fields that send them, stored as their reference, and redacted
in every spelling by every process that writes for the execution.

The matrix: a value with non-ASCII characters and a JSON-special quote, sent in a URL
(raw and URL-encoded), a header, a query and a body, echoed back raw, URL-encoded and
base64 (standard and URL-safe) by a real server, saved as an artifact; run in one
engine, and resumed by another engine (a fresh process's view: nothing rendered yet).
The value must be absent from every document and event and from every byte under the
database's folder (SQLite file, WAL, artifacts).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, step_type
from flowledger.codec import Codec, UnstorableError, placeholder, spellings
from flowledger.config import ConfigError
from flowledger.definition.strictness import stored_definitions
from flowledger.errors import DefinitionError
from tests.runtime.support import yaml
from tests.steps.http_server import serve

SECRET = 'pässwörd"1234'
HEADER_SECRET = "hdr-Value-98765"


@pytest.fixture
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture(autouse=True)
def _opened(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWLEDGER_SECRET_TOKEN", SECRET)
    monkeypatch.setenv("FLOWLEDGER_SECRET_HDR", HEADER_SECRET)


def _sending(base: str) -> str:
    return f"""
      - id: call
        type: sys.http_request
        input:
          method: POST
          url: "{base}/echo?k={{{{ secrets.TOKEN }}}}&u={{{{ secrets.TOKEN|urlencode }}}}"
          headers: {{authorization: "Bearer {{{{ secrets.HDR }}}}"}}
          body: "{{{{ secrets.TOKEN }}}}"
      - id: queried
        type: sys.http_request
        input: {{url: "{base}/echo", query: {{q: "{{{{ secrets.TOKEN }}}}"}}}}
      - id: spelled
        type: sys.http_request
        input: {{method: POST, url: "{base}/encode", body: "{{{{ secrets.TOKEN }}}}"}}
      - id: saved
        type: sys.http_request
        input:
          method: POST
          url: "{base}/encode"
          body: "{{{{ secrets.TOKEN }}}}"
          save_as: artifact
          artifact_name: echo.json
    """


def _leaks(tmp_path: Path, *texts: str) -> list[str]:
    """Where any spelling of a secret value still is: texts, then files under tmp_path."""
    needles = {s for value in (SECRET, HEADER_SECRET) for s in spellings(value)}
    found = [f"text #{i}" for i, text in enumerate(texts) if any(n in text for n in needles)]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(n.encode() in data for n in needles):
                found.append(str(path))
    return found


async def _everything(engine: Engine, execution_id: str) -> str:
    doc = await engine.get_execution(execution_id)
    events = await engine.events(execution_id)
    listed = await engine.list_executions()
    return json.dumps([doc, events, listed], ensure_ascii=False)


async def test_sent_secrets_are_stored_as_references_and_echoes_redacted(
    engine: Engine, base_url: str, tmp_path: Path
) -> None:
    workflow = engine.load_text(yaml(f"name: send\nsteps:{_sending(base_url)}"))
    assert workflow.secret_names == {"TOKEN", "HDR"}
    doc = await engine.run(workflow)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    steps = {s["stepId"]: s for s in doc["steps"].values()}
    sent = steps["call"]["inputData"]
    assert sent["headers"]["authorization"] == f"Bearer {placeholder('HDR')}"
    assert sent["body"] == steps["queried"]["inputData"]["query"]["q"] == placeholder("TOKEN")
    assert steps["queried"]["outputData"]["body"]["query"]["q"] == placeholder("TOKEN")
    echo = steps["call"]["outputData"]["body"]
    assert echo["body"] == echo["query"]["k"] == echo["query"]["u"] == placeholder("TOKEN")
    spelled = steps["spelled"]["outputData"]["body"]
    assert set(spelled.values()) == {placeholder("TOKEN")}, spelled
    assert _leaks(tmp_path, await _everything(engine, doc["id"])) == []


async def test_a_resuming_engine_redacts_before_it_renders_anything(
    db_url: str, registry: StepRegistry, base_url: str, tmp_path: Path
) -> None:
    text = yaml(
        f"""
        name: resumed
        steps:
          - {{id: wait, type: sys.wait_for_input, input: {{prompt: go?}}}}
          - id: echo
            type: sys.http_request
            input: {{method: POST, url: "{base_url}/encode", body: "{{{{ secrets.TOKEN }}}}"}}
        """
    )
    async with Engine(db_url, registry=registry) as first:
        doc = await first.run(first.load_text(text))
        assert doc["runtimeStatus"] == "AwaitingUserInput"
    async with Engine(db_url, registry=registry) as second:
        await second.submit_input(doc["id"], "wait", {"ok": True})
        done = await second.settle(doc["id"])
        assert done["runtimeStatus"] == "Completed", done["error"]
        assert _leaks(tmp_path, await _everything(second, doc["id"])) == []


async def test_a_child_workflow_redacts_its_own_secrets(
    engine: Engine, base_url: str, tmp_path: Path
) -> None:
    child = engine.load_text(yaml(f"name: child\nsteps:{_sending(base_url)}"))
    await engine.push(child)  # a step starts a pushed workflow by name
    parent = engine.load_text(
        yaml(
            "name: parent\nsteps:\n  - {id: sub, type: sys.sub_workflow, input: {workflow: child}}"
        )
    )
    doc = await engine.run(parent)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    texts = [await _everything(engine, doc["id"])]
    for listed in await engine.list_executions():
        texts.append(await _everything(engine, listed["id"]))
    assert _leaks(tmp_path, *texts) == []


@pytest.mark.parametrize(
    ("where", "steps"),
    [
        ("steps[0].input.value", "- {id: a, type: sys.transform, input: {value: 'x{{ secrets.TOKEN }}'}}"),
        ("steps[0].input.value", "- {id: a, type: sys.set_variable, input: {name: v, value: '{{ secrets.TOKEN|upper }}'}}"),
        ("steps[0].when", "- {id: a, type: sys.transform, when: '{{ secrets.TOKEN == 1 }}', input: {value: 1}}"),
        ("steps[0].input.items", "- {id: a, type: sys.loop, input: {items: '{{ [secrets.TOKEN] }}'}, steps: [{id: b, type: sys.transform, input: {value: 1}}]}"),
        ("steps[0].input.inputs.k", "- {id: a, type: sys.sub_workflow, input: {workflow: other, inputs: {k: '{{ secrets.TOKEN }}'}}}"),
        ("steps[0].input.artifact_name", "- {id: a, type: sys.http_request, input: {url: 'http://x', save_as: artifact, artifact_name: '{{ secrets.TOKEN }}'}}"),
        ("steps[0].input.data.k", "- {id: a, type: sys.entity_create, input: {entity_type: t, data: {k: '{{ secrets.TOKEN }}'}}}"),
        ("steps[0].input.prompt", "- {id: a, type: sys.wait_for_input, input: {prompt: '{{ secrets.TOKEN }}'}}"),
    ],
)  # fmt: skip
def test_a_secret_anywhere_but_a_sending_field_is_refused(
    engine: Engine, where: str, steps: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        engine.load_text(yaml(f"name: leak\nsteps:\n  {steps}\n"))
    assert f"secrets.TOKEN cannot be used in {where}" in str(caught.value)


@pytest.mark.parametrize("part", ["secrets.TOKEN[6:]", "secrets.TOKEN[0]", "secrets.TOKEN.x"])
def test_a_secret_is_sent_whole_or_not_at_all(engine: Engine, part: str) -> None:
    """A slice sent to a server that echoes it came back into the stored output in clear
    (18 of 24 characters): the redaction knows the whole value, not its parts."""
    text = f"""
        name: sliced
        steps:
          - {{id: a, type: sys.http_request, input: {{url: "http://x", json: {{t: "{{{{ {part} }}}}"}}}}}}
    """
    with pytest.raises(DefinitionError, match=r"secrets\.TOKEN must be sent whole"):
        engine.load_text(yaml(text))
    whole = text.replace(part, "secrets.TOKEN | upper")
    assert engine.load_text(yaml(whole)).secret_names == {"TOKEN"}
    with stored_definitions():  # a version pushed before this rule still loads
        engine.load_text(yaml(text))


def test_the_output_and_dynamic_names_are_refused(engine: Engine) -> None:
    text = """
        name: leak
        steps:
          - {id: a, type: sys.http_request, input: {url: "http://x/{{ secrets['TO' ~ 'KEN'] }}"}}
        output: "{{ secrets.TOKEN }}"
    """
    with pytest.raises(DefinitionError) as caught:
        engine.load_text(yaml(text))
    message = str(caught.value)
    assert "secrets.TOKEN cannot be used in output" in message
    assert "secrets must be read by a constant name" in message


async def test_only_opened_names_are_readable(
    engine: Engine, base_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLAIN_TOKEN", "plain-env-value")
    text = yaml(
        f"""
        name: opened
        steps:
          - {{id: a, type: sys.http_request, input: {{url: "{base_url}/echo?t={{{{ secrets.PLAIN_TOKEN }}}}"}}}}
        """
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    # It says how to open it, not only that it is missing (SPEC says "from the environment").
    assert (
        "secrets.PLAIN_TOKEN does not exist: PLAIN_TOKEN is set in the environment but not "
        "opened as a secret; set FLOWLEDGER_SECRET_PLAIN_TOKEN, or list PLAIN_TOKEN in "
        "FLOWLEDGER_SECRETS"
    ) in doc["error"]["message"]
    assert "plain-env-value" not in json.dumps(doc)
    monkeypatch.setenv("FLOWLEDGER_SECRETS", "OTHER, PLAIN_TOKEN")
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed"
    monkeypatch.delenv("FLOWLEDGER_SECRETS")
    file = tmp_path / "secrets.env"
    file.write_text("# operator's file\nPLAIN_TOKEN = from-the-file-123\n", encoding="utf-8")
    monkeypatch.setenv("FLOWLEDGER_SECRETS_FILE", str(file))
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed"
    assert "from-the-file-123" not in json.dumps(doc)


async def test_a_run_that_cannot_read_the_secrets_file_stores_nothing(
    engine: Engine, base_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``run`` refuses before starting: the execution it left queued was once run by
    another worker, whose own failure ("no secret 'TOKEN' is opened") was stored instead
    of the real cause. A plain start still queues it, for a worker that can read it."""
    monkeypatch.delenv("FLOWLEDGER_SECRET_TOKEN")
    monkeypatch.setenv("FLOWLEDGER_SECRETS_FILE", str(tmp_path / "missing.env"))
    text = yaml(
        f"""
        name: unreadable
        steps:
          - {{id: a, type: sys.http_request, input: {{url: "{base_url}/echo?t={{{{ secrets.TOKEN }}}}"}}}}
        """
    )
    workflow = engine.load_text(text)
    with pytest.raises(ConfigError, match=r"FLOWLEDGER_SECRETS_FILE: cannot read .*missing\.env"):
        await engine.run(workflow)
    assert await engine.list_executions() == []
    queued = await engine.start(workflow)
    assert [doc["id"] for doc in await engine.list_executions()] == [queued]


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_base64_is_found_at_every_alignment(offset: int) -> None:
    import base64

    codec = Codec({"K": SECRET})
    raw = b"ab"[:offset] + SECRET.encode() + b"tail"
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode()
        assert placeholder("K") in codec.redact(text)
    assert SECRET.encode() not in codec.redact_bytes(raw)


def test_every_spelling_is_redacted() -> None:
    codec = Codec({"K": SECRET})
    value: Any = {"a": SECRET, "b": f"x{SECRET}y", "c": [SECRET.upper()]}
    stored = codec.dumps(value)
    assert stored is not None
    assert all(text not in stored for text in spellings(SECRET))
    for text in spellings(SECRET):
        assert placeholder("K") in codec.redact(f"<{text}>")


def test_a_secret_in_a_url_path_is_redacted_as_httpx_spells_it() -> None:
    """A path keeps ``+&=;`` and escapes a space: a server echoing the path gave back
    a spelling of the secret the redaction did not know."""
    import httpx

    value = "abc def+ghi/jkl&x=1;Zq"
    echoed = httpx.URL(f"http://h/echo/{value}").raw_path.decode()
    assert Codec({"K": value}).redact(echoed) == f"/echo/{placeholder('K')}"


class SendInput(BaseModel):
    token: str
    note: str = ""


class SendOutput(BaseModel):
    length: int


@step_type("test.send", secret_fields=["token"])
async def send(data: SendInput, ctx: StepContext) -> SendOutput:
    if data.note == "log":
        ctx.logger.warning("sending to /x/%s", data.token)
    if data.note == "raise":
        raise UnicodeEncodeError("ascii", f"Bearer {data.token}", 7, 8, "not ASCII")
    return SendOutput(length=len(data.token))


async def test_a_step_s_log_line_reaches_the_process_log_redacted(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``ctx.logger`` lines were redacted in the stored copy only; the process's own log
    (stderr, a log shipper) printed the secret."""
    registry = StepRegistry.with_builtins()
    registry.register(send)
    caplog.set_level(logging.INFO)
    async with Engine(db_url, registry=registry) as engine:
        text = (
            "name: logs\nsteps:\n"
            "  - {id: s, type: test.send, input: {token: '{{ secrets.TOKEN }}', note: log}}\n"
        )
        doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed"
    [line] = [r.getMessage() for r in caplog.records if "sending to" in r.getMessage()]
    assert line == f"sending to /x/{placeholder('TOKEN')}"
    assert all(SECRET not in r.getMessage() for r in caplog.records)


async def test_an_exception_that_quotes_a_secret_is_logged_redacted(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The runner logged ``step s raised UnicodeEncodeError('ascii', 'Bearer <secret>'…``
    at the default level."""
    registry = StepRegistry.with_builtins()
    registry.register(send)
    caplog.set_level(logging.WARNING)
    async with Engine(db_url, registry=registry) as engine:
        text = (
            "name: raises\nsteps:\n"
            "  - {id: s, type: test.send, input: {token: '{{ secrets.TOKEN }}', note: raise}}\n"
        )
        doc = await engine.run(engine.load_text(text))
        kept = await engine.store.get_step_logs(doc["id"])
    assert doc["runtimeStatus"] == "Failed"
    # The process's log has one line; the traceback, with the exception's arguments, is
    # kept in the step's log (tour 25): redacted in both.
    [line] = [r.getMessage() for r in caplog.records if "raised" in r.getMessage()]
    assert "UnicodeEncodeError" in line
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    traceback = "".join(json.loads(row["message"]) for row in kept)
    assert "UnicodeEncodeError('ascii'" in traceback and placeholder("TOKEN") in traceback
    assert SECRET not in traceback
    assert SECRET not in json.dumps(doc)


async def test_a_custom_type_declares_the_fields_that_may_hold_secrets(db_url: str) -> None:
    registry = StepRegistry.with_builtins()
    registry.register(send)
    async with Engine(db_url, registry=registry) as engine:
        text = "name: custom\nsteps:\n  - {id: s, type: test.send, input: {token: '{{ secrets.TOKEN }}'}}\n"
        doc = await engine.run(engine.load_text(text))
        [step] = doc["steps"].values()
        assert step["inputData"] == {"token": placeholder("TOKEN")}
        assert step["outputData"] == {"length": len(SECRET)}  # the handler had the value
        with pytest.raises(DefinitionError, match=r"secrets.TOKEN cannot be used in steps\[0\]"):
            engine.load_text(
                text.replace(
                    "{token: '{{ secrets.TOKEN }}'}", "{token: x, note: '{{ secrets.TOKEN }}'}"
                )
            )


def test_a_short_secret_never_breaks_the_stored_json() -> None:
    codec = Codec({"PIN": "1234"})
    stored = codec.dumps({"status": 212345, "text": "pin 1234", "list": [1234, "x"]})
    assert stored is not None
    assert json.loads(stored) == {
        "status": placeholder("PIN").join(["2", "5"]),
        "text": f"pin {placeholder('PIN')}",
        "list": [placeholder("PIN"), "x"],
    }
    comma = Codec({"C": ","})
    assert json.loads(comma.dumps({"a": "x,y", "b": 1}) or "") == {"a": "x***secrets.C***y", "b": 1}


def test_stored_json_is_strict_json_and_nan_is_refused_not_stored_as_null() -> None:
    """NaN and infinities were stored as null while the engine went on holding them: a
    run resumed from the database read other data than one that was not interrupted."""
    with pytest.raises(UnstorableError, match=r"^b\[0\] is inf, which JSON cannot hold$"):
        Codec().dumps({"a": 1, "b": [float("inf"), 1.5]})
    with pytest.raises(UnstorableError, match=r"^the value is nan, which JSON cannot hold$"):
        Codec().dumps(float("nan"))


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("secrets.TOKEN | reverse | join('')", "| reverse"),
        ("secrets.TOKEN | length", "| length"),
        ("secrets.TOKEN == 'abc'", "a comparison"),
        ("secrets.TOKEN.replace('a', 'b')", ".replace()"),
    ],
)
def test_a_value_computed_from_a_secret_is_not_sent(
    engine: Engine, expression: str, said: str
) -> None:
    """``| reverse | join`` passed, and an echoing server had the reversed secret stored
    in clear: the redaction knows the value's spellings, not what is computed from it."""
    text = f"""
        name: computed
        steps:
          - {{id: a, type: sys.http_request, input: {{url: "http://x", json: {{t: "{{{{ {expression} }}}}"}}}}}}
    """
    with pytest.raises(DefinitionError, match=f"not {re.escape(said)}: a value computed"):
        engine.load_text(yaml(text))
    for kept in ("secrets.TOKEN | upper", "'Bearer ' ~ secrets.TOKEN", "secrets.TOKEN.lower()"):
        engine.load_text(yaml(text.replace(expression, kept)))


async def test_a_stream_is_redacted_wherever_its_chunks_split_a_secret() -> None:
    """A download saved as it arrives: a value cut between two chunks is found whole,
    and so is a long run of its characters (which must not be cut into a redacted run
    and a tail stored in clear)."""
    codec = Codec({"K": SECRET, "T": TOKEN})
    data = (
        b"head " + SECRET.encode() + b" middle " + SECRET.encode() + b" hex "
        + TOKEN.encode().hex().encode() + b" part " + TOKEN[:13].encode() + b" "
        + TOKEN[3:-2].encode() + TOKEN[1:13].encode() + b" end"
    )  # fmt: skip

    async def chunks(cuts: list[int]) -> AsyncIterator[bytes]:
        for start, stop in zip([0, *cuts], [*cuts, len(data)], strict=True):
            yield data[start:stop]

    expected = codec.redact_bytes(data)
    assert SECRET.encode() not in expected
    assert expected.count(placeholder("T").encode()) == 3
    assert all(TOKEN[i : i + 12].encode() not in expected for i in range(len(TOKEN) - 11))
    for cut in range(1, len(data)):
        for size in (1, 3, 8, len(SECRET)):  # one cut, then pieces of that size after it
            cuts = [cut, *range(cut + size, len(data), size)]
            assert b"".join([c async for c in codec.redact_chunks(chunks(cuts))]) == expected


TOKEN = "Kq8vZr2mXw9pLt4nBc7dYh3f"  # a generated API key's 24 characters


@pytest.mark.parametrize(
    "stored",
    [
        f"Authorization: Bearer {TOKEN}"[:35],  # a server echoing the first 20 characters
        f"bad token {TOKEN[:-1]}",  # an error message quoting all but one
        f"suffix {TOKEN[-12:]}",
        f"middle <{TOKEN[6:19]}>",
        TOKEN.encode().hex(),
        TOKEN.encode().hex().upper(),
        f"echo {TOKEN.encode().hex()[:30]}",  # half of its hex, either case
        f"echo {TOKEN.encode().hex().upper()[6:40]}",
        f"Basic {base64.b64encode(b'user:' + TOKEN.encode()).decode()[:26]}",  # half base64
        f"id={base64.urlsafe_b64encode(TOKEN.encode()).decode()[8:]}",
        f"two {TOKEN[:12]}, {TOKEN[12:24]}.",
    ],
)
def test_a_part_of_a_secret_or_its_hex_is_redacted(stored: str) -> None:
    codec = Codec({"T": TOKEN})
    redacted = codec.redact(stored)
    assert placeholder("T") in redacted
    assert not any(TOKEN[i : i + 12] in redacted for i in range(len(TOKEN) - 11)), redacted
    for spelled in (TOKEN.encode().hex(), base64.b64encode(TOKEN.encode()).decode()):
        assert not any(spelled[i : i + 20] in redacted for i in range(len(spelled) - 19))
    document = codec.dumps({"stored": stored})
    assert document is not None and placeholder("T") in json.loads(document)["stored"]


def test_only_runs_of_half_a_secret_count_and_never_digits_alone() -> None:
    """With eight characters, a webhook URL secret redacted other URLs of its host, and a
    numeric secret turned numbers into text that a resumed execution then read."""
    hook = "https://hooks.example.com/services/T04KQ2ZR1/B05HX7L2W/Qm9vZ2llV29vZ2llQm9vZ2ll"
    number = "918273645546372819"
    codec = Codec({"T": TOKEN, "PIN": "12345678", "HOOK": hook, "N": number})
    kept = (
        f"{TOKEN[:11]} {TOKEN[11:22]} 1234567 id-123456789 "
        f"https://hooks.example.com/services/docs 9182736455463 {number[4:]}"
    )
    assert codec.redact(kept) == kept.replace("12345678", placeholder("PIN"))
    assert codec.dumps({"n": int(number[:15])}) == f'{{"n":{number[:15]}}}'
    # Each stretch is replaced as long as it is, whatever part of the secret it starts at.
    assert codec.redact(f"a{TOKEN[2:16]}{TOKEN[0:12]}b") == f"a{placeholder('T')}b"
    assert codec.redact(f"see {hook[:-3]}") == f"see {placeholder('HOOK')}"


def test_a_long_secret_s_parts_are_found_too() -> None:
    key = "".join(f"{n:04x}" for n in range(0, 6000, 7))[:3000]  # a PEM key's length
    codec = Codec({"KEY": key})
    text = f"x{key[100:1700]}y{key[1400:]}z{key[:1400]}"
    assert codec.redact(text) == f"x{placeholder('KEY')}y{placeholder('KEY')}z{key[:1400]}"
    assert codec.redact_bytes(text.encode()) == codec.redact(text).encode()
