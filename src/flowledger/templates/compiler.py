"""Compiled templates and the engine that compiles and caches them.

A :class:`Template` is compiled once into one Jinja render function that
yields each expression's raw value; rendering makes a fresh context around
the caller's mapping (no copy) and runs it. Measured on CPython 3.11 with
Jinja 3.1.6: ``{{ steps.a.output.x }}`` against plain dicts renders in about
1.7 µs, ``"total: {{ a }} of {{ b }}"`` in about 2.5 µs. Jinja's own
``env.compile_expression`` took 7.6 µs for the first (it copies the context
and stores the result in it) and ``Template.render`` 7 µs, so neither is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context

from flowledger.errors import (
    TemplateError,
    TemplateLimitError,
    TemplateReferenceError,
    TemplateSecurityError,
    TemplateSyntaxError,
)
from flowledger.lru import LRU
from flowledger.templates import bare
from flowledger.templates.context import RenderContext
from flowledger.templates.convert import finish_reference, to_native, to_text
from flowledger.templates.limits import Meter, TemplateLimits, check_string
from flowledger.templates.numeric_uses import NumericUse, collect_numeric_uses
from flowledger.templates.parsing import locate, parse_template, quote
from flowledger.templates.references import (
    Reference,
    chain_reference,
    collect_references,
    explain_missing,
)
from flowledger.templates.sandbox import SandboxEnvironment
from flowledger.templates.value import TemplatedValue

#: Compiled templates an engine keeps, by source (those of every version it runs).
CACHED_TEMPLATES = 20_000

RenderFunc = Callable[[Context], Iterator[Any]]


@dataclass(frozen=True, eq=False)
class Template:
    """One compiled template string: immutable, thread-safe, reusable."""

    source: str
    #: True when the string is exactly one ``{{ expr }}``: render returns its native value.
    native: bool
    references: tuple[Reference, ...]
    _env: SandboxEnvironment = field(repr=False)
    _render_func: RenderFunc = field(repr=False)
    _literals: tuple[str, ...] = field(repr=False)
    _sources: tuple[str, ...] = field(repr=False)
    _globals: Mapping[str, Any] = field(repr=False)
    _plain_read: bool = field(repr=False)
    #: Where a read is used as a number (``a * 2``, ``a == 9.99``, ``[a, 1] | sum``):
    #: checked against its type before a run, where a Decimal stored as text is refused.
    numeric_uses: tuple[NumericUse, ...] = field(default=(), repr=False)

    def render(self, context: Mapping[str, Any], meter: Meter | None = None) -> Any:
        """Evaluate against ``context``: the native value, or text (see ``convert``).
        ``meter``: a budget shared with other templates (a step's whole input)."""
        limits = self._env.limits
        parent = {**context, **self._globals} if self._globals else context
        ctx = RenderContext(self._env, parent, limits, meter)
        done: list[str] = []  # text parts so far; says which expression failed
        try:
            if self.native:
                value = next(self._render_func(ctx))
                if self._plain_read:
                    return finish_reference(value, limits)
                native = to_native(value, limits, ctx.meter)
                if type(native) is str and not native.isascii():
                    _encodable(native)
                return native
            return self._render_text(self._render_func(ctx), ctx, done)
        except TemplateError as exc:
            raise self._failure(exc, done) from None
        except UndefinedError as exc:
            raise self._missing(exc, context) from None
        except Exception as exc:
            raise self._failure(_translate(exc), done) from exc

    @property
    def limits(self) -> TemplateLimits:
        return self._env.limits

    def _render_text(self, values: Iterator[Any], ctx: RenderContext, done: list[str]) -> str:
        literals = self._literals
        limits = ctx.limits
        done.append(literals[0])
        for index, value in enumerate(values, start=1):
            done.append(to_text(value, limits, ctx.meter))
            done.append(literals[index])
        check_string(limits, sum(map(len, done)), "the rendered text")
        text = "".join(done)
        if not text.isascii():
            _encodable(text)
        return text

    def _failure(self, error: TemplateError, done: list[str]) -> TemplateError:
        if error.source is not None:
            return error
        index = (len(done) - 1) // 2 if done else 0
        failed = self._sources[index] if index < len(self._sources) else self.source
        return locate(error, failed, self.source)

    def _missing(self, error: UndefinedError, context: Mapping[str, Any]) -> TemplateError:
        try:
            message = explain_missing(self.references, context, self._env)
        except Exception:  # the explanation is best effort; never hide the real failure
            message = None
        if message is None:  # e.g. a dynamic key (steps[x]) or an empty list's |first
            message = f"template error in {quote(self.source)}: {error.message}"
        return TemplateReferenceError(message, source=self.source)


def _translate(exc: Exception) -> TemplateError:
    """A Python or Jinja exception raised while evaluating, as one of ours."""
    if isinstance(exc, SecurityError):
        return TemplateSecurityError(str(exc))
    if isinstance(exc, OverflowError):
        return TemplateLimitError(f"the result is too large ({exc})")
    if isinstance(exc, RecursionError):
        return TemplateLimitError("the expression is nested too deeply")
    if isinstance(exc, MemoryError):
        return TemplateLimitError("the expression needs too much memory")
    if isinstance(exc, ZeroDivisionError):
        return TemplateError("division by zero")
    return TemplateError(str(exc) or type(exc).__name__)


def _compile(env: SandboxEnvironment, source: str) -> Template:
    if len(source) > env.limits.max_string_length:
        raise TemplateLimitError(
            f"the template is {len(source):,} characters long; "
            f"the limit is {env.limits.max_string_length:,}",
            source=source,
        )
    parsed = parse_template(env, source)
    exprs = parsed.expressions
    native = len(exprs) == 1 and not "".join(parsed.literals).strip()
    used_globals = {
        node.name: env.globals[node.name]
        for expr in exprs
        for node in expr.find_all(nodes.Name)
        if node.name in env.globals
    }
    tree = nodes.Template([nodes.Output(list(exprs))], lineno=1)
    tree.set_environment(env)
    try:
        render_func = env.from_string(tree).root_render_func
    except (RecursionError, MemoryError, SyntaxError):  # Python's own nesting limits
        raise TemplateLimitError(
            f"the template {quote(source)} is nested too deeply", source=source
        ) from None
    except jinja2.TemplateSyntaxError as exc:  # the checks should have caught it first
        detail = exc.message or "invalid expression"
        raise locate(TemplateSyntaxError(detail), source, source) from None
    return Template(
        source=source,
        native=native,
        references=collect_references(exprs, frozenset(env.globals)),
        _env=env,
        _render_func=render_func,
        _literals=parsed.literals,
        _sources=parsed.sources,
        _globals=used_globals,
        _plain_read=native and chain_reference(exprs[0]),
        numeric_uses=collect_numeric_uses(exprs),
    )


@dataclass(frozen=True, eq=False)
class BareTemplate(Template):
    """A template that is one plain read (see ``bare``): Jinja is compiled only on a miss."""

    _path: tuple[str, ...] = field(repr=False, default=())

    def render(self, context: Mapping[str, Any], meter: Meter | None = None) -> Any:
        value = bare.read(context, self._path)
        if value is bare.MISSING:  # let Jinja raise (or answer) exactly as it would
            return self._full.render(context, meter)
        return finish_reference(value, self._env.limits)

    @cached_property
    def _full(self) -> Template:
        return _compile(self._env, self.source)


def _no_render(context: Context) -> Iterator[Any]:
    raise AssertionError("a BareTemplate renders through its full template")  # pragma: no cover


def _compile_bare(env: SandboxEnvironment, source: str) -> Template | None:
    path = bare.bare_path(source)
    if path is None:
        return None
    return BareTemplate(
        source=source,
        native=True,
        references=(Reference(path[0], path[1:], True),),
        _env=env,
        _render_func=_no_render,
        _literals=("", ""),
        _sources=(source,),
        _globals={},
        _plain_read=True,
        _path=path,
    )


class TemplateEngine:
    """Compiles template strings under one set of limits, caching by source."""

    def __init__(self, limits: TemplateLimits | None = None) -> None:
        self.limits = limits or TemplateLimits()
        self._env = SandboxEnvironment(self.limits)
        # Bounded: a long-lived server compiles the templates of every version it runs.
        self._cache: LRU[str, Template] = LRU(CACHED_TEMPLATES)

    def compile(self, source: str) -> Template:
        """The compiled template (the same object for the same source)."""
        cached = self._cache.get(source)
        if cached is not None:
            return cached
        template = _compile_bare(self._env, source) or _compile(self._env, source)
        # Two threads may compile at once; both must get one object.
        return self._cache.setdefault(source, template)

    def compile_value(self, value: Any) -> TemplatedValue:
        """Compile every template string inside a JSON value."""
        return TemplatedValue.build(value, self.compile)


def _encodable(text: str) -> None:
    """TemplateError when ``text`` holds a lone surrogate (``"\\ud800"`` in an expression):
    no database stores it, and the commit that tried failed with the execution stuck."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end].encode("unicode_escape").decode()
        raise TemplateError(
            f"the rendered text holds {bad}, half of a UTF-16 pair, which cannot be stored"
        ) from None
