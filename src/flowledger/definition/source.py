"""Safe loading of YAML/JSON definitions, with the position of every value.

PyYAML's loaders build the whole object graph first, so a 342-byte alias bomb or a
100,000-deep list does its damage before validation runs. Here the parser is driven
event by event and plain JSON values are built directly, within depth and node limits.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from flowledger.errors import DefinitionError, Path, Problem

__all__ = ["Path", "SourceDocument", "SourceLimits", "parse_document", "read_document"]

Position = tuple[int, int]

_MAX_PROBLEMS = 50
_TAG = "tag:yaml.org,2002:"
# libyaml is much faster; both parsers report the same marks (columns in characters).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_PAIR = re.compile(r"\\(?:u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|.)", re.I | re.DOTALL)
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
# Single letters y/n stay text: PyYAML reads them so, and refusing `{x: 1, y: 2}` helps nobody.
_YAML11_BOOLS = frozenset({"yes", "no", "on", "off"})
#: Spellings of numbers JSON lacks, lowercased: YAML's (``.inf``, ``.nan``), which it
#: reads as numbers, and JavaScript's and Python's (``NaN``, ``-Infinity``), which it
#: reads as text, so a JSON definition's ``NaN`` would silently become the string "NaN".
_NON_FINITE = frozenset(
    sign + word for sign in ("", "+", "-") for word in ("nan", "inf", "infinity", ".nan", ".inf")
)
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")  # octal in YAML 1.1, decimal in 1.2
_YAML12_INT = re.compile(r"0o[0-7]+|0x[0-9a-fA-F]+")  # the YAML 1.1 resolver misses these
_SURROGATE = re.compile("[\ud800-\udfff]")
_RESOLVER = yaml.resolver.Resolver()
_KINDS = {bool: "a boolean", int: "a number", float: "a number", type(None): "null"}
_EMPTY = "the file is empty; write a YAML or JSON document"


@dataclass(frozen=True)
class SourceLimits:
    """Bounds that keep a hostile document from costing much more than a small one."""

    max_bytes: int = 4 * 1_048_576  # a generated 20,000-step workflow with a join fits
    max_depth: int = 64
    max_nodes: int = 400_000


class _Loc:
    """Positions of one node; ``kids`` by mapping key or list index (None for scalars)."""

    __slots__ = ("at", "key_at", "kids")

    def __init__(self, at: Position, kids: dict[str | int, _Loc] | None = None) -> None:
        self.at, self.kids = at, kids
        self.key_at: Position | None = None


class _PositionView(Mapping[Path, Position]):
    """``path -> (line, column)`` over a tree: a flat dict would keep one long path per value."""

    def __init__(self, root: _Loc, *, keys: bool) -> None:
        self._root, self._keys = root, keys

    def _pick(self, loc: _Loc) -> Position | None:
        return loc.key_at if self._keys else loc.at

    def __getitem__(self, path: Path) -> Position:
        loc: _Loc | None = self._root
        for segment in path:
            loc = loc.kids.get(segment) if loc is not None and loc.kids else None
        found = None if loc is None else self._pick(loc)
        if found is None:
            raise KeyError(path)
        return found

    def __iter__(self) -> Iterator[Path]:
        stack: list[tuple[Path, _Loc]] = [((), self._root)]
        while stack:
            path, loc = stack.pop()
            if self._pick(loc) is not None:
                yield path
            kids = reversed(loc.kids.items()) if loc.kids else ()
            stack.extend(((*path, segment), kid) for segment, kid in kids)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class SourceDocument:
    """A parsed document: plain JSON data plus where each value came from."""

    data: Any
    file: str
    positions: Mapping[Path, Position] = field(default_factory=dict)
    key_positions: Mapping[Path, Position] = field(default_factory=dict)
    #: The text as written (comments, order), which stored versions keep to show.
    text: str | None = None

    def position(self, path: Path, *, key: bool = False) -> Position | None:
        """1-based (line, column) of ``path`` or its nearest ancestor; ``key`` prefers the key."""
        for n in range(len(path), -1, -1):
            prefix = path[:n]
            if key and prefix in self.key_positions:
                return self.key_positions[prefix]
            if prefix in self.positions:
                return self.positions[prefix]
        return None


def read_document(
    path: str | os.PathLike[str], limits: SourceLimits | None = None
) -> SourceDocument:
    """Read and parse a definition file, never reading more than the size limit."""
    limits = limits or SourceLimits()
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read(limits.max_bytes + 1)  # the file may be huge, or endless
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise DefinitionError([Problem(f"cannot read the file: {reason}", file=name)]) from None
    if len(raw) > limits.max_bytes:
        raise _too_big(name, size or None, limits)  # st_size is 0 for pipes and /proc files
    if name.lower().endswith(".json"):
        _check_json(raw, name)
    return parse_document(raw, name, limits)


def _check_json(raw: bytes, file: str) -> None:
    """A ``.json`` file must be JSON, not merely YAML (which also reads trailing commas,
    comments and bare words): its syntax errors are reported the JSON way. Its values
    are then read like any document's, with their positions."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return  # the parser reports where the bytes are not UTF-8
    try:
        json.loads(text, parse_constant=lambda word: word)  # NaN etc.: refused, located, later
    except json.JSONDecodeError as exc:
        problem = Problem(f"invalid JSON: {exc.msg}", file, exc.lineno, exc.colno)
        raise DefinitionError([problem]) from None
    except RecursionError:
        return  # the parser refuses the depth, located


def parse_document(
    text: str | bytes, file: str = "<string>", limits: SourceLimits | None = None
) -> SourceDocument:
    """Parse one YAML or JSON document into plain JSON values with positions."""
    limits = limits or SourceLimits()
    if len(text) > limits.max_bytes:  # a str has at least len() bytes: no need to encode
        raise _too_big(file, len(text) if isinstance(text, bytes) else None, limits)
    # Lone surrogates in a str become invalid UTF-8 here, which the parser reports.
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if len(raw) > limits.max_bytes:
        raise _too_big(file, len(raw), limits)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DefinitionError([Problem("the file is UTF-16; save it as UTF-8", file, 1, 1)])
    return _compose(raw, file, limits, _LOADER)


def _compose(raw: bytes, file: str, limits: SourceLimits, loader: Any) -> SourceDocument:
    composer = _Composer(loader(raw), file, limits)
    try:
        data, root = composer.run()
    except yaml.YAMLError as exc:
        # libyaml refuses the surrogate pairs JSON encoders write for emoji ("\ud83d\ude00").
        if "Unicode character escape" in str(exc) and (lone := _LONE_HALF.search(raw)):
            message = (
                f"the escape \\u{(lone[1] or lone[2]).decode()} is half of a UTF-16 surrogate "
                "pair, without its other half; give both (\\ud83d\\ude00), or the character"
            )
            at = _byte_position(raw, lone.start())
            raise DefinitionError([Problem(message, file, *at)]) from None
        if "Unicode character escape" in str(exc) and (joined := _join_pairs(raw)) != raw:
            return parse_document(joined, file, limits)
        # libyaml >= 0.2.6 (PyYAML 6.0.4) stops at 1,000 levels while it scans ahead, before
        # our composer sees the events: the pure-Python parser has no such limit, so the
        # composer's own located message (and the path to it) holds on every release.
        if "maximum nesting depth" in str(exc) and loader is not yaml.SafeLoader:
            return _compose(raw, file, limits, yaml.SafeLoader)
        raise DefinitionError([*composer.problems, _yaml_problem(exc, file, raw)]) from None
    # The parser took it, so it is UTF-8 ("replace" only guards that belief).
    text = raw.decode("utf-8-sig", errors="replace")
    return SourceDocument(
        data, file, _PositionView(root, keys=False), _PositionView(root, keys=True), text
    )


#: A ``\\u`` escape of a high surrogate not followed by a low one, or a low one alone.
_LONE_HALF = re.compile(
    rb"\\u(d[89ab][0-9a-f]{2})(?!\\ud[c-f][0-9a-f]{2})|(?<!\\ud[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})",
    re.IGNORECASE,
)


def _join_pairs(raw: bytes) -> bytes:
    """Rewrite JSON's ``\\ud83d\\ude00`` as ``\\U0001f600``; pad after the string to keep columns.

    Only for valid JSON, where every ``"`` outside a string starts one.
    """
    try:
        json.loads(text := raw.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return raw

    def string(match: re.Match[str]) -> str:
        joined = _PAIR.sub(_astral, match[0])
        return joined + " " * (len(match[0]) - len(joined))

    return _JSON_STRING.sub(string, text).encode()


def _astral(match: re.Match[str]) -> str:
    if match[1] is None:
        return match[0]  # another escape, such as \\ (which must not start a pair)
    high, low = int(match[1], 16), int(match[2], 16)
    return f"\\U{0x10000 + (high - 0xD800) * 0x400 + low - 0xDC00:08x}"


def _byte_position(raw: bytes, offset: int) -> Position:
    start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, len(raw[start:offset].decode(errors="replace")) + 1


def _too_big(file: str, size: int | None, limits: SourceLimits) -> DefinitionError:
    actual = f" ({size:,} bytes)" if size is not None else ""
    message = f"the document is too large{actual}; the limit is {limits.max_bytes:,} bytes"
    return DefinitionError([Problem(message + ", so split it into several files", file, 1, 1)])


def _yaml_problem(exc: yaml.YAMLError, file: str, raw: bytes) -> Problem:
    """A parser exception as a located sentence, never a traceback."""
    if isinstance(exc, yaml.reader.ReaderError):  # libyaml reports a byte offset
        where = _byte_position(raw, exc.position)
        if "control" in exc.reason or "special" in exc.reason:
            message = f"the file contains the control character #x{exc.character:04x}, which "
            message += "YAML forbids; remove it, or escape it inside double quotes"
        else:
            message = f"the file is not valid UTF-8 ({exc.reason}); save it as UTF-8"
        return Problem(message, file, *where)
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem(f"invalid YAML: {exc}", file)
    message = f"invalid YAML: {exc.problem or 'syntax error'}"
    if exc.context:
        started = f" that starts on line {exc.context_mark.line + 1}" if exc.context_mark else ""
        message += f" ({exc.context}{started})"
    hint = "check the quoting and indentation"
    hint = "indent with spaces, not tabs" if "tab" in message else hint
    if "escape" in message:
        hint = "check the \\ escapes here; write U+10000 and above as \\U0001F600, not as a pair"
    message += f"; {hint}"
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
    return Problem(message, file, line, column)


class _Refused(Exception):
    """``(kind, message)``: a scalar that is not plain JSON, or that YAML versions read apart."""


def _resolve(event: Any) -> Any:
    """A scalar event's JSON value; quoted and ``!!str`` scalars are always text."""
    text: str = event.value
    if event.tag is not None and event.tag not in ("!", _TAG + "str"):
        raise _Refused("tag", _tag_message(event.tag))
    if event.tag is not None or not event.implicit[0]:
        return _checked_text(text)
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    shown = text if len(text) <= 40 else text[:37] + "..."
    quote = f'quote it ("{shown}") if you mean text'
    if text.lower() in _YAML11_BOOLS:
        raise _Refused("a boolean", f"{shown} is a YAML 1.1 boolean; write true/false or {quote}")
    if text.lower() in _NON_FINITE:
        raise _Refused("a number", f"{shown} is not a JSON number; {quote}")
    if _DECIMAL.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # beyond CPython's limit on digits
            raise _Refused("a number", f"{shown} has too many digits; {quote}") from None
    if _FLOAT.fullmatch(text) and not _LEADING_ZERO.fullmatch(text):
        if not math.isfinite(number := float(text)):
            raise _Refused("a number", f"{shown} is too large for a number; {quote}")
        return number
    tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    if tag in (_TAG + "int", _TAG + "float") or _YAML12_INT.fullmatch(text):
        try:
            decimal = f"write {int(text.replace('_', ''), 0)}"
        except ValueError:
            decimal = "write a plain decimal number"
        message = f"{shown} is not a decimal number, and YAML versions read it differently"
        raise _Refused("a number", f"{message}; {decimal}, or {quote}")
    if tag == _TAG + "timestamp":
        raise _Refused("a date", f'{shown} is a date, which JSON lacks; quote it: "{shown}"')
    if tag == _TAG + "merge":
        raise _Refused("merge", "YAML merge keys (<<) are not supported; write the keys out")
    return _checked_text(text)


def _checked_text(text: str) -> str:
    """Join the surrogate pairs JSON escapes use (``\\ud83d\\ude00``); refuse lone halves,
    and NUL characters, which PostgreSQL stores in neither text nor JSON (app.limits)."""
    if "\x00" in text:
        message = "the string contains a NUL character (U+0000), which cannot be stored; remove it"
        raise _Refused("text", message)
    if not _SURROGATE.search(text):
        return text
    try:
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        message = "the string contains an unpaired \\u escape (a lone UTF-16 surrogate); fix it"
        raise _Refused("text", message) from None


def _tag_message(tag: str) -> str:
    shown = "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
    return f"the YAML tag {shown} is not supported; write a plain JSON value without a tag"


@dataclass(slots=True)
class _Frame:
    """An open mapping or sequence while its children are read."""

    container: Any  # the dict or list being filled
    loc: _Loc
    kids: dict[str | int, _Loc]  # loc.kids, typed as present
    path: Path
    is_map: bool
    key: str = ""  # the pending key (its raw text when it was refused)
    key_at: Position | None = None
    drop_value: bool = False  # the pending key was refused: read its value, keep nothing
    expecting_key: bool = False
    first_line: dict[str, int] = field(default_factory=dict)

    def child(self) -> Path:
        """The path of the value read next (of the mapping itself while a key is awaited)."""
        if self.is_map:
            return self.path if self.expecting_key else (*self.path, self.key)
        return (*self.path, len(self.container))


class _Composer:
    """Builds JSON values from parser events without recursion, within the limits."""

    def __init__(self, parser: Any, file: str, limits: SourceLimits) -> None:
        self.parser, self.file, self.limits = parser, file, limits
        self.problems: list[Problem] = []

    def problem(self, message: str, at: Position, path: Path, *, fatal: bool = False) -> None:
        self.problems.append(Problem(message, self.file, at[0], at[1], path=path))
        if fatal or len(self.problems) >= _MAX_PROBLEMS:
            raise DefinitionError(self.problems)

    def run(self) -> tuple[Any, _Loc]:
        parser = self.parser
        try:
            parser.get_event()  # StreamStart
            empty = parser.check_event(yaml.StreamEndEvent)
            if not empty:
                parser.get_event()  # DocumentStart
                top = parser.peek_event()  # a lone "---" is an empty plain scalar
                empty = isinstance(top, yaml.ScalarEvent) and top.implicit[0] and not top.value
            if empty:
                self.problem(_EMPTY, (1, 1), (), fatal=True)
            root = self._compose()
            parser.get_event()  # DocumentEnd
            if not parser.check_event(yaml.StreamEndEvent):
                mark = parser.peek_event().start_mark
                message = "the file holds more than one YAML document (a second '---'); keep one"
                self.problem(message, (mark.line + 1, mark.column + 1), (), fatal=True)
        finally:
            parser.dispose()
        if self.problems:
            raise DefinitionError(self.problems)
        return root

    def _compose(self) -> tuple[Any, _Loc]:
        get_event, max_nodes = self.parser.get_event, self.limits.max_nodes
        starts = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
        stack: list[_Frame] = []
        nodes = 0
        while True:
            event = get_event()
            if isinstance(event, yaml.CollectionEndEvent):
                done = stack.pop()
                if not stack:
                    return done.container, done.loc
                continue
            mark = event.start_mark
            at = (mark.line + 1, mark.column + 1)
            parent = stack[-1] if stack else None
            nodes += 1
            if nodes > max_nodes or isinstance(event, yaml.AliasEvent) or event.anchor:
                if isinstance(event, yaml.AliasEvent):  # refusing aliases defuses alias bombs
                    message = f"YAML aliases (*{event.anchor}) are not supported; repeat the value"
                elif event.anchor:
                    message = f"YAML anchors (&{event.anchor}) are not supported; repeat the value"
                else:
                    message = f"the document has more than {max_nodes:,} values; split it up"
                self.problem(message, at, parent.child() if parent else (), fatal=True)
            if parent is not None and parent.expecting_key:
                self._key(parent, event, at)
                if isinstance(event, starts):  # read a refused complex key, then drop it
                    stack.append(self._open(event, at, (*parent.path, "?"), len(stack)))
                continue
            path = parent.child() if parent else ()
            if isinstance(event, starts):
                stack.append(frame := self._open(event, at, path, len(stack)))
                value, loc = frame.container, frame.loc
            else:
                try:
                    value = _resolve(event)
                except _Refused as refused:
                    value = None
                    self.problem(refused.args[1], at, path)
                loc = _Loc(at)
            if parent is None:
                if not stack:
                    return value, loc
            elif parent.is_map:
                parent.expecting_key = True
                if not parent.drop_value:
                    parent.container[parent.key] = value
                    parent.kids[parent.key] = loc
                    loc.key_at = parent.key_at
            else:
                parent.kids[len(parent.container)] = loc
                parent.container.append(value)

    def _open(self, event: Any, at: Position, path: Path, depth: int) -> _Frame:
        if depth >= self.limits.max_depth:
            message = f"the document nests deeper than {self.limits.max_depth} levels; flatten it"
            self.problem(message, at, path, fatal=True)
        is_map = isinstance(event, yaml.MappingStartEvent)
        if event.tag is not None and event.tag != _TAG + ("map" if is_map else "seq"):
            self.problem(_tag_message(event.tag), at, path)
        kids: dict[str | int, _Loc] = {}
        return _Frame(
            {} if is_map else [], _Loc(at, kids), kids, path, is_map, expecting_key=is_map
        )

    def _key(self, frame: _Frame, event: Any, at: Position) -> None:
        frame.expecting_key, frame.drop_value, frame.key = False, True, "?"
        if not isinstance(event, yaml.ScalarEvent):
            kind = "mapping" if isinstance(event, yaml.MappingStartEvent) else "list"
            message = f"mapping keys must be strings, but this key is a {kind}; use a string key"
            self.problem(message, at, frame.path)
            return
        frame.key = text = event.value
        try:
            # A key is text in JSON; a bare ``nan``/``inf`` is text to YAML too (only
            # ``.nan`` and ``.inf`` are numbers), refused as values only for JSON's sake.
            bare_word = text.lower() in _NON_FINITE and "." not in text
            key = _checked_text(text) if bare_word else _resolve(event)
            kind = _KINDS.get(type(key), "text")
        except _Refused as refused:
            key, (kind, message) = None, refused.args
            if kind in ("tag", "text", "merge"):
                self.problem(message, at, frame.child())
                return
        if not isinstance(key, str):
            fix = (
                f'YAML reads {text} as {kind}; quote it: "{text}"' if text else "this one is empty"
            )
            message = f"mapping keys must be strings, and {fix}"
            self.problem(message, at, frame.child())
        elif key in frame.first_line:
            first = frame.first_line[key]
            message = f"duplicate key {key!r} (first defined on line {first}); keep only one"
            self.problem(message, at, (*frame.path, key))
        else:
            frame.key, frame.key_at, frame.drop_value = key, at, False
            frame.first_line[key] = at[0]
