"""Splitting a template string into literal text and ``{{ expr }}`` parts.

Jinja's own lexer finds the expressions, so ``{{ "}}" }}`` works, and its
parser parses each one. Statements (``{% %}``) and comments (``{# #}``) are
refused: a workflow template is data with expressions, never a program.
The literal text is cut from the original string, so ``\\r\\n`` and a trailing
newline survive exactly (Jinja's lexer would normalise them).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

import jinja2
from jinja2 import nodes

from flowledger.errors import TemplateError, TemplateLimitError, TemplateSyntaxError
from flowledger.templates.checks import check_expression
from flowledger.templates.sandbox import SandboxEnvironment

_QUOTE_LIMIT = 160
_NOT_SUPPORTED = {
    "block_begin": "statements such as {% if %} or {% for %}",
    "raw_begin": "statements such as {% raw %}",
    "linestatement_begin": "line statements",
    "comment_begin": "comments {# ... #}",
    "linecomment_begin": "line comments",
}


def contains_template(text: str) -> bool:
    """True when ``text`` holds ``{{`` and so must be compiled as a template."""
    return "{{" in text


def quote(text: str) -> str:
    """``text`` in double quotes for a message, shortened when long."""
    text = text.strip()
    if len(text) > _QUOTE_LIMIT:
        text = text[: _QUOTE_LIMIT - 1] + "…"
    return f'"{text}"'


def locate(error: TemplateError, expression: str, source: str) -> TemplateError:
    """The same error, its message saying which expression it is about."""
    kind = "template syntax error" if isinstance(error, TemplateSyntaxError) else "template error"
    return type(error)(f"{kind} in {quote(expression)}: {error.message}", source=source)


def syntax_error(source: str, detail: str) -> TemplateError:
    return locate(TemplateSyntaxError(detail), source, source)


@dataclass(frozen=True)
class ParsedTemplate:
    """Literal text around each expression: ``literals[i]`` comes before ``sources[i]``."""

    literals: tuple[str, ...]
    sources: tuple[str, ...]
    expressions: tuple[nodes.Expr, ...]


def _lex(env: SandboxEnvironment, source: str, lexable: str) -> list[tuple[int, str, str]]:
    most = env.limits.max_template_tokens
    try:
        # Spaces between tokens are tokens of their own, at most one between two others:
        # 2 * most + 2 of all kinds hold more than ``most`` that are not spaces.
        tokens = list(islice(env.lex(lexable), 2 * most + 2))
    except jinja2.TemplateSyntaxError as exc:
        raise syntax_error(source, exc.message or "invalid template") from None
    if sum(kind != "whitespace" for _, kind, _ in tokens) > most:
        # Parsing and compiling cost ~15 us a token: 400 KB of `1 < 1 < ...` took 11 s.
        raise TemplateLimitError(
            f"the template {quote(source)} has more than {most:,} tokens (names, operators, "
            "literals); compute large values in a step, not in one expression",
            source=source,
        )
    for _, kind, _ in tokens:
        if kind in _NOT_SUPPORTED:
            raise syntax_error(
                source,
                f"{_NOT_SUPPORTED[kind]} are not supported; each {{{{ ... }}}} holds one "
                "expression, so use an expression (a if cond else b) or a filter "
                "(items|map(attribute='id')|join(', ')) instead",
            )
    return tokens


def split_template(env: SandboxEnvironment, source: str) -> tuple[list[str], list[str]]:
    """The literal texts and the raw ``{{ ... }}`` sources, in order."""
    # Same length as ``source``, so token lengths are offsets into ``source`` too.
    lexable = source.replace("\r", "\n")
    tokens = _lex(env, source, lexable)
    literals: list[str] = []
    sources: list[str] = []
    position = 0
    index = 0
    while index < len(tokens):
        if tokens[index][1] != "variable_begin":
            index += 1
            continue
        begin = tokens[index][2]
        start = lexable.find("{{", position)
        length = 0
        while index < len(tokens) and tokens[index][1] != "variable_end":
            length += len(tokens[index][2])
            index += 1
        if index == len(tokens):
            unclosed = TemplateSyntaxError("the expression is not closed with '}}'")
            raise locate(unclosed, source[start:], source)
        length += len(tokens[index][2])
        index += 1
        literal = source[position:start]
        literals.append(literal.rstrip() if begin.endswith("-") else literal)
        expression = source[start : start + length]
        # '-}}' swallows the whitespace after it into the token; keep it out of the source.
        sources.append(expression[: expression.rindex("}}") + 2])
        position = start + length
    literals.append(source[position:])
    return literals, sources


def _parse_expression(env: SandboxEnvironment, text: str, source: str) -> nodes.Expr:
    try:
        tree = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        detail = exc.message or "invalid expression"
        raise locate(TemplateSyntaxError(detail), text, source) from None
    except ValueError:  # an integer literal longer than Python converts
        detail = "a number in the expression has too many digits"
        raise locate(TemplateLimitError(detail), text, source) from None
    exprs = [
        child
        for output in tree.body
        if isinstance(output, nodes.Output)
        for child in output.nodes
        if not isinstance(child, nodes.TemplateData)
    ]
    if len(exprs) != 1 or len(tree.body) != 1:
        raise locate(TemplateSyntaxError("expected exactly one expression"), text, source)
    return exprs[0]


def parse_template(env: SandboxEnvironment, source: str) -> ParsedTemplate:
    """Lex, parse and check every expression of ``source``."""
    try:
        literals, sources = split_template(env, source)
        expressions = []
        for text in sources:
            expr = _parse_expression(env, text, source)
            try:
                check_expression(expr, env.filters, env.tests, env.limits)
            except TemplateError as exc:
                raise locate(exc, text, source) from None
            expressions.append(expr)
    except RecursionError:
        raise TemplateLimitError(
            f"the template {quote(source)} is nested too deeply", source=source
        ) from None
    return ParsedTemplate(tuple(literals), tuple(sources), tuple(expressions))
