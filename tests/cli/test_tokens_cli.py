"""`flowledger tokens create|list` with an expiry, as a user types them."""

from __future__ import annotations

import json
import re

from tests.cli.conftest import Cli


def test_a_token_is_created_with_an_expiry_and_listed_with_it(cli: Cli) -> None:
    """Tokens had no expiry: `--expires-in` was no option, and the list said nothing."""
    made = cli("tokens", "create", "contractor", "--expires-in", "30d")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("flt_")
    assert "token 'contractor' (viewer, until " in made.stderr
    assert cli("tokens", "create", "ops", "--role", "admin").returncode == 0
    listed = {doc["name"]: doc for doc in json.loads(cli("tokens", "list", "--json").stdout)}
    assert listed["contractor"]["expiresAt"] is not None
    assert not listed["contractor"]["expired"]
    assert (listed["ops"]["expiresAt"], listed["ops"]["expired"]) == (None, False)
    table = cli("tokens", "list").stdout
    assert "expires" in table.splitlines()[0]
    [ops] = [line for line in table.splitlines() if line.startswith("ops ")]
    assert "never" in ops
    refused = cli("tokens", "create", "x", "--expires-in", "0s")
    assert refused.returncode == 2
    assert "error: --expires-in: must be at least 1s, not 0ms" in refused.stderr


def test_the_list_pages_and_says_who_created_each_token(cli: Cli) -> None:
    """The list was every token at once, and no token said who had made it."""
    for name in ("one", "two", "three"):
        assert cli("tokens", "create", name, USER="ada").returncode == 0
    first = cli("tokens", "list", "--limit", "2", "--json")
    assert first.returncode == 0, first.stderr
    docs = json.loads(first.stdout)
    assert [d["name"] for d in docs] == ["three", "two"]
    assert {d["createdBy"] for d in docs} == {"cli:ada"}
    more = re.search(r"^--cursor (\S+) for more$", first.stderr, re.M)
    assert more is not None, first.stderr
    rest = cli("tokens", "list", "--limit", "2", "--cursor", more[1])
    assert rest.returncode == 0, rest.stderr
    assert "created by" in rest.stdout.splitlines()[0]
    [one] = [line for line in rest.stdout.splitlines() if line.startswith("one ")]
    assert "cli:ada" in one and "for more" not in rest.stdout
