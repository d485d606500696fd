"""The plugin API: declaring step types and loading them from modules, files and entry points."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Optional, TypedDict, Union

import pytest
from pydantic import BaseModel

from flowledger import Engine, PluginError, StepContext, StepRegistry, Suspend, step_type
from flowledger.steps.base import StepKind, StepType
from flowledger.steps.registry import LAZY_BUILTINS

PLUGIN = textwrap.dedent(
    """
    from pydantic import BaseModel
    from flowledger import StepContext, step_type

    class ShoutInput(BaseModel):
        text: str

    class ShoutOutput(BaseModel):
        loud: str

    @step_type("{name}")
    async def shout(data: ShoutInput, ctx: StepContext) -> ShoutOutput:
        return ShoutOutput(loud=data.text.upper() + "!")
    """
)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("fl_test_")]:
        del sys.modules[name]


def test_builtins_are_registered_like_plugins() -> None:
    registry = StepRegistry.with_builtins()
    assert {
        "sys.condition",
        "sys.transform",
        "sys.set_variable",
        "sys.loop",
        "sys.http_request",
        "sys.delay",
        "sys.no_action",
        "sys.fail",
    } <= set(registry.names())


def test_names_must_be_namespaced_and_sys_is_reserved() -> None:
    with pytest.raises(PluginError, match="must be namespaced"):
        step_type("shout")

    class In(BaseModel):
        x: int

    @step_type("sys.mine")
    async def mine(data: In, ctx: StepContext) -> dict[str, int]:
        return {}

    with pytest.raises(PluginError, match="reserved"):
        StepRegistry.with_builtins().register(mine)


def test_a_pure_step_type_has_a_plain_handler() -> None:
    """``pure=True`` on an ``async def``: the coroutine was never awaited, the runner
    stopped and the execution stayed NotStarted."""

    class In(BaseModel):
        n: int

    with pytest.raises(PluginError, match="must be a plain function"):

        @step_type("acme.pure", pure=True)
        async def pure(data: In, ctx: StepContext) -> dict[str, int]:
            return {"n": data.n}


def test_handlers_need_a_pydantic_input_model() -> None:
    with pytest.raises(PluginError, match="pydantic model"):

        @step_type("acme.untyped")
        async def untyped(data: dict, ctx: StepContext) -> dict:  # type: ignore[type-arg]
            return data


def test_handlers_need_a_model_of_their_own_not_basemodel_itself() -> None:
    """Registered, it failed every load of a workflow using it with pydantic's own
    PydanticUserError (a traceback) when the compiler checked the step's input."""
    with pytest.raises(PluginError, match="not BaseModel itself"):

        @step_type("acme.bare")
        async def bare(data: BaseModel, ctx: StepContext) -> dict[str, int]:
            return {}


async def test_a_plain_def_resume_runs_in_a_thread_as_a_plain_handler_does() -> None:
    """A plain ``def`` given as ``resume=`` was accepted, and every wake-up failed with
    "object ... can't be used in 'await' expression", retried into the same failure;
    plain handlers ran in a thread all along."""

    class In(BaseModel):
        n: int

    threads: list[int] = []

    def finish(data: In, ctx: StepContext, state: Mapping[str, Any]) -> dict[str, int]:
        threads.append(threading.get_ident())
        return {"n": data.n + state["added"]}

    @step_type("acme.later", resume=finish)
    async def later(data: In, ctx: StepContext) -> Suspend:
        return Suspend(until=datetime.now(UTC) + timedelta(milliseconds=20), state={"added": 1})

    registry = StepRegistry.with_builtins()
    registry.register(later)
    async with Engine("sqlite://", registry=registry) as engine:
        text = "name: w\nsteps: [{id: l, type: acme.later, input: {n: 1}}]\n"
        doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    [step] = doc["steps"].values()
    assert step["outputData"] == {"n": 2} and step["attempt"] == 1
    assert threads and threads[0] != threading.get_ident()  # off the event loop


def test_a_resume_that_cannot_take_input_ctx_and_state_is_refused_when_declared() -> None:
    class In(BaseModel):
        n: int

    async def handler(data: In, ctx: StepContext) -> dict[str, int]:
        return {}

    def two(data: In, ctx: StepContext) -> dict[str, int]:
        return {}

    with pytest.raises(PluginError, match=r"resume must take \(input, ctx, state\), it takes"):
        step_type("acme.two", resume=two)(handler)
    with pytest.raises(PluginError, match="resume must be a function of"):
        step_type("acme.text", resume="finish")(handler)  # type: ignore[arg-type]


def test_an_async_generator_is_refused_when_declared_saying_to_return() -> None:
    """Unannotated, it was accepted and every run failed ("output holds a value of type
    async_generator"); annotated, refused as an output that is not a model, saying
    nothing of the yield."""

    class In(BaseModel):
        n: int

    async def yields(data: In, ctx: StepContext):  # type: ignore[no-untyped-def]
        yield {"n": data.n}

    async def yields_typed(data: In, ctx: StepContext) -> AsyncIterator[dict[str, int]]:
        yield {"n": data.n}

    async def handler(data: In, ctx: StepContext) -> Suspend:
        return Suspend(until=None)

    async def resumes(data: In, ctx: StepContext, state: Mapping[str, Any]):  # type: ignore[no-untyped-def]
        yield {}

    said = r"is an async generator \(it yields\); a step gives one output, so return a value"
    for fn in (yields, yields_typed):
        with pytest.raises(PluginError, match=f"'acme.gen': the handler {said}"):
            step_type("acme.gen")(fn)
    with pytest.raises(PluginError, match=f"'acme.gen': resume {said}"):
        step_type("acme.gen", resume=resumes)(handler)


def test_a_plain_generator_is_refused_when_declared_or_registered() -> None:
    """A plain ``def`` that yields was accepted unannotated: the worker thread only made
    the generator, and its body then ran on the event loop, iterated into a list as the
    step's output (every other step stood still meanwhile)."""

    class In(BaseModel):
        n: int

    def yields(data: In, ctx: StepContext):  # type: ignore[no-untyped-def]
        yield {"n": data.n}

    def yields_typed(data: In, ctx: StepContext) -> Iterator[dict[str, int]]:
        yield {"n": data.n}

    def handler(data: In, ctx: StepContext) -> Suspend:
        return Suspend(until=None)

    def resumes(data: In, ctx: StepContext, state: Mapping[str, Any]):  # type: ignore[no-untyped-def]
        yield {}

    said = r"is a generator \(it yields\); a step gives one output, so return a value"
    for fn in (yields, yields_typed):
        with pytest.raises(PluginError, match=f"'acme.gen': the handler {said}"):
            step_type("acme.gen")(fn)
    with pytest.raises(PluginError, match=f"'acme.gen': resume {said}"):
        step_type("acme.gen", resume=resumes)(handler)
    made = StepType(name="acme.gen", handler=yields, input_model=In, output_model=None)
    with pytest.raises(PluginError, match=f"'acme.gen': the handler {said}"):
        StepRegistry.with_builtins().register(made)
    suspends = StepType(
        name="acme.gen", handler=handler, input_model=In, output_model=None, resume=resumes
    )
    with pytest.raises(PluginError, match=f"'acme.gen': resume {said}"):
        StepRegistry.with_builtins().register(suspends)


def test_load_a_module_by_name_and_by_file(plugin_dir: Path) -> None:
    (plugin_dir / "fl_test_mod.py").write_text(PLUGIN.replace("{name}", "acme.shout"))
    registry = StepRegistry()
    assert registry.load_module("fl_test_mod") == ["acme.shout"]
    file = plugin_dir / "other.py"
    file.write_text(PLUGIN.replace("{name}", "acme.other"))
    assert StepRegistry().load_module(str(file)) == ["acme.other"]


def test_load_errors_are_clear(plugin_dir: Path) -> None:
    (plugin_dir / "fl_test_empty.py").write_text("x = 1\n")
    (plugin_dir / "fl_test_broken.py").write_text("import does_not_exist\n")
    with pytest.raises(PluginError, match="defines no step types"):
        StepRegistry().load_module("fl_test_empty")
    with pytest.raises(PluginError, match="cannot import plugin module 'fl_test_broken'"):
        StepRegistry().load_module("fl_test_broken")
    with pytest.raises(PluginError, match="does not exist"):
        StepRegistry().load_module("no/such/file.py")


def test_entry_points_are_discovered(plugin_dir: Path) -> None:
    (plugin_dir / "fl_test_ep.py").write_text(PLUGIN.replace("{name}", "acme.entry"))
    dist = plugin_dir / "fl_test_ep-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fl-test-ep\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[flowledger.steps]\nshout = fl_test_ep:shout\n")
    registry = StepRegistry.with_builtins()
    assert registry.load_entry_points() == ["acme.entry"]
    assert "acme.entry" in registry


async def test_a_plugin_step_runs_and_its_output_model_is_validated(
    plugin_dir: Path, tmp_path: Path
) -> None:
    (plugin_dir / "fl_test_run.py").write_text(PLUGIN.replace("{name}", "acme.shout"))
    async with Engine(f"sqlite:///{tmp_path / 'p.db'}", plugins=["fl_test_run"]) as engine:
        workflow = engine.load_text(
            "name: p\nsteps:\n  - {id: s, type: acme.shout, input: {text: hi}}\n"
            "output: '{{ steps.s.output.loud }}'\n"
        )
        doc = await engine.run(workflow)
    assert doc["output"] == "HI!"


def test_json_definitions_load_with_positions() -> None:
    from flowledger import DefinitionError

    registry = StepRegistry.with_builtins()
    engine = Engine("sqlite://", registry=registry)
    good = '{"name": "j", "steps": [{"id": "a", "type": "sys.no_action"}]}'
    assert engine.load_text(good, "wf.json").name == "j"
    bad = '{\n  "name": "j",\n  "steps": [\n    {"id": "a", "type": "sys.nope"}\n  ]\n}'
    with pytest.raises(DefinitionError) as info:
        engine.load_text(bad, "wf.json")
    assert info.value.problems[0].format().startswith("wf.json:4:")


def test_lazy_builtins_are_what_their_modules_define() -> None:
    for module_name in set(LAZY_BUILTINS.values()):
        module = importlib.import_module(module_name)
        named = {name for name, where in LAZY_BUILTINS.items() if where == module_name}
        assert {step.name for step in module.STEP_TYPES} == named


def test_a_lazy_builtin_loads_when_first_named() -> None:
    code = (
        "import sys\nfrom flowledger.steps.registry import StepRegistry\n"
        "registry = StepRegistry.with_builtins()\n"
        "before = 'flowledger.steps.http_request' in sys.modules\n"
        "listed = 'sys.http_request' in registry.names() and 'sys.http_request' in registry\n"
        "still = 'flowledger.steps.http_request' in sys.modules\n"
        "found = registry.get('sys.http_request')\n"
        "print(before, listed, still, found.name, 'flowledger.steps.entities' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True", "False", "sys.http_request", "False"]


def test_every_builtin_is_there_when_iterated() -> None:
    registry = StepRegistry.with_builtins()
    listed = registry.names()
    assert set(LAZY_BUILTINS) <= set(listed)
    assert sorted(step.name for step in registry) == listed
    entity = registry.get("sys.query_entity")
    assert entity is not None and entity.kind is StepKind.TASK
    assert registry.get("sys.no_such_step") is None


class KwIn(BaseModel):
    n: int = 0


class KwOut(BaseModel):
    token: str


def test_a_handler_or_resume_taking_ctx_by_keyword_only_is_refused_when_declared() -> None:
    """``def h(data, *, ctx)`` was accepted, then every run failed with "takes 1
    positional argument but 2 were given", retried under the policy (tour 23 F9)."""

    def keyword_ctx(data: KwIn, *, ctx: StepContext) -> KwOut:
        return KwOut(token="")

    with pytest.raises(PluginError) as refused:
        step_type("acme.kw")(keyword_ctx)
    assert str(refused.value) == (
        "step type 'acme.kw': the handler's parameter 'ctx' is keyword-only (it follows a "
        "'*'), but the engine passes (input, ctx) by position"
    )

    def star(data: KwIn, *ctx: StepContext) -> KwOut:
        return KwOut(token="")

    with pytest.raises(PluginError, match="parameter 'ctx' is a '\\*' parameter"):
        step_type("acme.star")(star)

    async def handler(data: KwIn, ctx: StepContext) -> Suspend:
        return Suspend(until=datetime.now(UTC))

    def keyword_state(data: KwIn, ctx: StepContext, *, state: Mapping[str, Any]) -> KwOut:
        return KwOut(token="")

    with pytest.raises(PluginError, match="resume's parameter 'state' is keyword-only"):
        step_type("acme.kwstate", resume=keyword_state)(handler)


@dataclass
class Point:
    x: int


class Plain:
    pass


class Shape(TypedDict):
    x: int


@pytest.mark.parametrize(
    ("returned", "named"),
    [(Plain, "Plain"), (Point, "Point"), (Shape, "Shape"), (Plain | None, "Plain"),
     (KwOut | Plain, "Plain")],
)  # fmt: skip
def test_a_return_annotation_that_is_no_model_nor_json_is_refused(
    returned: Any, named: str
) -> None:
    """It was taken as free-form output: stored unchecked, and references to its fields
    never checked (tour 23 F13)."""

    def handler(data: KwIn, ctx: StepContext) -> Any:
        return {}

    handler.__annotations__["return"] = returned
    with pytest.raises(PluginError) as refused:
        step_type("acme.classy")(handler)
    assert str(refused.value) == (
        f"step type 'acme.classy': the handler returns {named}, which is not a pydantic model, so its fields would be neither checked nor known to "
        "references: make it a pydantic BaseModel, or annotate the handler -> dict[str, Any] "
        "(or Any) for free-form output"
    )


@pytest.mark.parametrize(
    ("returned", "model"),
    [
        (KwOut, KwOut),
        (KwOut | Suspend, KwOut),  # a handler that may park keeps its output model
        (Union[KwOut, Suspend], KwOut),  # noqa: UP007 - the spelling is what is tested
        (Annotated[KwOut | Suspend, "doc"], KwOut),
        (Awaitable[KwOut], KwOut),  # a plain def returning an awaitable (it is awaited)
        (Optional[KwOut | Suspend], None),  # noqa: UP045 - None is free-form output
        (dict[str, Any], None),
        (Mapping[str, int], None),
        (Any, None),
        (object, None),
        (list[int], None),
        (str, None),
        (None, None),
        (KwOut | KwIn, None),
    ],
)
def test_the_output_model_is_the_return_annotation_s_model_suspend_aside(
    returned: Any, model: type[BaseModel] | None
) -> None:
    """``-> Out | Suspend``, the annotation mypy needs for a handler that parks, gave no
    output model: its output went unvalidated and references to it unchecked (tour 23 F4)."""

    def handler(data: KwIn, ctx: StepContext) -> Any:
        return {}

    handler.__annotations__["return"] = returned
    assert step_type("acme.typed")(handler).output_model is model


def test_a_handler_that_only_suspends_takes_its_output_model_from_resume() -> None:
    class Other(BaseModel):
        other: int

    def finish(data: KwIn, ctx: StepContext, state: Mapping[str, Any]) -> KwOut:
        return KwOut(token="t")

    def finish_other(data: KwIn, ctx: StepContext, state: Mapping[str, Any]) -> Other:
        return Other(other=1)

    async def parks(data: KwIn, ctx: StepContext) -> Suspend:
        return Suspend(until=datetime.now(UTC))

    async def parks_or_answers(data: KwIn, ctx: StepContext) -> KwOut | Suspend:
        return Suspend(until=datetime.now(UTC))

    assert step_type("acme.parks", resume=finish)(parks).output_model is KwOut
    assert step_type("acme.both", resume=finish)(parks_or_answers).output_model is KwOut
    with pytest.raises(PluginError) as refused:
        step_type("acme.two_outputs", resume=finish_other)(parks_or_answers)
    assert str(refused.value) == (
        "step type 'acme.two_outputs': the handler returns KwOut but resume returns Other; a "
        "step has one output, so annotate both the same"
    )


def test_a_step_type_registered_twice_names_where_both_were_declared(plugin_dir: Path) -> None:
    """The error said only "is registered twice", though the cause was most often one
    plugin loaded both by its path and by its module name (tour 23 F15)."""
    file = plugin_dir / "fl_test_twice.py"
    file.write_text(PLUGIN.replace("{name}", "acme.twice"))
    registry = StepRegistry()
    registry.load_module(str(file))
    with pytest.raises(PluginError) as refused:
        registry.load_module("fl_test_twice")
    line = PLUGIN.splitlines().index('@step_type("{name}")') + 1  # where the declaration starts
    assert str(refused.value) == (
        f"step type 'acme.twice' is registered twice, both declared at {file}:{line} "
        "(imported as modules 'flowledger_plugin_fl_test_twice' and 'fl_test_twice'): load "
        "that plugin once, by module name or by file path"
    )

    class In(BaseModel):
        n: int

    def first(data: In, ctx: StepContext) -> dict[str, Any]:
        return {}

    def second(data: In, ctx: StepContext) -> dict[str, Any]:
        return {}

    registry.register(step_type("acme.dup")(first))
    with pytest.raises(PluginError) as refused:
        registry.register(step_type("acme.dup")(second))
    here = Path(__file__)
    one, two = first.__code__.co_firstlineno, second.__code__.co_firstlineno
    assert str(refused.value) == (
        f"step type 'acme.dup' is registered twice, by {__name__} ({here}:{one}) "
        f"and by {__name__} ({here}:{two})"
    )
