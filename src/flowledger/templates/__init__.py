"""Safe, fast Jinja2 expression templates for workflow definitions.

A string containing ``{{`` is a template. Exactly one ``{{ expr }}`` (with
optional surrounding whitespace) evaluates to the expression's native value;
anything else renders to text, with values spelled the JSON way (``true``,
``false``, ``null``, compact JSON for objects and lists). Only expressions
are supported: no statements, no comments. Templates run in a sandbox with
size limits (:class:`TemplateLimits`); every failure is a
:class:`~flowledger.errors.TemplateError` subclass.

    engine = TemplateEngine()
    engine.compile("{{ steps.q.output.totalCount }}").render(data_store)
"""

from flowledger.templates.compiler import Template, TemplateEngine
from flowledger.templates.limits import TemplateLimits
from flowledger.templates.parsing import contains_template
from flowledger.templates.references import Reference
from flowledger.templates.value import TemplatedValue

__all__ = [
    "Reference",
    "Template",
    "TemplateEngine",
    "TemplateLimits",
    "TemplatedValue",
    "contains_template",
]
