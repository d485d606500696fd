"""Where ``{{ secrets.NAME }}`` may appear in a definition, and which names it declares.

A secret may only flow where it is *sent*: the top-level input fields a step type
declares secret (``sys.http_request``'s ``url``, ``headers``, ``query``, ``body`` and
``json``). Everywhere else (``sys.transform``, ``sys.set_variable``, entity writes,
sub-workflow input, artifact names, ``when``, loop items, the workflow's ``output``,
trigger mappings) its value would be stored or passed on, and no redaction can follow a
value through ``|upper`` or a slice; so the definition is refused, with the place. In
the send fields a secret is sent whole: a part of it (``secrets.X[6:]``) is refused too,
as a server echoing it back would have it stored in clear.
Names must be constant (``secrets.NAME``, not ``secrets[x]``): the set of names an
execution may read is then known from its definition alone, and every process that
writes for it redacts those values (:class:`flowledger.codec.Codec`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flowledger.definition.strictness import checking_new
from flowledger.errors import Path, TemplateError, format_path
from flowledger.templates import Template, contains_template

ROOT = "secrets"
_WHERE = (
    "a secret may only be sent: use it in sys.http_request's url, headers, query, body "
    "or json (or an input field a step type declares secret)"
)


def template_strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    """Every template string inside a JSON-like value, with its path (iteratively)."""
    stack: list[tuple[Path, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if contains_template(item):
                yield where, item
        elif isinstance(item, Mapping):
            stack.extend(((*where, key), child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend(((*where, i), child) for i, child in enumerate(item))


def check_secrets(
    document: Any,
    allowed: set[Path],
    compile_source: Callable[[str], Template],
    report: Callable[[str, Path], None],
) -> frozenset[str]:
    """Report every ``secrets`` read outside an ``allowed`` place (a path prefix); return
    the names the definition reads."""
    names: set[str] = set()
    for path, source in template_strings(document, ()):
        if "secrets" not in source:
            continue
        try:
            template = compile_source(source)
        except TemplateError:
            continue  # reported where templates are compiled
        for reference in template.references:
            if reference.root != ROOT:
                continue
            first = reference.path[0] if reference.path else None
            if not isinstance(first, str):
                report(
                    "secrets must be read by a constant name, like {{ secrets.API_KEY }}, "
                    "so that the names a workflow uses are known before it runs",
                    path,
                )
                continue
            if not any(path[: len(prefix)] == prefix for prefix in allowed):
                where = format_path(path)
                report(f"secrets.{first} cannot be used in {where}: {_WHERE}", path)
                continue
            computed = _computed_uses(source) if checking_new() else ()
            if computed:
                report(
                    f"secrets.{first} must be sent as it is (or through "
                    f"{', '.join(sorted(_KEEPS_IT))}), not {computed[0]}: a value computed "
                    "from a secret that a server echoes back could not be redacted",
                    path,
                )
                continue
            if (len(reference.path) > 1 or not reference.complete) and checking_new():
                # A server that echoes a slice back would have it stored in clear: the
                # redaction knows the whole value (and its usual encodings), not its parts.
                report(
                    f"secrets.{first} must be sent whole, not a part of it (a slice, an "
                    "index): a part that a server echoes back could not be redacted",
                    path,
                )
                continue
            names.add(first)
    return frozenset(names)


#: Filters and methods whose result the redaction still finds (a spelling it knows):
#: the value as it is, upper- or lower-cased, URL-encoded, as text or JSON text.
_KEEPS_IT = frozenset({"upper", "lower", "urlencode", "string", "tojson"})


def _computed_uses(source: str) -> tuple[str, ...]:
    """How ``source`` computes something from a secret (``| reverse``, ``| length``, a
    comparison, a method call), each said in a few words; empty when it only sends it."""
    from jinja2 import Environment, nodes

    try:
        tree = Environment(autoescape=True).parse(source)  # parsed only, never rendered
    except Exception:  # reported where templates are compiled
        return ()
    found: list[str] = []
    for node in tree.find_all((nodes.Filter, nodes.Test, nodes.Compare, nodes.Call)):
        if isinstance(node, nodes.Filter) and _reads_secret(node.node):
            if node.name not in _KEEPS_IT:
                found.append(f"| {node.name}")
        elif isinstance(node, nodes.Test) and _reads_secret(node.node):
            found.append(f"is {node.name}")
        elif isinstance(node, nodes.Compare) and (
            _reads_secret(node.expr) or any(_reads_secret(op.expr) for op in node.ops)
        ):
            found.append("a comparison")
        elif (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.Getattr)
            and _reads_secret(node.node.node)
            and node.node.attr not in _KEEPS_IT
        ):
            found.append(f".{node.node.attr}()")
    return tuple(found)


def _reads_secret(node: object) -> bool:
    """``node`` is a read of ``secrets`` (``secrets.X``, ``secrets['X']``, ...)."""
    from jinja2 import nodes

    while isinstance(node, nodes.Getattr | nodes.Getitem):
        node = node.node
    return isinstance(node, nodes.Name) and node.name == ROOT
