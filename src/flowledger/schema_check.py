"""A value checked against a JSON Schema, each problem with the path of its field.

One wording for the three values people send that a schema governs: a workflow's input
(``input_schema``), the data a waiting step asks for, and an entity's payload. The
error carries every problem as ``(field path, message)``, so the HTTP API answers with
``details.problems`` a client can point at a field with, and its message says them all
in one line the CLI prints as it is.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, cast

from flowledger.errors import InvalidInputError, format_path, shown
from flowledger.types import FieldPath

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

#: The problems one error names at most (a list of 10,000 bad items is not 10,000 lines).
MAX_PROBLEMS = 20


def schema_problems(
    validator: Validator, value: Any, root: str, limit: int = MAX_PROBLEMS
) -> tuple[list[tuple[FieldPath, str]], int]:
    """The first ``limit`` problems of ``value`` in field order, each path starting at
    ``root`` (``input``, ``data``, ``payload``), and how many there are in all."""
    from referencing.exceptions import Unresolvable

    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    except Unresolvable as exc:  # a schema stored before references out of it were refused
        raise InvalidInputError(
            f"the schema's reference ({exc}) cannot be followed: only references "
            "within the schema (#/$defs/…) are"
        ) from None
    shown = [((root, *error.absolute_path), error.message) for error in errors[:limit]]
    return shown, len(errors)


def check_against_schema(
    validator: Validator, value: Any, root: str, what: str, limit: int = MAX_PROBLEMS
) -> None:
    """InvalidInputError ``"{what}: {root}.field: problem; …"`` when ``value`` breaks the
    schema; its ``problems`` hold each one's path."""
    problems, total = schema_problems(validator, value, root, limit)
    if not problems:
        return
    lines = [f"{format_path(path)}: {message}" for path, message in problems]
    if total > len(problems):
        lines.append(f"and {total - len(problems)} more")
    raise InvalidInputError(f"{what}: " + "; ".join(lines), problems=problems)


def with_defaults(schema: Any, value: Any) -> Any:
    """``value`` with the ``default`` of each property it lacks filled in, in objects
    nested through ``properties`` too (a default object gets its own); a copy where
    anything was added, never the caller's object. Composition keywords (``allOf``,
    ``$ref``) are not followed: which branch applies is only known after validation."""
    if not isinstance(schema, dict) or not isinstance(value, dict):
        return value
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return value
    filled = value
    for name, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        if name in value:
            inner = with_defaults(sub, value[name])
            if inner is not value[name]:
                filled = filled if filled is not value else dict(value)
                filled[name] = inner
        elif "default" in sub:
            filled = filled if filled is not value else dict(value)
            filled[name] = with_defaults(sub, copy.deepcopy(sub["default"]))
    return filled


def problem_lines(validator: Validator, value: Any, root: str) -> list[str]:
    """Each problem as ``root.field: message`` (what an event records)."""
    problems, _ = schema_problems(validator, value, root)
    return [f"{format_path(path)}: {message}" for path, message in problems]


def schema_problem(schema: Any) -> tuple[FieldPath, str] | None:
    """What makes ``schema`` unusable, and where (None: it is a valid Draft 2020-12
    schema); the first of :func:`schema_problems_of`."""
    found = schema_problems_of(schema, limit=1)
    return found[0] if found else None


def schema_problems_of(schema: Any, limit: int = MAX_PROBLEMS) -> list[tuple[FieldPath, str]]:
    """Each thing that makes ``schema`` unusable, and where, in document order, at most
    ``limit`` (empty: it is a valid Draft 2020-12 schema). A reference out of the schema
    (``$ref: https://…``, ``file:…``, another document) is one: following it would have
    the engine fetch a URL or read a file for whoever wrote the schema, past the egress
    guard."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    meta = Draft202012Validator(
        Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    found: list[tuple[FieldPath, str]] = []
    for error in sorted(meta.iter_errors(schema), key=lambda e: _document_order(e.path)):
        # "not valid under any of the given schemas" names no reason: its likeliest
        # branch does ("'strin' is not one of ['array', 'boolean', …]")
        said = best_match(error.context) if error.context else error
        problem = (tuple(error.absolute_path), said.message)
        if problem not in found:  # the meta-schema reaches a keyword by several ways
            found.append(problem)
        if len(found) >= limit:
            return found
    for path, reference in _references(schema):
        if not reference.startswith("#"):
            found.append(
                (
                    path,
                    f"{shown(reference)} refers out of the schema; only references within it "
                    "(#/$defs/…) are followed: fetching URLs or files is not allowed",
                )
            )
            if len(found) >= limit:
                break
    return found


def new_schema_problems(schema: Any) -> list[tuple[FieldPath, str]]:
    """What a schema written from now on may not hold, though one stored before keeps it:
    :func:`backtracking_patterns`, then :func:`dangling_references`."""
    return backtracking_patterns(schema) + dangling_references(schema)


def dangling_references(schema: Any) -> list[tuple[FieldPath, str]]:
    """Each reference within ``schema`` that names no part of it (``#/$defs/nope``), and
    where: a value reaching it fails every start or answer with a message about
    references. Only JSON pointers are followed, and only in a schema with no ``$id``
    below its root (where ``#`` would mean that part instead); an anchor (``#name``) is
    taken as it is."""
    if any(len(path) > 1 for path, _ in _keyword_values(schema, ("$id",))):
        return []  # a $id below the root: "#" there means that part
    return [
        (path, f"{shown(reference)} refers to nothing in the schema")
        for path, reference in sorted(_references(schema), key=lambda r: _document_order(r[0]))
        if reference.startswith("#") and not _points_in(schema, reference[1:])
    ]


def _points_in(schema: Any, pointer: str) -> bool:
    """Whether the JSON pointer ``pointer`` (a reference's fragment) names a part of
    ``schema``; a fragment that is no pointer (an anchor) is taken."""
    from urllib.parse import unquote

    if pointer and not pointer.startswith("/"):
        return True
    node = schema
    for token in pointer.split("/")[1:]:
        key = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return False
    return True


def backtracking_patterns(schema: Any) -> list[tuple[FieldPath, str]]:
    """Each ``pattern`` (or ``patternProperties`` key) in ``schema`` that RE2 cannot run
    (lookaround, a backreference), and where: checked by Python's ``re`` instead, one
    27-character value held a server for seconds, and ``$`` and ``\\d`` mean more there
    (a trailing newline, any script's digits). New schemas are refused such a pattern;
    one stored before keeps the fallback (``_compiled``). A pattern neither can compile
    is not one of them: the meta-schema's ``format: regex`` says it is no pattern."""
    import re2

    options = re2.Options()
    options.log_errors = False
    found: list[tuple[FieldPath, str]] = []
    for path, pattern in sorted(_patterns(schema, ()), key=lambda item: _document_order(item[0])):
        try:
            re2.compile(pattern, options)
        except re2.error:
            try:
                re.compile(pattern)
            except re.error:
                continue
            found.append(
                (
                    path,
                    f"the pattern {shown(pattern)} needs backtracking (a lookahead, lookbehind "
                    "or backreference), which one value can make run for minutes; write it "
                    "without them, or check the value in a step",
                )
            )
    return found


def _patterns(value: Any, path: FieldPath) -> Iterator[tuple[FieldPath, str]]:
    stack: list[tuple[FieldPath, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key == "pattern" and isinstance(child, str):
                    yield (*where, key), child
                elif key == "patternProperties" and isinstance(child, dict):
                    yield from (((*where, key, name), name) for name in child)
                    stack.extend(((*where, key, name), sub) for name, sub in child.items())
                else:
                    stack.append(((*where, key), child))
        elif isinstance(item, list):
            stack.extend(((*where, i), child) for i, child in enumerate(item))


def _references(schema: Any) -> Iterator[tuple[FieldPath, str]]:
    """Each ``$ref`` and ``$dynamicRef`` of ``schema`` that is text, and where."""
    for path, value in _keyword_values(schema, ("$ref", "$dynamicRef")):
        if isinstance(value, str):
            yield path, value


def _keyword_values(value: Any, keywords: tuple[str, ...]) -> Iterator[tuple[FieldPath, Any]]:
    """``(path of the keyword, its value)`` of each of ``keywords`` anywhere in ``value``."""
    stack: list[tuple[FieldPath, Any]] = [((), value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key in keywords:
                    yield (*where, key), child
                else:
                    stack.append(((*where, key), child))
        elif isinstance(item, list):
            stack.extend(((*where, i), child) for i, child in enumerate(item))


def _document_order(path: Iterable[Any]) -> list[str]:
    """A sort key that lists problems by where they are (not by how they were found)."""
    return [str(part) for part in path]


def validator_for(schema: Any, *, formats: bool = False) -> Validator:
    """A Draft 2020-12 validator of ``schema`` (jsonschema is imported on first use, so
    only what checks a schema pays for it); ``formats`` also checks ``format``. Its
    ``pattern``, ``patternProperties``, ``additionalProperties`` and
    ``unevaluatedProperties`` match with RE2
    (:func:`_search`), in time linear in the text. It never fetches a referenced
    document (jsonschema would, by URL or file): :func:`schema_problem` refuses such
    schemas before, and a reference out of the schema fails as unresolvable here."""
    validator = _bounded_validator()
    checker = validator.FORMAT_CHECKER if formats else None
    return cast("Validator", validator(schema, format_checker=checker, registry=_no_fetching()))


@cache
def _no_fetching() -> Any:
    from referencing import Registry
    from referencing.exceptions import NoSuchResource

    def retrieve(uri: str) -> Any:
        raise NoSuchResource(uri)

    return Registry(retrieve=retrieve)  # type: ignore[call-arg]  # attrs field


@cache
def _bounded_validator() -> Any:
    from jsonschema import Draft202012Validator, validators

    return validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
            "unevaluatedProperties": _unevaluated_properties,
        },
    )


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> Callable[[str], object]:
    """The search function of ``pattern``: RE2's, whose time is linear in the text, so a
    value sent to a schema cannot make it backtrack for minutes (Python's ``re`` took
    42 s of CPU for 28 characters against ``(a+)+$``). A pattern RE2 cannot run
    (lookaround, backreferences: not linear by nature) falls back to ``re``."""
    import re2

    options = re2.Options()
    options.log_errors = False  # a pattern that falls back is no error worth a log line
    try:
        return cast("Callable[[str], object]", re2.compile(pattern, options).search)
    except re2.error:
        return re.compile(pattern).search


def _search(pattern: str, text: str) -> bool:
    return _compiled(pattern)(text) is not None


# jsonschema's own keyword functions, with its messages, searching through _search.


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    from jsonschema import ValidationError

    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = {
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    }
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        shown = ", ".join(_key(each) for each in sorted(extras))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            regexes = ", ".join(repr(each) for each in sorted(patterns))
            yield ValidationError(f"{shown} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({shown} {verb} unexpected)"
            )


def _unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    """jsonschema's keyword, with the keys ``patternProperties`` evaluated found by
    :func:`_search`: its own finds them with Python's ``re``, so a schema pairing
    ``patternProperties: {"^(a+)+$": …}`` with ``unevaluatedProperties: false`` (a
    pattern RE2 runs, so it passes the push) spent seconds on a 24-character key, and
    doubled with each character more."""
    from jsonschema import ValidationError

    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    refused = [
        key
        for key in instance
        if key not in evaluated
        and not _holds(validator.descend(instance[key], unevaluated, path=key, schema_path=key))
    ]
    if not refused:
        return
    names = ", ".join(_key(key) for key in sorted(refused, key=str))
    verb = "was" if len(refused) == 1 else "were"
    if unevaluated is False:
        yield ValidationError(f"Unevaluated properties are not allowed ({names} {verb} unexpected)")
    else:
        yield ValidationError(
            f"Unevaluated properties are not valid under the given schema ({names} {verb} "
            "unevaluated and invalid)"
        )


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> set[str]:
    """The keys of ``instance`` that ``schema`` evaluates, in place or through the
    subschemas it applies (JSON Schema 2020-12, as jsonschema reckons them)."""
    if not isinstance(schema, dict):
        return set()
    keys: set[str] = set()
    for keyword in ("$ref", "$dynamicRef"):
        reference = schema.get(keyword)
        if reference is not None:  # the resolver is jsonschema's own (no public way in)
            found = validator._resolver.lookup(reference)
            at = validator.evolve(schema=found.contents, _resolver=found.resolver)
            keys |= _evaluated_keys(at, instance, found.contents)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        subschema = schema.get(keyword)
        if subschema is not None:
            keys |= {k for k, v in instance.items() if _holds(validator.descend(v, subschema))}
    patterns = schema.get("patternProperties")
    if isinstance(patterns, dict):
        keys |= {key for key in instance if any(_search(p, key) for p in patterns)}
    for name, subschema in (schema.get("dependentSchemas") or {}).items():
        if name in instance:
            keys |= _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, ()):
            if _holds(validator.descend(instance, subschema)):
                keys |= _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            keys |= _evaluated_keys(validator, instance, schema.get("then"))
        else:
            keys |= _evaluated_keys(validator, instance, schema.get("else"))
    return keys


def _holds(errors: Iterator[Any]) -> bool:
    return next(errors, None) is None


def _key(key: str) -> str:
    """A key of the value as a message quotes it, cut to 60 characters: a 30,000-character
    key sent as a field name came back whole in the error."""
    text = repr(key)
    return text if len(text) <= 60 else text[:56] + "...'"
