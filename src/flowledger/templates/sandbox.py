"""The Jinja environment templates are evaluated in.

On top of Jinja's immutable sandbox:

* ``a.b`` on a mapping means the key ``b``; only when the key is missing may
  ``get``/``keys``/``values``/``items`` be the mapping's methods. So data keys
  named ``items`` or ``keys`` work, and nothing else of a dict is reachable.
* Refused attributes raise :class:`TemplateSecurityError` instead of the
  stock sandbox's silent empty string.
* Only an allow-list of callables may be called: our globals and a few
  side-effect-free ``str`` and mapping methods.
* Arithmetic and ``~`` go through :mod:`flowledger.templates.arithmetic` and
  :mod:`flowledger.templates.limits`, so sizes are checked before allocation.
* Missing values chain (``a.missing.deeper`` stays undefined) so
  ``default`` and ``is defined`` work on long paths; using one still fails.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame, operators
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    is_internal_attribute,
    modifies_known_mutable,
)

from flowledger.errors import TemplateLimitError, TemplateSecurityError
from flowledger.templates.arithmetic import OPERATORS, apply_binop
from flowledger.templates.context import render_context
from flowledger.templates.convert import to_text
from flowledger.templates.filters import build_filters, walking_tests
from flowledger.templates.limits import CALL_STEPS, TemplateLimits, check_collection, check_string

SAFE_STR_METHODS = frozenset(
    {
        "lower", "upper", "strip", "lstrip", "rstrip", "startswith", "endswith",
        "split", "rsplit", "title", "capitalize", "isdigit", "isalpha", "isalnum",
        "count", "find", "splitlines",
    }
)  # fmt: skip
MAPPING_METHODS = frozenset({"get", "keys", "values", "items"})
# Reachable without a leading underscore but still a way out of the sandbox.
BLOCKED_ATTRIBUTES = frozenset(
    {
        "format", "format_map", "mro", "gi_frame", "gi_code", "gi_yieldfrom",
        "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "ag_await",
        "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "tb_frame", "tb_next",
        "func_globals", "func_code", "im_func", "im_self", "im_class",
    }
)  # fmt: skip
_METHOD_TYPES = (types.BuiltinMethodType, types.MethodType)


class ValueCodeGenerator(CodeGenerator):
    """Yields each ``{{ expr }}``'s value untouched and routes ``~`` to the environment.

    The stock generator wraps outputs in ``str()`` and folds constants into
    text at compile time; we convert values ourselves (see ``convert``).
    These are the same hooks Jinja's own ``NativeCodeGenerator`` overrides.
    """

    def _output_child_to_const(
        self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo
    ) -> NoReturn:
        raise nodes.Impossible()

    def _output_child_pre(
        self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo
    ) -> None:
        pass

    def _output_child_post(
        self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo
    ) -> None:
        pass

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        """``a in b``, ``a == b``: each operand passes through the environment, which
        counts the walk over a list or a text (Python compares them in C, uncounted)."""
        self.write("(")
        self._walked(node.expr, frame)
        for op in node.ops:
            self.write(f" {operators[op.op]} ")
            self._walked(op.expr, frame)
        self.write(")")

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        """``a[1:]`` (Jinja slices directly, not through ``getitem``): the copy counted."""
        if isinstance(node.arg, nodes.Slice):
            self.write("environment.walked(context, ")
            super().visit_Getitem(node, frame)
            self.write(")")
        else:
            super().visit_Getitem(node, frame)

    def _walked(self, node: nodes.Expr, frame: Frame) -> None:
        self.write("environment.walked(context, ")
        self.visit(node, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_values(context, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _capped_range(limits: TemplateLimits) -> Callable[..., range]:
    def range_(*args: int) -> range:
        result = range(*args)
        try:
            size = len(result)
        except OverflowError:
            size = limits.max_range + 1
        if size > limits.max_range:
            raise TemplateLimitError(
                f"range() would produce {size:,} numbers; the limit is {limits.max_range:,}"
            )
        return result

    return range_


def _describe_callable(obj: Any) -> str:
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", type(obj).__name__)
    if isinstance(obj, _METHOD_TYPES) and owner is not None:
        return f"{type(owner).__name__}.{name}()"
    return f"{name}()"


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    """One per :class:`~flowledger.templates.TemplateEngine`; shared by all its templates."""

    code_generator_class = ValueCodeGenerator
    intercepted_binops = frozenset(OPERATORS)

    def __init__(self, limits: TemplateLimits) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,  # text around expressions is kept byte for byte
            optimized=False,  # no evaluation of user expressions at compile time
            cache_size=0,
            auto_reload=False,
        )
        self.limits = limits
        self.globals.clear()  # no lipsum, cycler, joiner, namespace, dict
        self.globals["range"] = _capped_range(limits)
        self._callable_globals = tuple(self.globals.values())
        self.filters.clear()
        self.filters.update(build_filters())
        self.tests.update(walking_tests(self.tests))

    # -- attribute and item access ------------------------------------------

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict or isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                if attribute in MAPPING_METHODS:
                    return getattr(obj, attribute)
                return self.undefined(obj=obj, name=attribute)
        if isinstance(obj, Undefined):
            return obj
        return self._attribute(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(obj) is dict or isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=argument)
        if isinstance(obj, Undefined):
            return obj
        if isinstance(argument, str):
            return self._attribute(obj, argument)
        try:
            return obj[argument]
        except (TypeError, LookupError):
            return self.undefined(obj=obj, name=argument)

    def _attribute(self, obj: Any, name: str) -> Any:
        """Attribute of a non-mapping value (str, list, number, ...)."""
        if name.startswith("_") or name in BLOCKED_ATTRIBUTES:
            raise TemplateSecurityError(
                f"'{name}' of {type(obj).__name__} values is not accessible from templates"
            )
        if modifies_known_mutable(obj, name):
            raise TemplateSecurityError(
                f"'{name}' would change a {type(obj).__name__}; templates cannot modify data"
            )
        try:
            value = getattr(obj, name)
        except AttributeError:
            return self.undefined(obj=obj, name=name)
        if is_internal_attribute(obj, name):
            raise TemplateSecurityError(f"'{name}' is an interpreter internal")
        return value

    # -- calls and operators ---------------------------------------------------

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if any(obj is allowed for allowed in self._callable_globals):
            return obj(*args, **kwargs)
        if isinstance(obj, Undefined):
            return obj()  # raises: the caller explains which name is missing
        if self._is_safe_method(obj):
            if isinstance(obj.__self__, str):  # count(), find(), split() walk the text
                render_context(context).meter.walk(obj.__self__, *args)
            result = obj(*args, **kwargs)
            if isinstance(result, list):  # split() of a long string
                check_collection(self.limits, len(result), f"the result of {obj.__name__}()")
            if isinstance(result, str | list):
                render_context(context).meter.charge(len(result))
            return result
        raise TemplateSecurityError(
            f"calling {_describe_callable(obj)} is not allowed in templates; only range(), "
            f"the string methods {', '.join(sorted(SAFE_STR_METHODS))} and the object "
            f"methods {', '.join(sorted(MAPPING_METHODS))} may be called (use a filter instead)"
        )

    @staticmethod
    def _is_safe_method(obj: Any) -> bool:
        if not isinstance(obj, _METHOD_TYPES):
            return False
        owner = obj.__self__
        if isinstance(owner, str):
            return obj.__name__ in SAFE_STR_METHODS
        return isinstance(owner, Mapping) and obj.__name__ in MAPPING_METHODS

    def call_filter(
        self,
        name: str,
        value: Any,
        args: Any = None,
        kwargs: Any = None,
        context: Context | None = None,
        eval_ctx: EvalContext | None = None,
    ) -> Any:
        """A filter called by name, as ``map('string')`` does for every item."""
        if context is not None:
            render_context(context).meter.work(CALL_STEPS)
        return super().call_filter(name, value, args, kwargs, context, eval_ctx)

    def call_test(
        self,
        name: str,
        value: Any,
        args: Any = None,
        kwargs: Any = None,
        context: Context | None = None,
        eval_ctx: EvalContext | None = None,
    ) -> Any:
        """A test called by name, as ``select('odd')`` does for every item."""
        if context is not None:
            render_context(context).meter.work(CALL_STEPS)
        return super().call_test(name, value, args, kwargs, context, eval_ctx)

    def walked(self, context: Context, value: Any) -> Any:
        """An operand of a comparison or a slice made, its walk in C counted (see
        ValueCodeGenerator)."""
        render_context(context).meter.walk(value)
        return value

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return apply_binop(self.limits, render_context(context).meter, operator, left, right)

    def concat_values(self, context: Context, values: tuple[Any, ...]) -> str:
        """``a ~ b ~ c``: the values' text (JSON spelling), size-checked before joining."""
        meter = render_context(context).meter
        parts = [to_text(value, self.limits, meter) for value in values]
        total = sum(map(len, parts))
        check_string(self.limits, total, "the joined text")
        meter.charge(total)
        return "".join(parts)
