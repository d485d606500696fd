"""Reading request values given as text: JSON from an option, a JSON file, a JSON Schema
file (JSON or YAML). Faces that receive text (the CLI's ``--input``, ``--data``,
``--filter``, ``--schema``) parse with these, so every face words a bad value the same
way; the error names what was given (``--input``, ``input``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from flowledger.errors import InputError


def parse_json(text: str, what: str) -> Any:
    """JSON text, or InputError naming ``what`` and the column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON (column {exc.colno}): {exc.msg}") from None


def read_json_file(path: str) -> Any:
    """A JSON file's value, or InputError with its line and column."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read input file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc


def read_schema_file(path: str) -> dict[str, Any]:
    """A JSON Schema from a JSON or YAML file (it must be an object)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read schema file {path}: {exc.strerror}") from None
    try:
        schema = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        raise InputError(f"{where}: the schema is not valid JSON or YAML") from None
    if not isinstance(schema, dict):
        raise InputError(f"{path}: a JSON Schema must be an object, e.g. {{type: object}}")
    return schema


def parse_json_object(text: str, what: str, example: str = "") -> dict[str, Any]:
    """JSON text that must be an object (workflow input, an entity payload, a filter)."""
    value = parse_json(text, what)
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object{', e.g. ' + example if example else ''}")
    return value


def json_object(value: Any, what: str) -> dict[str, Any]:
    """A parsed value that must be a JSON object."""
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object")
    return value
