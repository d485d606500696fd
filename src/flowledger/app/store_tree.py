"""The data store as an execution's page shows it: a bounded tree (the console reads
the whole store), each node with the template expression that reads it."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping
from itertools import islice
from typing import Any

from typing_extensions import TypedDict

from flowledger.app.step_runs import SHOWN_ATTEMPTS
from flowledger.artifacts.service import is_reference

#: The data store tree (store_tree): entries shown of one mapping or list (its first),
#: nodes shown in all (the levels nearest the top first), characters of one text. A 3 x 120
#: nested loop's ``results`` made 2,830 nodes and 1 MB of a 1.5 MB page; the console
#: reads the whole store.
STORE_ENTRIES = 20
STORE_NODES = 300
STORE_TEXT = 1000


class TreeNode(TypedDict):
    """One entry of the data store tree (store_tree)."""

    #: Its key in the mapping, its index in the list; None at the top.
    key: str | int | None
    #: The template expression that reads it (``steps.each.output.results[3]``).
    path: str
    #: ``mapping``, ``list``, ``value``, or ``reference`` (artifact-shaped data: the face
    #: decides whether it is this execution's artifact).
    kind: str
    #: Entries of a mapping or list.
    size: int
    #: A value's (a reference's) data; a text past STORE_TEXT characters is cut.
    value: Any
    #: Characters cut off ``value``.
    cut: int
    children: list[TreeNode]
    #: Entries of a mapping or list not among ``children``.
    more: int


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Names that a template's ``.name`` would not read as a key.
_NOT_DOTTED = frozenset(dir(dict)) | {"true", "false", "none", "True", "False", "None"}


def _member(path: str, key: str | int) -> str:
    """The template expression that reads ``key`` of what ``path`` reads."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _NAME.match(key) and key not in _NOT_DOTTED:
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _tree_node(key: str | int | None, path: str, value: Any) -> TreeNode:
    node: TreeNode = {
        "key": key,
        "path": path,
        "kind": "value",
        "size": 0,
        "value": None,
        "cut": 0,
        "children": [],
        "more": 0,
    }
    if is_reference(value):
        node["kind"], node["value"] = "reference", value
    elif isinstance(value, Mapping):
        node["kind"], node["size"] = "mapping", len(value)
    elif isinstance(value, list | tuple):
        node["kind"], node["size"] = "list", len(value)
    elif isinstance(value, str) and len(value) > STORE_TEXT:
        node["value"], node["cut"] = value[:STORE_TEXT], len(value) - STORE_TEXT
    else:
        node["value"] = value
    return node


def store_tree(store: Mapping[str, Any]) -> tuple[TreeNode, int]:
    """The data store as the page's tree, and how many entries it leaves out: of each
    mapping or list its first STORE_ENTRIES entries (the top two levels, which name the
    steps, up to SHOWN_ATTEMPTS), STORE_NODES nodes in all, the levels nearest the top
    first (a breadth-first walk: a long first branch cannot take every node), texts cut
    at STORE_TEXT characters. Each node has the expression that reads it (the console
    reads the whole store)."""
    root = _tree_node(None, "", store)
    budget = STORE_NODES
    left_out = 0
    queue: deque[tuple[TreeNode, Any, int]] = deque([(root, store, 0)])
    while queue:
        node, value, depth = queue.popleft()
        if node["kind"] not in ("mapping", "list"):
            continue
        most = SHOWN_ATTEMPTS if depth < 2 else STORE_ENTRIES
        take = max(0, min(node["size"], most, budget))
        entries = value.items() if node["kind"] == "mapping" else enumerate(value)
        for key, inner in islice(entries, take):
            child = _tree_node(key, _member(node["path"], key), inner)
            node["children"].append(child)
            queue.append((child, inner, depth + 1))
        budget -= take
        node["more"] = node["size"] - take
        left_out += node["more"]
    return root, left_out
