"""Compile-time checks of a parsed expression.

These refuse what can be seen in the text (``__class__``, ``self``, a removed
filter, a statement-only node) with a precise error before anything runs.
The runtime checks in :mod:`flowledger.templates.sandbox` still apply, since
names built at run time (``x[a ~ b]``) cannot be seen here.
"""

from __future__ import annotations

from collections.abc import Iterable

from jinja2 import nodes
from jinja2.filters import FILTERS as JINJA_FILTERS

from flowledger.errors import (
    TemplateError,
    TemplateLimitError,
    TemplateSecurityError,
    TemplateSyntaxError,
)
from flowledger.templates.limits import TemplateLimits

#: Seed-runtime aliases that look like dunders but are plain data names.
ALIAS_NAMES = frozenset({"__steps__", "__context__"})

_ALLOWED_NODES = (
    nodes.BinExpr,
    nodes.UnaryExpr,
    nodes.Name,
    nodes.Const,
    nodes.Tuple,
    nodes.List,
    nodes.Dict,
    nodes.Pair,
    nodes.Keyword,
    nodes.CondExpr,
    nodes.Filter,
    nodes.Test,
    nodes.Call,
    nodes.Getitem,
    nodes.Getattr,
    nodes.Slice,
    nodes.Concat,
    nodes.Compare,
    nodes.Operand,
)
# Where filters that run a test take the test's name.
_TEST_NAME_ARG = {"select": 0, "reject": 0, "selectattr": 1, "rejectattr": 1}


def _is_dunder(name: str) -> bool:
    return name.startswith("__")


def check_expression(
    expr: nodes.Expr,
    filters: Iterable[str],
    tests: Iterable[str],
    limits: TemplateLimits,
) -> None:
    """Raise a :class:`TemplateError` subclass for anything refused in ``expr``."""
    allowed_filters = frozenset(filters)
    allowed_tests = frozenset(tests)
    # Iterative, with each node's depth: compiling and evaluating an expression recurse
    # once per level, so a chain of 5,000 filters or a 20,000-term sum is refused here,
    # before anything recursive sees it.
    stack: list[tuple[nodes.Node, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_expression_depth:
            raise TemplateLimitError(
                f"the expression nests more than {limits.max_expression_depth} operations "
                "deep (chained filters, operators or brackets); split it into steps"
            )
        _check_node(node, allowed_filters, allowed_tests, limits)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


def _check_node(
    node: nodes.Node,
    filters: frozenset[str],
    tests: frozenset[str],
    limits: TemplateLimits,
) -> None:
    if not isinstance(node, _ALLOWED_NODES):
        raise TemplateSyntaxError(f"{type(node).__name__} is not supported in expressions")
    if isinstance(node, nodes.Name):
        if node.name == "self" or (_is_dunder(node.name) and node.name not in ALIAS_NAMES):
            raise TemplateSecurityError(f"the name '{node.name}' is not available in templates")
    elif isinstance(node, nodes.Getattr):
        if _is_dunder(node.attr):
            raise TemplateSecurityError(f"'{node.attr}' is not accessible from templates")
    elif isinstance(node, nodes.Getitem):
        arg = node.arg
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and _is_dunder(arg.value):
            raise TemplateSecurityError(f"'{arg.value}' is not accessible from templates")
    elif isinstance(node, nodes.Const):
        value = node.value
        if isinstance(value, int) and value.bit_length() > limits.max_integer_bits:
            raise TemplateLimitError(
                f"the number literal has {value.bit_length():,} bits; "
                f"the limit is {limits.max_integer_bits:,}"
            )
    elif isinstance(node, nodes.Filter):
        _check_filter_name(node.name, filters)
        _check_named_argument(node, filters, tests)
    elif isinstance(node, nodes.Test):
        _check_test_name(node.name, tests)


def _check_filter_name(name: str, filters: frozenset[str]) -> None:
    if name in filters:
        return
    allowed = ", ".join(sorted(filters))
    error: type[TemplateError] = TemplateSyntaxError
    problem = f"unknown filter '{name}'"
    if name in JINJA_FILTERS:
        error = TemplateSecurityError
        problem = f"the filter '{name}' is not allowed in templates"
    raise error(f"{problem} (allowed filters: {allowed})")


def _check_test_name(name: str, tests: frozenset[str]) -> None:
    if name not in tests:
        raise TemplateSyntaxError(
            f"unknown test '{name}' (available tests: {', '.join(sorted(tests))})"
        )


def _const_str(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None


def _check_named_argument(
    node: nodes.Filter, filters: frozenset[str], tests: frozenset[str]
) -> None:
    """``map('upper')`` and ``select('odd')`` name a filter or a test in a string."""
    by_attribute = any(keyword.key == "attribute" for keyword in node.kwargs)
    if node.name == "map" and node.args and not by_attribute:
        name = _const_str(node.args[0])
        if name is not None:
            _check_filter_name(name, filters)
    position = _TEST_NAME_ARG.get(node.name)
    if position is not None and len(node.args) > position:
        name = _const_str(node.args[position])
        if name is not None:
            _check_test_name(name, tests)
