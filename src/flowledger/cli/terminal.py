"""The command line's consoles: they show control characters in data instead of sending
them to the terminal.

An execution's data (a webhook body, an input, an error message, a prompt, a correlation
id) may hold escape sequences that would clear an operator's screen, recolour it or
retitle the window if printed as they are. Every text segment a console renders passes
through :class:`SafeConsole.render`, so no print site can forget it: a C0 control
character becomes its Unicode control picture (ESC shows as ␛), DEL ␡, and a C1 or
bidirectional one its escape (``\\u202e``), as the web shows it. Tabs and line breaks
stay. Which characters: :mod:`flowledger.controls`, the rule the web follows too. Rich's
own codes (styles, cursor moves of the live view) are not in the text and are untouched.
JSON output (``--json``) escapes them already.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

from flowledger.controls import CONTROL


def _picture(match: re.Match[str]) -> str:
    code = ord(match[0])
    if code < 0x20:
        return chr(0x2400 + code)
    # C1 and the bidirectional controls have no pictures: their escape names which it was.
    return "\u2421" if code == 0x7F else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with its control characters (but tabs and line breaks) shown, not sent."""
    return CONTROL.sub(_picture, text)


class SafeConsole(Console):
    """A Rich console whose rendered text never carries control characters."""

    def render_str(self, text: str, **options: Any) -> Text:
        """Text made from a string (a printed one, a table cell): its control characters
        shown before Rich measures it and drops some (BEL, CR, BS), so a table sizes its
        columns for what it will show and cuts nothing after a ``\\u202e``."""
        return super().render_str(visible(text) if CONTROL.search(text) else text, **options)

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and CONTROL.search(segment.text):
                yield Segment(visible(segment.text), segment.style)
            else:
                yield segment


def discard_output(console: Console) -> None:
    """The reader of ``console``'s stream went away (a closed pipe): send what is still
    buffered and all that follows to the null device, and print nothing more."""
    console.quiet = True
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, console.file.fileno())
    finally:
        os.close(null)
