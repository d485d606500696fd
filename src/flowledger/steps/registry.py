"""The registry of step types: one per engine, shared by built-ins and plugins."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from pydantic import BaseModel, ConfigDict

from flowledger.errors import PluginError, StepError
from flowledger.logs import log_extra
from flowledger.steps.base import StepContext, StepKind, StepType, not_a_generator
from flowledger.steps.builtins import BUILTIN_STEP_TYPES

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "flowledger.steps"
_RESERVED_NAMESPACE = "sys."
#: Built-in step types whose modules most workflows never need (HTTP and its client
#: library's settings, the entity steps and their models): each module is imported, and
#: its ``STEP_TYPES`` registered, the first time a definition names one of them. Two
#: percent of a one-step ``flowledger run``'s instructions; tests/steps/test_registry.py
#: keeps this table and the modules in step.
LAZY_BUILTINS: dict[str, str] = {
    "sys.http_request": "flowledger.steps.http_request",
    "sys.create_entity": "flowledger.steps.entities",
    "sys.update_entity": "flowledger.steps.entities",
    "sys.delete_entity": "flowledger.steps.entities",
    "sys.query_entity": "flowledger.steps.entities",
}


class StepRegistry:
    """Step types by name. Pass one to an :class:`~flowledger.Engine`; there is no global one."""

    def __init__(self, types: Iterable[StepType] = ()) -> None:
        self._types: dict[str, StepType] = {}
        #: Built-in names not imported yet, with their module (``LAZY_BUILTINS``).
        self._lazy: dict[str, str] = {}
        for step in types:
            self._add(step, builtin=True)

    @classmethod
    def with_builtins(cls) -> StepRegistry:
        registry = cls(BUILTIN_STEP_TYPES)
        registry._lazy = dict(LAZY_BUILTINS)
        return registry

    def _load_lazy(self, module_name: str) -> None:
        """Register every step type of a lazily loaded built-in module."""
        module = importlib.import_module(module_name)
        for step in module.STEP_TYPES:
            self._add(step, builtin=True)
        self._lazy = {n: m for n, m in self._lazy.items() if m != module_name}

    def register(self, step: StepType) -> None:
        """Add a user step type. ``sys.*`` names belong to flowledger."""
        self._add(step, builtin=False)

    def _add(self, step: StepType, *, builtin: bool) -> None:
        if not isinstance(step, StepType):
            raise PluginError(f"{step!r} is not a StepType; declare it with @step_type(...)")
        if not builtin and step.name.startswith(_RESERVED_NAMESPACE):
            raise PluginError(f"step type {step.name!r}: the 'sys.' namespace is reserved")
        if not builtin and step.kind is not StepKind.TASK:
            # A structural kind means the scheduler runs the step itself; a plugin cannot
            # bring its own scheduling, so it declares tasks (which may suspend).
            raise PluginError(
                f"step type {step.name!r}: kind {step.kind} is run by flowledger's scheduler; "
                "plugin step types are tasks"
            )
        if step.handler is None and step.kind is StepKind.TASK:
            raise PluginError(f"step type {step.name!r}: a task step type needs a handler")
        if not builtin:  # a StepType made by hand, not by @step_type: checked as it checks
            not_a_generator(step.name, "the handler", step.handler)
            not_a_generator(step.name, "resume", step.resume)
        existing = self._types.get(step.name)
        if existing is not None and existing is not step:
            raise PluginError(
                f"step type {step.name!r} is registered twice, {_sources(existing, step)}"
            )
        self._types[step.name] = step

    def get(self, name: str) -> StepType | None:
        found = self._types.get(name)
        if found is None and name in self._lazy:
            self._load_lazy(self._lazy[name])
            found = self._types.get(name)
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._types or name in self._lazy

    def __iter__(self) -> Iterator[StepType]:
        for module_name in sorted(set(self._lazy.values())):
            self._load_lazy(module_name)
        return iter(list(self._types.values()))

    def names(self) -> list[str]:
        return sorted({*self._types, *self._lazy})

    def missing_builtin(self, name: str) -> bool:
        """``name`` is a built-in's (``sys.*``) and this registry has none at all: made
        as ``StepRegistry()``, not ``StepRegistry.with_builtins()``."""
        has_builtins = any(n.startswith(_RESERVED_NAMESPACE) for n in self.names())
        return name.startswith(_RESERVED_NAMESPACE) and not has_builtins

    def standing_in(self) -> StepRegistry:
        """This registry, with a stand-in for every custom type it lacks: enough to
        compile a stored workflow whose plugins this process has not loaded, to apply a
        cancel to it (nothing runs then). A stand-in's handler refuses to run."""
        return _StandingIn(self)

    def load_module(self, module_path: str) -> list[str]:
        """Import a plugin module and register its step types; return their names.

        ``module_path`` is a dotted module name or a path to a ``.py`` file. A module may
        define ``register(registry)``; otherwise every module-level :class:`StepType` is
        registered.
        """
        try:
            module = _import(module_path)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"cannot import plugin module {module_path!r}: {exc}") from exc
        return self._register_module(module)

    def _register_module(self, module: ModuleType) -> list[str]:
        before = set(self._types)
        hook = getattr(module, "register", None)
        if callable(hook) and not isinstance(hook, StepType):
            hook(self)
        else:
            found = [v for v in vars(module).values() if isinstance(v, StepType)]
            if not found:
                raise PluginError(
                    f"plugin module {module.__name__!r} defines no step types "
                    "(declare them with @step_type or define register(registry))"
                )
            for step in found:
                self.register(step)
        return sorted(set(self._types) - before)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register the step types that installed packages advertise under ``group``."""
        added: list[str] = []
        for ep in entry_points(group=group):
            try:
                target = ep.load()
            except Exception as exc:
                raise PluginError(f"entry point {ep.name!r} ({ep.value}) failed: {exc}") from exc
            if isinstance(target, StepType):
                self.register(target)
                added.append(target.name)
            elif isinstance(target, ModuleType):
                added += self._register_module(target)
            elif callable(target):
                before = set(self._types)
                target(self)
                added += sorted(set(self._types) - before)
            else:
                raise PluginError(f"entry point {ep.name!r} is not a step type, module or hook")
            log.debug("loaded step plugin %s", ep.name, extra=log_extra("load_plugin"))
        return added


def _sources(first: StepType, second: StepType) -> str:
    """Where two step types of one name were declared, in words: the handlers' modules,
    files and lines. One file imported twice (by path and by module name) is one place."""
    (module1, at1), (module2, at2) = _source(first), _source(second)
    if at1 is not None and at1 == at2:
        return (
            f"both declared at {at1} (imported as modules {module1!r} and {module2!r}): load "
            "that plugin once, by module name or by file path"
        )
    return f"by {module1} ({at1 or 'unknown file'}) and by {module2} ({at2 or 'unknown file'})"


def _source(step: StepType) -> tuple[str, str | None]:
    """The module of a step type's handler, and its file and line when it has them."""
    handler = inspect.unwrap(step.handler) if step.handler is not None else None
    module = str(getattr(handler, "__module__", None) or "an unknown module")
    code = getattr(handler, "__code__", None)
    where = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else None
    return module, where


def _import(target: str) -> ModuleType:
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise PluginError(f"plugin file {target} does not exist")
        name = "flowledger_plugin_" + path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"cannot load plugin file {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # pydantic resolves annotations through sys.modules
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: modules next to the user are importable
    return importlib.import_module(target)


class _AnyInput(BaseModel):
    model_config = ConfigDict(extra="allow")


class _StandingIn(StepRegistry):
    def __init__(self, base: StepRegistry) -> None:
        super().__init__()
        self._base = base

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get(self, name: str) -> StepType | None:
        found = self._base.get(name)
        if found is None and not name.startswith(_RESERVED_NAMESPACE):
            found = self._types.get(name)
            if found is None:
                found = self._types[name] = _stand_in(name)
        return found


def _stand_in(name: str) -> StepType:
    async def refuse(data: _AnyInput, ctx: StepContext) -> None:
        raise StepError(f"step type {name!r} is not loaded in this process", retryable=True)

    return StepType(
        name, refuse, _AnyInput, description="a stand-in: its plugin is not loaded", stands_in=True
    )
