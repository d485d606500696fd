"""``flowledger executions list --input PATH=VALUE``: executions found by what they
were started with, paged with ``--cursor``; a bad filter is refused naming the option."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import Cli

ORDER = """\
name: order
steps:
  - {id: done, type: sys.no_action}
"""


def _started(cli: Cli, tmp_path: Path, given: dict[str, object]) -> str:
    (tmp_path / "order.yaml").write_text(ORDER)
    started = cli("start", str(tmp_path / "order.yaml"), "--input", json.dumps(given))
    assert started.returncode == 0, started.stderr
    return started.stdout.strip()


def test_list_finds_executions_by_their_input(cli: Cli, tmp_path: Path) -> None:
    made = [
        _started(cli, tmp_path, {"orderId": i, "customer": {"id": i % 2, "name": f"c{i}"}})
        for i in range(5)
    ]
    typed = _started(cli, tmp_path, {"orderId": "3"})

    def found(*args: str) -> list[str]:
        listed = cli("executions", "list", "--json", *args)
        assert listed.returncode == 0, listed.stderr
        return [doc["id"] for doc in json.loads(listed.stdout)]

    assert found("--input", "orderId=3") == [made[3]]
    assert found("--input", 'orderId="3"') == [typed]
    assert found("--input", "customer.name=c2") == [made[2]]  # not JSON: the text
    assert found("--input", "customer.id=1", "--input", "orderId=3") == [made[3]]
    assert found("--input", "customer.id=1", "--input", "orderId=2") == []
    assert found("--input", "orderId=3", "--workflow", "order", "--status", "Failed") == []

    table = cli("executions", "list", "--input", "customer.id=0", "--limit", "2")
    assert table.returncode == 0, table.stderr
    assert made[4] in table.stdout and made[2] in table.stdout and made[0] not in table.stdout
    cursor = re.search(r"--cursor (\S+)", table.stdout)
    assert cursor is not None, table.stdout
    rest = found("--input", "customer.id=0", "--limit", "2", "--cursor", cursor.group(1))
    assert rest == [made[0]]
    other = cli("executions", "list", "--input", "customer.id=1", "--cursor", cursor.group(1))
    assert other.returncode == 2 and "other filters" in other.stderr


def test_a_bad_input_filter_is_refused_naming_the_option(cli: Cli) -> None:
    cases = [
        (["orderId"], "error: --input: \"orderId\" has no '='; give PATH=VALUE, e.g. orderId=1234"),
        (["=5"], "error: --input: the path before '=' is empty; name a key of the input"),
        (["a.=5"], 'error: --input: the path "a." has an empty key'),
        (["order id=5"], 'error: --input: the path "order id" has "order id", which is not a key'),
        (["tags=[1]"], 'error: --input: the value "[1]" is an object or an array'),
        ([f"k{i}=1" for i in range(11)], "error: --input: 11 input filters given; at most 10"),
    ]
    for given, words in cases:
        args = [arg for text in given for arg in ("--input", text)]
        refused = cli("executions", "list", *args)
        assert refused.returncode == 2, (given, refused.stdout)
        assert refused.stderr.startswith(words), (given, refused.stderr)
        assert refused.stdout == ""
