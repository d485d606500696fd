"""Safe YAML/JSON loading: plain JSON values, precise positions, and fast refusals."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

import pytest
import yaml

from flowledger.definition import source
from flowledger.definition.source import SourceLimits, parse_document, read_document
from flowledger.errors import DefinitionError, Problem

WORKFLOW = """\
name: lead-followup
steps:
  - id: query_leads
    type: sys.query_entity
    input: {entity_type: Lead, limit: 100}
  - id: enrich
    type: sys.http_request
    input:
      url: https://enrich.example.com/v1
      json:
        emails: ["a@x.io", 'b@x.io']
        ratio: 2.5e-1
"""


def refusal(text: str | bytes, limits: SourceLimits | None = None) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse_document(text, "wf.yaml", limits)
    assert all(p.file == "wf.yaml" for p in caught.value.problems)
    return list(caught.value.problems)


def only(text: str | bytes, limits: SourceLimits | None = None) -> Problem:
    problems = refusal(text, limits)
    assert len(problems) == 1, problems
    return problems[0]


# --- what is accepted ------------------------------------------------------------------------


def test_yaml_values_and_positions() -> None:
    doc = parse_document(WORKFLOW, "wf.yaml")
    assert doc.file == "wf.yaml"
    assert doc.data["steps"][1]["input"]["json"] == {"emails": ["a@x.io", "b@x.io"], "ratio": 0.25}
    assert doc.positions[()] == (1, 1)
    assert doc.positions[("name",)] == (1, 7)
    assert doc.key_positions[("name",)] == (1, 1)
    assert doc.positions[("steps", 0)] == (3, 5)
    assert doc.positions[("steps", 0, "input", "limit")] == (5, 39)
    assert doc.key_positions[("steps", 0, "input", "limit")] == (5, 32)
    assert doc.positions[("steps", 1, "input", "url")] == (9, 12)
    assert doc.key_positions[("steps", 1, "input", "url")] == (9, 7)
    assert doc.positions[("steps", 1, "input", "json", "emails", 1)] == (11, 28)
    assert doc.positions[("steps", 1, "input", "json", "ratio")] == (12, 16)


def test_position_falls_back_to_the_nearest_ancestor() -> None:
    doc = parse_document(WORKFLOW)
    assert doc.position(("steps", 1, "input", "url")) == (9, 12)
    assert doc.position(("steps", 1, "input", "url"), key=True) == (9, 7)
    assert doc.position(("steps", 1, "input", "nope", 3)) == (9, 7)  # the input mapping
    assert doc.position(("steps", 1, "input", "nope"), key=True) == (8, 5)  # the `input:` key
    assert doc.position(("elsewhere",)) == (1, 1)
    assert doc.position(("steps", 0), key=True) == (3, 5)  # list items have no key


def test_position_views_behave_as_mappings() -> None:
    doc = parse_document("a: [1, {b: 2}]\nc: x\n")
    assert list(doc.positions) == [(), ("a",), ("a", 0), ("a", 1), ("a", 1, "b"), ("c",)]
    assert len(doc.positions) == 6
    assert list(doc.key_positions) == [("a",), ("a", 1, "b"), ("c",)]
    assert ("a", 1, "b") in doc.positions
    assert ("a", 2) not in doc.positions
    assert ("a", 0, "deeper") not in doc.positions
    with pytest.raises(KeyError):
        doc.key_positions[("a", 0)]


def test_json_with_unicode_escapes_and_positions() -> None:
    value = {"name": "grüße", "emoji": "😀", "path": "a/b", "n": [1, -0.5, 1e3, 12]}
    text = json.dumps(value, indent=2)  # ensure_ascii: \u00fc and the pair \ud83d\ude00
    assert "\\ud83d\\ude00" in text
    doc = parse_document(text.replace("a/b", "a\\/b"), "wf.json")
    assert doc.data == value
    assert doc.positions[("emoji",)] == (3, 12)
    assert doc.key_positions[("n",)] == (5, 3)
    assert doc.positions[("n", 2)] == (8, 5)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"b":[true,null,"x"]}',  # minified
        '{\n\t"a": 1,\n\t"b": [\n\t\ttrue, null, "x"\n\t]\n}',  # indented with tabs
        '\ufeff{"a": 1, "b": [true, null, "x"]}',  # with a byte-order mark
    ],
)
def test_json_layouts(text: str) -> None:
    assert parse_document(text).data == {"a": 1, "b": [True, None, "x"]}


def test_plain_scalars_that_mean_the_same_everywhere() -> None:
    text = "a: true\nb: False\nc: null\nd: ~\ne:\nf: -12\ng: 0\nh: 1.5\ni: 1e3\nj: -2.5E-3\nk: hi\n"
    assert parse_document(text).data == {
        "a": True,
        "b": False,
        "c": None,
        "d": None,
        "e": None,
        "f": -12,
        "g": 0,
        "h": 1.5,
        "i": 1000.0,
        "j": -0.0025,
        "k": "hi",
    }


def test_quoted_and_str_tagged_scalars_are_text() -> None:
    text = "a: 'yes'\nb: \"2026-11-21\"\nc: '0x1F'\nd: !!str 5\ne: \"on\"\n'on': x\nf: |\n  1.0\n"
    assert parse_document(text).data == {
        "a": "yes",
        "b": "2026-11-21",
        "c": "0x1F",
        "d": "5",
        "e": "on",
        "on": "x",
        "f": "1.0\n",
    }


def test_bytes_and_files(tmp_path: FsPath) -> None:
    assert parse_document("ä: ö".encode()).data == {"ä": "ö"}
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    doc = read_document(path)
    assert doc.file == str(path)
    assert doc.data["name"] == "lead-followup"


# --- what is refused, and where --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "path", "needle"),
    [
        # YAML 1.1 booleans, as values and as keys
        ("a: yes\n", (1, 4), ("a",), "write true/false"),
        ("a:\n  - No\n", (2, 5), ("a", 0), "write true/false"),
        ("a: OFF\n", (1, 4), ("a",), "YAML 1.1 boolean"),
        (
            "on: push\n",
            (1, 1),
            ("on",),
            'mapping keys must be strings, and YAML reads on as a boolean; quote it: "on"',
        ),
        # dates
        ("due: 2026-11-21\n", (1, 6), ("due",), 'quote it: "2026-11-21"'),
        ("at: 2026-11-21T10:00:00Z\n", (1, 5), ("at",), "is a date"),
        # numbers that are not plain decimal JSON numbers
        ("a: 0x1F\n", (1, 4), ("a",), "write 31"),
        ("a: 0o17\n", (1, 4), ("a",), "write 15"),
        ("a: 017\n", (1, 4), ("a",), "not a decimal number"),
        ("a: 1_000\n", (1, 4), ("a",), "write 1000"),
        ("a: 12:30\n", (1, 4), ("a",), "not a decimal number"),
        ("a: .inf\n", (1, 4), ("a",), "not a JSON number"),
        ("a: -.Inf\n", (1, 4), ("a",), "not a JSON number"),
        ("a: .NaN\n", (1, 4), ("a",), "not a JSON number"),
        ("delay: 1e309\n", (1, 8), ("delay",), "too large"),
        # JSON's missing numbers, as JavaScript and Python spell them: not the text "NaN"
        ('{"x": NaN}', (1, 7), ("x",), "NaN is not a JSON number"),
        ('{"x": [-Infinity]}', (1, 8), ("x", 0), "-Infinity is not a JSON number"),
        ("a: inf\n", (1, 4), ("a",), 'quote it ("inf") if you mean text'),
        # a .json file's own syntax (trailing commas, comments): see the test below
        # NUL, which PostgreSQL stores in neither text nor JSON
        ('{"d": "a\\u0000b"}', (1, 7), ("d",), "a NUL character (U+0000)"),
        ('a: "x\\0"\n', (1, 4), ("a",), "a NUL character (U+0000)"),
        ('"k\\0": 1\n', (1, 1), ("k\x00",), "a NUL character (U+0000)"),
        # tags
        ("a: !!binary aGVsbG8=\n", (1, 4), ("a",), "the YAML tag !!binary is not supported"),
        ("a: !!set {p, q}\n", (1, 4), ("a",), "!!set"),
        ("a: !!omap [x: 1]\n", (1, 4), ("a",), "!!omap"),
        (
            "x: !!python/object/apply:os.system [id]\n",
            (1, 4),
            ("x",),
            "!!python/object/apply:os.system",
        ),
        ("a: !Ref thing\n", (1, 4), ("a",), "the YAML tag !Ref"),
        ("a: !!int '5'\n", (1, 4), ("a",), "!!int"),
        # keys that are not strings
        ("1: a\n", (1, 1), ("1",), 'YAML reads 1 as a number; quote it: "1"'),
        ("x:\n  1.5: a\n", (2, 3), ("x", "1.5"), "as a number"),
        ("true: a\n", (1, 1), ("true",), "as a boolean"),
        ("null: a\n", (1, 1), ("null",), "as null"),
        ("~: a\n", (1, 1), ("~",), "as null"),
        ("? [a, b]\n: c\n", (1, 3), (), "this key is a list"),
        ("{? {a: 1} : c}\n", (1, 4), (), "this key is a mapping"),
        ("<<: {a: 1}\n", (1, 1), ("<<",), "merge keys (<<) are not supported"),
        ("? \n: v\n", (1, 2), ("",), "mapping keys must be strings, and this one is empty"),
        # aliases and anchors
        ("a: &x [1]\nb: *x\n", (1, 4), ("a",), "YAML anchors (&x) are not supported"),
        ("a: 1\nb: *x\n", (2, 4), ("b",), "YAML aliases (*x) are not supported; repeat the value"),
        # documents
        ("a: 1\n---\nb: 2\n", (2, 1), (), "more than one YAML document"),
        ("---\na: 1\n---\n", (3, 1), (), "more than one YAML document"),
        ("", (1, 1), (), "the file is empty"),
        ("# nothing but a comment\n", (1, 1), (), "the file is empty"),
        ("---\n", (1, 1), (), "the file is empty"),
        # text that is not valid
        ('a: "\\ud83d"\n', (1, 5), (), "\\ud83d is half of a UTF-16 surrogate pair"),
        ('["\\ud83d\\ude00", "\\udc00"]', (1, 19), (), "\\udc00 is half of a UTF-16"),
        ("a: [1, 2\nb: 3\n", (2, 2), (), "invalid YAML"),
        ("a:\n\t- 1\n", (2, 1), (), "invalid YAML"),
        ("a: b\x01\n", (1, 5), (), "control character #x0001"),
        ("a: 'ü'\nb: x\x01\n", (2, 5), (), "control character #x0001"),
    ],
)
def test_refusals_are_located(
    text: str, where: tuple[int, int], path: tuple[str | int, ...], needle: str
) -> None:
    problem = only(text)
    assert needle in problem.message
    assert (problem.line, problem.column) == where
    assert problem.path == path


def test_invalid_utf8_bytes() -> None:
    problem = only(b"name: ok\nbad: caf\xe9\n")
    assert "not valid UTF-8" in problem.message
    assert (problem.line, problem.column) == (2, 9)


def test_lone_surrogate_in_a_python_string() -> None:
    problem = only("a: b\ud800")
    assert "invalid Unicode character" in problem.message
    assert (problem.line, problem.column) == (1, 5)


@pytest.mark.parametrize("word", ["nan", "NaN", "inf", "-Infinity"])
def test_a_bare_nan_or_inf_key_is_text(word: str) -> None:
    """YAML reads a bare ``nan:`` key as text (only ``.nan`` is a number); it was refused
    as "YAML reads nan as a number"."""
    assert parse_document(f"{word}: 1\nx: {{{word}: 2}}\n", "d.yaml").data == {
        word: 1,
        "x": {word: 2},
    }
    assert "as a number" in only(".nan: 1\n").message


def test_duplicate_keys_at_two_levels_are_all_reported() -> None:
    text = "name: a\nsteps:\n  - id: one\n    type: t\n    id: two\n    id: three\nname: b\n"
    problems = refusal(text)
    assert [(p.line, p.column, p.path) for p in problems] == [
        (5, 5, ("steps", 0, "id")),
        (6, 5, ("steps", 0, "id")),
        (7, 1, ("name",)),
    ]
    assert problems[0].message == "duplicate key 'id' (first defined on line 3); keep only one"
    assert "first defined on line 1" in problems[2].message


def test_duplicate_keys_in_json() -> None:
    problem = only('{"a": 1,\n "b": {"c": 1, "c": 2}}')
    assert (problem.line, problem.column, problem.path) == (2, 16, ("b", "c"))


def test_every_problem_is_reported_up_to_a_cap() -> None:
    problems = refusal("a: yes\nb: 2026-01-01\nc: [on, 0x10]\n")
    assert [(p.line, p.path) for p in problems] == [
        (1, ("a",)),
        (2, ("b",)),
        (3, ("c", 0)),
        (3, ("c", 1)),
    ]
    many = "".join(f"k{i}: yes\n" for i in range(500))
    assert len(refusal(many)) == 50


def test_problem_format_is_file_line_column() -> None:
    assert only("a: yes\n").format().startswith("wf.yaml:1:4: a: yes is a YAML 1.1 boolean")


# --- hostile documents are refused fast ------------------------------------------------------

BILLION_LAUGHS = "\n".join(
    [
        'lol: &lol "lol"',
        "lol1: &lol1 [*lol, *lol, *lol, *lol, *lol, *lol, *lol, *lol, *lol, *lol]",
        *(f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 10)}]" for i in range(2, 10)),
        "bomb: *lol9",
    ]
)

BOMB_342 = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize("bomb", [BILLION_LAUGHS, BOMB_342])
def test_billion_laughs(bomb: str) -> None:
    problem = only(bomb)
    assert problem.message.startswith("YAML anchors (&")
    assert (problem.line, problem.column) == (1, bomb.index("&") + 1)


def test_the_compact_bomb_is_tiny() -> None:
    assert len(BOMB_342.encode()) == 342


def test_aliases_alone_are_refused_before_expansion() -> None:
    # Anchors are refused first; an alias to nothing is refused too, never expanded.
    text = "a: [" + ", ".join(["*x"] * 10_000) + "]"
    problem = only(text)
    assert (problem.line, problem.column, problem.path) == (1, 5, ("a", 0))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        "{a: " * 100_000 + "1" + "}" * 100_000,
        "- " * 100_000 + "x",
        "".join(" " * i + "a:\n" for i in range(100)),
    ],
    ids=["flow-sequences", "flow-mappings", "block-sequences", "block-mappings"],
)
def test_deep_nesting_is_refused_without_recursion(text: str) -> None:
    problem = only(text)
    assert problem.message == "the document nests deeper than 64 levels; flatten it"
    assert len(problem.path) == 64


def test_depth_limit_is_exact() -> None:
    limits = SourceLimits(max_depth=3)
    assert parse_document("a: {b: [1]}", limits=limits).data == {"a": {"b": [1]}}
    problem = only("a: {b: [[1]]}", limits)
    assert (problem.line, problem.column, problem.path) == (1, 9, ("a", "b", 0))


def test_too_many_nodes() -> None:
    text = "[" + "1," * 450_000 + "1]"  # 900 KB: under the byte limit
    problem = only(text)
    assert problem.message == "the document has more than 400,000 values; split it up"
    small = SourceLimits(max_nodes=5)  # keys count: {a: [1, 2]} is five nodes
    assert parse_document("a: [1, 2]", limits=small).data == {"a": [1, 2]}
    assert only("a: [1, 2, 3]", small).path == ("a", 2)


def test_too_many_bytes() -> None:
    problem = only("a: " + "x" * 5_000_000)
    assert "the document is too large" in problem.message
    assert "4,194,304 bytes" in problem.message
    assert "(20 bytes)" in only(b"a: 0123456789abcdefg", SourceLimits(max_bytes=10)).message
    # multi-byte characters count as the bytes they take
    assert "(12 bytes)" in only("ä" * 6, SourceLimits(max_bytes=10)).message


def test_a_5_mb_file_is_not_read(tmp_path: FsPath) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"a: [" + b"1, " * 1_750_000 + b"1]\n")
    with pytest.raises(DefinitionError) as caught:
        read_document(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert "too large (5,250,007 bytes)" in problem.message


def test_missing_file(tmp_path: FsPath) -> None:
    with pytest.raises(DefinitionError) as caught:
        read_document(tmp_path / "nope.yaml")
    (problem,) = caught.value.problems
    assert problem.message == "cannot read the file: No such file or directory"
    assert problem.file == str(tmp_path / "nope.yaml")


def test_the_pure_python_parser_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Used where PyYAML was built without libyaml: same values, positions and refusals.
    fast = parse_document(WORKFLOW)
    monkeypatch.setattr(source, "_LOADER", yaml.SafeLoader)
    slow = parse_document(WORKFLOW)
    assert slow.data == fast.data
    assert dict(slow.positions) == dict(fast.positions)
    assert dict(slow.key_positions) == dict(fast.key_positions)
    assert parse_document('{"e": "\\ud83d\\ude00"}').data == {"e": "😀"}
    assert "unpaired" in only('{"e": "\\ud83d"}').message
    assert "YAML aliases (*x)" in only("a: *x").message
    assert "nests deeper than 64" in only("[" * 100_000).message


def test_single_letters_y_and_n_stay_text() -> None:
    assert parse_document("point: {x: 1, y: 2}\nanswer: n\n").data == {
        "point": {"x": 1, "y": 2},
        "answer": "n",
    }


def test_a_json_file_is_read_as_json(tmp_path: FsPath) -> None:
    """Trailing commas and comments, which YAML would take, are JSON syntax errors."""
    for text, where in (
        ('{"name": "x", "steps": [],}', (1, 27)),
        ('{"name": "x", // no\n "steps": []}', (1, 15)),
    ):
        path = tmp_path / "w.json"
        path.write_text(text)
        with pytest.raises(DefinitionError) as caught:
            read_document(path)
        (problem,) = caught.value.problems
        assert problem.message.startswith("invalid JSON: ")
        assert (problem.line, problem.column) == where
    (tmp_path / "w.json").write_text('{"name": "x", "v": "\\ud83d\\ude00"}')
    assert read_document(tmp_path / "w.json").data["v"] == "\U0001f600"
