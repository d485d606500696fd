"""The CLI's consoles show the control characters in data instead of sending them."""

from __future__ import annotations

import io
from pathlib import Path

from rich.table import Table
from rich.text import Text

from flowledger.cli.terminal import SafeConsole, visible
from tests.cli.conftest import Cli

ATTACK = "bad \x1b[2J\x1b]0;title\x07 \x9b1m\x7f end"


def test_control_characters_are_shown_as_pictures() -> None:
    assert visible(ATTACK) == "bad ␛[2J␛]0;title␇ \\u009b1m␡ end"
    assert visible("tab\tand\nlines") == "tab\tand\nlines"
    # A right-to-left override makes "exe.txt" read as "txt.exe": shown, not obeyed.
    # Those without pictures are named by their escape, as the web shows them (they
    # were all U+FFFD, which says nothing of which).
    assert visible("invoice\u202etxt.exe") == "invoice\\u202etxt.exe"
    assert visible("a\u2066b\u2069c\u200fd") == "a\\u2066b\\u2069c\\u200fd"
    assert visible("grüße ✓ שלום") == "grüße ✓ שלום"  # text in any script stays


def test_nothing_a_console_prints_carries_them_but_its_own_styles_do() -> None:
    buffer = io.StringIO()
    console = SafeConsole(
        file=buffer, force_terminal=True, color_system="standard", width=200, highlight=False
    )
    table = Table("id", "note")
    table.add_row("a", ATTACK)
    table.add_row("b", Text(ATTACK, style="red"))
    console.print(Text(f"error: {ATTACK}", style="red"))
    console.print(table)
    console.print(ATTACK, markup=False)
    shown = buffer.getvalue()
    assert "\x1b[2J" not in shown and "\x1b]0;" not in shown and "\x9b" not in shown
    assert shown.count("␛[2J") == 4
    assert "\x1b[31m" in shown  # the console's own colour codes still go out


def test_the_real_command_shows_them(cli_process: Cli, tmp_path: Path) -> None:
    """Piped, as a log collector reads it: the event lines, the error and the list."""
    definition = tmp_path / "fail.yaml"
    definition.write_text(
        "name: f\nsteps:\n  - {id: f, type: sys.fail, input: {message: '{{ input.p }}'}}\n"
    )
    ran = cli_process("run", str(definition), "--input", '{"p": "x \\u001b[2J y"}')
    listed = cli_process("executions", "list", "--correlation-id", "nope")
    shown = ran.stdout + ran.stderr + listed.stdout
    assert "\x1b" not in shown
    assert shown.count("x ␛[2J y") >= 2  # the failed events, and the error line


def test_a_table_sizes_its_cells_for_what_it_shows_and_keeps_every_character() -> None:
    """Shown after the table measured its cells: the text after a U+202E was cut (the
    escape is wider than the character), and BEL, CR and BS vanished from cells."""
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, width=80, color_system=None)
    table = Table("id", "note")
    table.add_row("a", '{"v": "abc\u202edef ghi jkl"}')
    table.add_row("b", "one\x07two\rthree\bfour")
    console.print(table)
    shown = buffer.getvalue()
    assert '{"v": "abc\\u202edef ghi jkl"}' in shown, shown
    assert "one␇two␍three␈four" in shown, shown
