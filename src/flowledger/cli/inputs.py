"""Reading workflow input from the command line: --input JSON or --input-file PATH."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flowledger.errors import InputError


def load_input_file(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read input file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc


def parse_input_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--input is not valid JSON (column {exc.colno}): {exc.msg}") from exc
