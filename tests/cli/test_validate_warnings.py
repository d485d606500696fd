"""``flowledger validate`` prints the definition's warnings as ``workflows push`` does,
on stderr, and still exits 0 (tour 25 L4)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli

HOOKED = """\
name: hooked
triggers:
  - {type: webhook, path: tour-in, auth: none}
steps:
  - {id: s, type: sys.transform, input: {value: "{{ input.email }}"}}
"""


def test_validate_warns_of_a_webhook_body_no_schema_checks(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "hooked.yaml"
    path.write_text(HOOKED)
    result = cli("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: ok (hooked, 1 step)\n"
    assert result.stderr.startswith(
        f"warning: {path}: triggers[0]: the webhook on path 'tour-in' takes any body, "
        "unchecked: the workflow has no input_schema"
    )
