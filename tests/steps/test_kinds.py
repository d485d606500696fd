"""Structural step kinds: declared by step types, wired to drivers through one mapping."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import BaseModel

import flowledger
from flowledger import PluginError, StepContext, StepRegistry, step_type
from flowledger.runtime.drivers import DRIVERS, RESUMED_ON_RETRY
from flowledger.runtime.tasks import TaskDriver
from flowledger.steps.base import StepKind

SRC = Path(flowledger.__file__).parent


class _In(BaseModel):
    value: int = 0


def test_every_kind_has_exactly_one_driver() -> None:
    assert set(DRIVERS) == set(StepKind)
    for kind, driver in DRIVERS.items():
        assert isinstance(driver, type) and issubclass(driver, TaskDriver), kind
    assert StepKind.LOOP in RESUMED_ON_RETRY
    assert StepKind.TASK not in RESUMED_ON_RETRY


def test_builtins_declare_their_kind() -> None:
    kinds = {t.name: t.kind for t in StepRegistry.with_builtins()}
    assert kinds["sys.loop"] is StepKind.LOOP
    assert kinds["sys.condition"] is StepKind.CONDITION
    assert kinds["sys.sub_workflow"] is StepKind.SUB_WORKFLOW
    assert kinds["sys.wait_for_input"] is StepKind.WAIT_FOR_INPUT
    assert kinds["sys.no_action"] is StepKind.NO_ACTION
    assert kinds["sys.http_request"] is StepKind.TASK
    # Every structural kind is used by a built-in, so no driver is dead code.
    assert set(kinds.values()) == set(StepKind)


def test_structural_types_the_scheduler_runs_have_no_stub_handler() -> None:
    registry = StepRegistry.with_builtins()
    for name in ("sys.loop", "sys.sub_workflow", "sys.wait_for_input"):
        found = registry.get(name)
        assert found is not None and found.handler is None, name


def test_a_plugin_cannot_claim_a_structural_kind() -> None:
    @step_type("acme.looper", kind=StepKind.LOOP)
    def looper(data: _In, ctx: StepContext) -> dict[str, int]:
        return {}

    with pytest.raises(PluginError, match="kind loop is run by flowledger's scheduler"):
        StepRegistry.with_builtins().register(looper)


def test_a_task_without_a_handler_is_refused() -> None:
    @step_type("acme.task")
    def task(data: _In, ctx: StepContext) -> dict[str, int]:
        return {}

    with pytest.raises(PluginError, match="needs a handler"):
        StepRegistry.with_builtins().register(replace(task, handler=None))


def _sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (SRC / package).rglob("*.py"))


def _type_name_comparisons(path: Path, base: Path = SRC) -> list[str]:
    """Comparisons of anything with a ``sys.*`` literal (or a collection of them)."""

    def is_type_literal(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value.startswith("sys.") and node.value[4:].isidentifier()
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            return any(is_type_literal(e) for e in node.elts)
        return False

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare):
            if any(is_type_literal(n) for n in (node.left, *node.comparators)):
                found.append(f"{path.relative_to(base)}:{node.lineno}")
        elif isinstance(node, ast.MatchValue) and is_type_literal(node.value):
            found.append(f"{path.relative_to(base)}:{node.lineno}")
    return found


def test_no_module_compares_step_type_names() -> None:
    found = [
        hit for p in _sources("runtime", "definition", "steps") for hit in _type_name_comparisons(p)
    ]
    assert found == [], "ask the step type's kind (or a declared attribute) instead: " + ", ".join(
        found
    )


def test_the_name_check_catches_a_comparison(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'if step.type_name == "sys.loop" or kind in ("sys.delay",):\n'
        "    pass\n"
        "match name:\n"
        '    case "sys.fail":\n'
        "        pass\n"
    )
    assert len(_type_name_comparisons(sample, tmp_path)) == 3


def test_runtime_helpers_do_not_import_their_owner() -> None:
    offenders = []
    for path in _sources("runtime", "steps", "definition"):
        tree = ast.parse(path.read_text())
        package = path.relative_to(SRC).parts[0]
        for node in ast.walk(tree):
            # Third-party names for annotations only are fine (httpx is imported lazily for
            # cold start); our own modules there would hide a cycle.
            checking = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            if checking and any(_own_import(inner) for inner in ast.walk(node)):
                offenders.append(f"{path.relative_to(SRC)}: TYPE_CHECKING import")
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    # Our own package's modules imported late would hide a cycle (a lower
                    # package's may be imported late; test_architecture checks the arrow).
                    if _own_import(inner, package):
                        offenders.append(f"{path.relative_to(SRC)}:{inner.lineno}: lazy import")
    assert offenders == []


def _own_import(node: ast.AST, package: str | None = None) -> bool:
    if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("flowledger"):
        return False
    parts = (node.module or "").split(".")
    return package is None or len(parts) < 2 or parts[1] == package


def test_steps_do_not_import_definition() -> None:
    for path in _sources("steps"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("flowledger.definition"), path
