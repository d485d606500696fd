"""The package arrows point one way: leaves → templates → steps → definition → storage →
entities/artifacts → runtime → worker → app → faces.

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a lazy
import that dodges a cycle is still an arrow the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "flowledger"

#: The layer of each top-level module or package; a module may import only lower layers
#: and its own package. The public API (``flowledger/__init__.py``) re-exports from all.
LAYERS: dict[str, int] = {
    "errors": 0,
    "unions": 0,
    "controls": 0,
    "schema_check": 0,
    "types": 0,
    "durations": 0,
    "timeutil": 0,
    "egress": 0,
    "codec": 0,
    "secretparts": 0,
    "config": 0,
    "logs": 0,
    "traceparent": 0,
    "lazy": 0,
    "lru": 0,
    "heap": 0,
    "jsonvalues": 0,
    "numbers": 0,
    "templates": 1,
    "steps": 2,
    "definition": 3,
    "testing": 3,  # a StepContext for tests of step types
    "storage": 4,
    "entities": 5,
    "artifacts": 5,
    "observe": 6,
    "runtime": 6,
    "worker": 7,
    "app": 8,
    "api": 9,
    "web": 9,
    "cli": 10,  # composes the faces: `flowledger serve` runs the HTTP one
    "__main__": 11,
}
#: Leaves are one layer but must not form a cycle: this is their order.
LEAF_ORDER = [
    "types",
    "controls",
    "errors",
    "unions",
    "numbers",
    "jsonvalues",
    "schema_check",
    "durations",
    "timeutil",
    "egress",
    "config",
    "secretparts",
    "codec",
    "logs",
    "traceparent",
    "lazy",
    "lru",
    "heap",
]


def _top(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "flowledger" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def test_every_top_level_module_has_a_layer() -> None:
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in _modules()}
    tops -= {"__init__", "py.typed"}
    assert tops <= set(LAYERS), f"place these in LAYERS: {sorted(tops - set(LAYERS))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    own = relative.parts[0].removesuffix(".py")
    if own == "__init__":
        return  # the public API re-exports from every layer
    wrong = []
    for line, name in _imports(path):
        target = _top(name)
        if target is None or target == own:
            continue
        mine, theirs = LAYERS[own], LAYERS.get(target)
        assert theirs is not None, f"{relative}:{line} imports unknown flowledger.{target}"
        if mine == theirs == 0:
            if LEAF_ORDER.index(target) > LEAF_ORDER.index(own):
                wrong.append(f"{relative}:{line}: leaf {own} imports later leaf {target}")
        elif theirs >= mine:
            wrong.append(f"{relative}:{line}: {own} (layer {mine}) imports {name} ({theirs})")
    assert not wrong, "\n".join(wrong)


def test_the_command_line_reaches_storage_and_steps_only_through_the_layers_between() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)}:{line}: {name}"
        for path in (PACKAGE / "cli").glob("*.py")
        for line, name in _imports(path)
        if _top(name) in {"storage", "steps"}
    ]
    assert not wrong, "\n".join(wrong)
