"""The data store as an execution's page shows it (app.store_tree); how the page bounds
a large one: tests/app/test_views.py."""

from __future__ import annotations

from flowledger.app.store_tree import STORE_TEXT, store_tree


def test_the_tree_s_expressions_read_each_key_and_long_texts_are_cut() -> None:
    tree, left_out = store_tree(
        {"steps": {"a b": {"items": [1]}, "ok": "x" * (STORE_TEXT + 5)}, "input": {}}
    )
    assert left_out == 0
    [steps, _] = tree["children"]
    odd, text = steps["children"]
    assert odd["path"] == 'steps["a b"]' and odd["children"][0]["path"] == 'steps["a b"]["items"]'
    assert text["path"] == "steps.ok" and text["cut"] == 5 and len(text["value"]) == STORE_TEXT
    assert (steps["kind"], steps["size"]) == ("mapping", 2)
