"""Property-based fuzzing of what reads operator input: the CSV/JSONL readers, the filter language, the mapper.

Whatever the input, the only exception that may come out is the documented :class:`InputError`, whose
``str()`` is one line; valid input round-trips exactly. Runs are derandomized (same examples on every
run, no example database); ``SEGPORT_FUZZ_EXAMPLES=5000 pytest tests -k fuzz`` explores further.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path
from typing import Any, Literal

import pytest
import requests
import responses
from hypothesis import assume, example, given
from hypothesis import strategies as st

from segport.errors import InputError
from segport.filters import KEYWORDS, MAX_DEPTH, MAX_LENGTH, Filter, parse
from segport.http import json_body
from segport.pipeline.mapper import Mapped, Mapper, _unicode_email, email_problem, email_syntax_ok, normalise_email
from segport.readers import MAX_FIELD_CHARS, ProfileRow, read_profiles, read_segment_keys


def one_line(error: Exception) -> str:
    """The error's message, checked to be one non-empty line."""
    message = str(error)
    assert message.strip(), f"empty message from {type(error).__name__}"
    assert len(message.splitlines()) == 1, f"multi-line message: {message!r}"  # also U+2028, U+0085, ...
    return message


def mixed(specials: str, chars: st.SearchStrategy[str], max_size: int) -> st.SearchStrategy[str]:
    """Text where ``specials`` are about half the characters.

    ``st.text(st.one_of(st.sampled_from(specials), chars))`` would almost never show them: text()
    merges its alphabet into code-point intervals and draws evenly from those.
    """
    return st.lists(st.one_of(st.sampled_from(specials), chars), max_size=max_size).map("".join)


# -- JSON-like values ------------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=10,
)
# What standard JSON can hold (json.dumps writes infinity as ``Infinity``, which loading refuses).
finite_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=10,
)

# ==================================================================================================
# Readers
# ==================================================================================================
HUGE = MAX_FIELD_CHARS + 1
FRAGMENTS = [
    b"id",
    b"email",
    b"id,email",
    b",",
    b'"',
    b'""',
    b"\r",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b"#",
    b"\x00",
    b"\xef\xbb\xbf",  # UTF-8 BOM
    b"\xff\xfe",  # UTF-16 LE BOM
    b"\xfe\xff",
    b"\xff",
    b"\xc3",  # a truncated two-byte sequence
    b"\xc3\xa9",
    b"\xed\xa0\x80",  # an encoded surrogate: invalid UTF-8
    b"\xe2\x80\xa8",  # U+2028: splitlines() breaks there, file iteration does not
    b"\xc2\x85",  # U+0085 NEL
    b"\x0b\x0c\x1c\x1d\x1e",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b'{"id": 1, "email": "a@b.co"}',
    b'{"id": " "}',
    b'{"id": null}',
    b'{"id": [1]}',
    b'{"id": "\\ud800"}',  # a lone surrogate escape
    b'{"id": "x", "n": "\\udc00\\ud800"}',
    b'{"id": "x", "n": NaN, "m": -Infinity}',
    b'{"id": 1e999}',
    b'{"id": 1, "id": 2}',
    b"null",
    b"[]",
    b'"text"',
]
BIG = {  # built on demand: a strategy holding them would print megabytes in its repr
    "digits": b"1" * 5000,  # more digits than int() accepts
    "deep": b"[" * 3000,  # deeper than the JSON parser's recursion limit
    "field": b"x" * HUGE,  # a field just over the CSV limit
    "quoted": b'"' + b"x" * HUGE + b'"',
}
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-7"]
csv_ish = mixed('id,email"\r\n\t #{}[]:é\ufeff', st.characters(), 40)
file_bytes = st.one_of(
    st.lists(
        st.one_of(
            st.sampled_from(FRAGMENTS),
            st.sampled_from(sorted(BIG)).map(BIG.__getitem__),
            st.binary(max_size=6),
            csv_ish.map(lambda text: text.encode("utf-8", "surrogatepass")),  # surrogates: invalid UTF-8
        ),
        max_size=25,
    ).map(b"".join),
    st.tuples(csv_ish, st.sampled_from(ENCODINGS)).map(lambda t: t[0].encode(t[1], errors="replace")),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def written(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def profiles_or_error(path: Path, key: str, fmt: str) -> list[ProfileRow] | InputError:
    try:
        return list(read_profiles(path, key=key, fmt=fmt))
    except InputError as exc:
        return exc


def keys_or_error(path: Path, key: str, fmt: str) -> list[tuple[int, str]] | InputError:
    try:
        return list(read_segment_keys(path, key=key, fmt=fmt))
    except InputError as exc:
        return exc


def check_error(error: InputError, path: Path) -> None:
    message = one_line(error)
    assert path.name in message, message


def check_lines(lines: list[int]) -> None:
    assert all(line >= 1 for line in lines)
    assert lines == sorted(set(lines)), "row lines must strictly increase"


@given(data=file_bytes, key=st.sampled_from(["id", "email"]))
@example(data=b'{"id": "\\ud800"}\n', key="id")  # a lone surrogate: was accepted, then crashed the store/mapper
@example(data=b'{"id": "x", "n": ' + b"[" * 500 + b"]" * 500 + b"}\n", key="id")
@example(data=b"\xef\xbb\xbfid\r\n\x00\r\n", key="id")
@example(data=b'id\n"' + b"x" * HUGE + b'"\n', key="id")
def test_any_file_gives_rows_or_one_input_error(folder: Path, data: bytes, key: str) -> None:
    """Every reader, every format: rows that respect the contract, or one InputError line naming the file."""
    path = written(folder, "people.data", data)
    for fmt in ("csv", "jsonl"):
        result = profiles_or_error(path, key, fmt)
        if isinstance(result, InputError):
            check_error(result, path)
            continue
        check_lines([row.line for row in result])
        for row in result:
            assert row.key and row.key == row.key.strip()
            assert isinstance(row.attrs, dict) and key in row.attrs
            value = row.attrs[key]
            if fmt == "csv":
                assert all(isinstance(v, str) for v in row.attrs.values())
                assert value.strip() == row.key
            else:
                assert value.strip() == row.key if isinstance(value, str) else str(value) == row.key
            # Whatever was read must be storable: the store writes attrs as UTF-8 JSON text.
            json.dumps(row.attrs, ensure_ascii=False).encode("utf-8")
    for fmt in ("csv", "jsonl", "lines"):
        keys = keys_or_error(path, key, fmt)
        if isinstance(keys, InputError):
            check_error(keys, path)
            continue
        check_lines([line for line, _ in keys])
        for _line, value in keys:
            assert value and value == value.strip()
            value.encode("utf-8")
            assert fmt != "lines" or not value.startswith("#")


# -- CSV round trip --------------------------------------------------------------------------------
cell_chars = st.characters(codec="utf-8", exclude_characters="\x00")
names = st.text(cell_chars, min_size=1, max_size=12).filter(lambda s: s == s.strip())
cells = mixed(',"\r\n \t', cell_chars, 15)
key_cells = cells.filter(lambda s: bool(s.strip()))


@st.composite
def csv_tables(draw: st.DrawFn) -> tuple[str, list[str], list[list[str]]]:
    """``(key, header, rows)``: unique stripped column names, the key among them, a non-blank key per row."""
    header = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    index = draw(st.integers(0, len(header) - 1))
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        row = [draw(cells) for _ in header]
        row[index] = draw(key_cells)
        rows.append(row)
    return header[index], header, rows


@given(
    table=csv_tables(),
    newline=st.sampled_from(["\r\n", "\n", "\r"]),
    bom=st.booleans(),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
)
@example(
    table=("id", ["note", "id"], [["x\r\ny", " a "], ["", "b"], ['"q"\r', "c"]]),
    newline="\r",
    bom=True,
    quoting=csv.QUOTE_MINIMAL,
)
def test_valid_csv_round_trips(
    folder: Path,
    table: tuple[str, list[str], list[list[str]]],
    newline: str,
    bom: bool,
    quoting: Literal[0, 1, 2, 3],
) -> None:
    """A file csv.writer wrote is read back exactly: keys (stripped), every value, and each row's first line."""
    key, header, rows = table
    if len(header) == 1 and any(not row[0].strip() for row in rows):
        return  # a one-column row of spaces is a blank line by design
    if quoting == csv.QUOTE_MINIMAL and any(c in cell for row in [header, *rows] for cell in row for c in "\r\n"):
        quoting = csv.QUOTE_ALL  # QUOTE_MINIMAL quotes only the characters of the writer's own line terminator
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=newline, quoting=quoting)
    writer.writerow(header)
    starts = []
    for row in rows:
        starts.append(len(io.StringIO(buffer.getvalue(), newline="").readlines()) + 1)
        writer.writerow(row)
    path = written(folder, "round.csv", ("\ufeff" if bom else "").encode() + buffer.getvalue().encode("utf-8"))
    read = list(read_profiles(path, key=key))
    assert [r.key for r in read] == [row[header.index(key)].strip() for row in rows]
    assert [r.attrs for r in read] == [dict(zip(header, row, strict=True)) for row in rows]
    assert [r.line for r in read] == starts
    assert list(read_segment_keys(path, key=key)) == [(r.line, r.key) for r in read]


# -- JSONL round trip ------------------------------------------------------------------------------
@st.composite
def jsonl_objects(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    key = draw(st.sampled_from(["id", "email", "clé", "a b"]))
    keys = st.one_of(key_cells, st.integers())
    objects = [
        {**draw(st.dictionaries(st.text(max_size=6), finite_json_values, max_size=5)), key: draw(keys)}
        for _ in range(draw(st.integers(1, 6)))
    ]
    return key, objects


@given(
    doc=jsonl_objects(),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    ascii_only=st.booleans(),
    blank=st.sampled_from(["", " ", "\t"]),
)
def test_valid_jsonl_round_trips(
    folder: Path, doc: tuple[str, list[dict[str, Any]]], newline: str, bom: bool, ascii_only: bool, blank: str
) -> None:
    """Objects json.dumps wrote, with blank lines between, come back equal, with their line numbers."""
    key, objects = doc
    lines = [line for obj in objects for line in (json.dumps(obj, ensure_ascii=ascii_only), blank)]
    path = written(folder, "round.jsonl", ("\ufeff" if bom else "").encode() + newline.join(lines).encode("utf-8"))
    read = list(read_profiles(path, key=key))
    assert [r.attrs for r in read] == objects
    expected = [o[key].strip() if isinstance(o[key], str) else str(o[key]) for o in objects]
    assert [r.key for r in read] == expected
    assert [r.line for r in read] == list(range(1, 2 * len(objects), 2))


# ==================================================================================================
# Filter language
# ==================================================================================================
FIELD_POOL = ["a", "b", "country", "address.city", "x-1", "first name", "and", "In", "é", "a`b"]
WS = st.sampled_from([" ", "  ", "\t", "\n", " \r\n "])
IDENT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
profile_values = st.recursive(
    st.one_of(
        json_scalars,
        st.floats(),  # nan and infinities too: JSON files may hold NaN / Infinity
        st.sampled_from(["", " ", "1", " 42 ", "3.0", "1e3", "1e999", "9" * 5000, "true", "No", "FR", "2024-01-31"]),
        st.integers(-(10**30), 10**30),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FIELD_POOL), inner)),
    max_leaves=6,
)
profiles = st.dictionaries(st.one_of(st.sampled_from(FIELD_POOL), st.text(max_size=5)), profile_values, max_size=6)


def keyword(draw: st.DrawFn, word: str) -> str:
    """A keyword in random letter case."""
    return "".join(c.upper() if draw(st.booleans()) else c for c in word)


@st.composite
def field_names(draw: st.DrawFn) -> tuple[str, str]:
    """``(source text, field name)``: plain where the name allows, else (or by choice) in backquotes."""
    name = draw(st.one_of(st.sampled_from(FIELD_POOL), st.text(min_size=1, max_size=6)))
    plain = name[0] in IDENT_CHARS and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)
    if plain and name.lower() not in KEYWORDS and draw(st.booleans()):
        return name, name
    return "`" + name.replace("`", "``") + "`", name


@st.composite
def text_literals(draw: st.DrawFn) -> str:
    value = draw(mixed("'\"\\\n\t `", st.characters(), 8))
    quote = draw(st.sampled_from("'\""))
    body = value.replace("\\", "\\\\").replace(quote, "\\" + quote)
    if draw(st.booleans()):
        body = body.replace("\n", "\\n").replace("\t", "\\t")
    return quote + body + quote


@st.composite
def number_literals(draw: st.DrawFn) -> str:
    whole = str(draw(st.integers(-(10**12), 10**12)))
    digits = str(draw(st.integers(0, 10**6)))
    exponent = draw(st.sampled_from(["", "e3", "E-2", "e+10", "e0"]))
    form = draw(st.sampled_from(["{w}", "{w}.{d}", "{w}.", ".{d}", "-.{d}"]))
    return form.format(w=whole, d=digits) + exponent


@st.composite
def literals(draw: st.DrawFn, *, ordered: bool = False, nullable: bool = True) -> str:
    kinds = ["str", "num"] if ordered else ["str", "num", "bool"] + (["null"] if nullable else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "str":
        return draw(text_literals())
    if kind == "num":
        return draw(number_literals())
    return keyword(draw, draw(st.sampled_from(["true", "false"])) if kind == "bool" else "null")


@st.composite
def conditions(draw: st.DrawFn) -> tuple[str, frozenset[str]]:
    """One valid condition as text, with the field it names."""
    source, name = draw(field_names())

    def w() -> str:
        return draw(WS)

    kind = draw(st.sampled_from(["eq", "order", "in", "contains", "empty"]))
    if kind == "eq":
        op = draw(st.sampled_from(["=", "==", "!=", "<>"]))
        text = f"{source}{w()}{op}{w()}{draw(literals())}"
    elif kind == "order":
        op = draw(st.sampled_from(["<", "<=", ">", ">="]))
        text = f"{source}{w()}{op}{w()}{draw(literals(ordered=True))}"
    elif kind == "in":
        values = draw(st.lists(literals(), min_size=1, max_size=4))
        trailing = "," if draw(st.booleans()) else ""
        negate = keyword(draw, "not") + w() if draw(st.booleans()) else ""
        text = f"{source}{w()}{negate}{keyword(draw, 'in')}{w()}({w().join(v + ',' for v in values)[:-1]}{trailing})"
    elif kind == "contains":
        negate = keyword(draw, "not") + w() if draw(st.booleans()) else ""
        text = f"{source}{w()}{negate}{keyword(draw, 'contains')}{w()}{draw(literals(nullable=False))}"
    else:
        negate = w() + keyword(draw, "not") if draw(st.booleans()) else ""
        text = f"{source}{w()}{keyword(draw, 'is')}{negate}{w()}{keyword(draw, 'empty')}"
    return text, frozenset({name})


def _combine(inner: st.SearchStrategy[tuple[str, frozenset[str]]]) -> st.SearchStrategy[tuple[str, frozenset[str]]]:
    joined = st.tuples(inner, st.sampled_from(["and", "AND", "or", "Or"]), inner, WS)
    return st.one_of(
        st.tuples(inner, WS).map(lambda t: (f"not{t[1]}{t[0][0]}", t[0][1])),
        st.tuples(inner, WS).map(lambda t: (f"({t[1]}{t[0][0]}{t[1]})", t[0][1])),
        joined.map(lambda t: (f"{t[0][0]}{t[3]}{t[1]}{t[3]}{t[2][0]}", t[0][1] | t[2][1])),
    )


expressions = st.recursive(conditions(), _combine, max_leaves=6)


def equivalent(one: Filter, other: Filter, samples: list[dict[str, Any]]) -> None:
    """Same canonical text, same fields, same verdict on every sample profile."""
    assert str(one) == str(other)
    assert one.fields == other.fields
    for attrs in samples:
        assert one.matches(attrs) == other.matches(attrs), (str(one), attrs)


@given(expr=expressions, samples=st.lists(profiles, max_size=4))
@example(expr=("`a``b` in ('x',)", frozenset({"a`b"})), samples=[{"a`b": ["x"]}])
def test_valid_expressions_parse_and_round_trip(
    expr: tuple[str, frozenset[str]], samples: list[dict[str, Any]]
) -> None:
    """A grammatical expression parses, names its fields, and its canonical text parses to an equal filter."""
    text, fields = expr
    parsed = parse(text)
    assert parsed.source == text
    assert parsed.fields == fields
    again = parse(str(parsed))
    equivalent(parsed, again, samples)
    assert str(parse(str(again))) == str(again)  # canonical text is a fixed point


@given(left=expressions, right=expressions, attrs=profiles)
def test_connectives_mean_what_they_say(
    left: tuple[str, frozenset[str]], right: tuple[str, frozenset[str]], attrs: dict[str, Any]
) -> None:
    """``and``/``or``/``not`` and the negated operators agree with Python's logic on any profile."""
    a, b = parse(left[0]), parse(right[0])
    assert parse(f"({left[0]}) and ({right[0]})").matches(attrs) == (a.matches(attrs) and b.matches(attrs))
    assert parse(f"({left[0]}) OR ({right[0]})").matches(attrs) == (a.matches(attrs) or b.matches(attrs))
    assert parse(f"not ({left[0]})").matches(attrs) == (not a.matches(attrs))


@given(field=field_names(), value=literals(), values=st.lists(literals(), min_size=1, max_size=3), attrs=profiles)
def test_negated_operators_are_exact_negations(
    field: tuple[str, str], value: str, values: list[str], attrs: dict[str, Any]
) -> None:
    """``!=``/``<>``, ``not in``, ``not contains`` and ``is not empty`` are exactly ``not`` of their positive form."""
    f = field[0]
    listed = ", ".join(values)
    pairs = [
        (f"{f} != {value}", f"{f} = {value}"),
        (f"{f} <> {value}", f"{f} == {value}"),
        (f"{f} not in ({listed})", f"{f} in ({listed})"),
        (f"{f} is not empty", f"{f} is empty"),
    ]
    if not value.lower().startswith("null"):
        pairs.append((f"{f} not contains {value}", f"{f} contains {value}"))
    for negative, positive in pairs:
        assert parse(negative).matches(attrs) == (not parse(positive).matches(attrs)), (negative, attrs)
    # ``in`` is ``=`` on any of its values
    assert parse(f"{f} in ({listed})").matches(attrs) == any(parse(f"{f} = {v}").matches(attrs) for v in values)


TOKENS = [
    *sorted(KEYWORDS),
    *("NOT", "=", "==", "!=", "<>", "<", "<=", ">", ">=", "=>", "!", "===", "(", ")", ",", "'", '"', "`", "``"),
    *("'a'", '"b\\"', "'\\x'", "\\", "1", "-1", "1.5.5", "1e999", "1x", ".", "9" * 5000, "a", "b.c", "`a``b`"),
    *("\n", "\u2028", "\x00", "é"),
]
token_soup = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=3)), max_size=30).map(" ".join)
glued_soup = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=3)), max_size=30).map("".join)


@given(text=st.one_of(token_soup, glued_soup, st.text(), expressions.map(lambda e: e[0][:-1])), attrs=profiles)
@example(text="(" * (MAX_DEPTH + 1) + "a = 1" + ")" * (MAX_DEPTH + 1), attrs={})
@example(text="not " * (MAX_DEPTH + 1) + "a = 1", attrs={})
@example(text="a = 1 or " * (MAX_LENGTH // 9 - 1) + "a = 1", attrs={"a": 1})
@example(text="a = '\n", attrs={})
def test_any_text_gives_a_filter_or_one_input_error(text: str, attrs: dict[str, Any]) -> None:
    """parse() returns a Filter that round-trips and matches without raising, or raises one InputError line."""
    try:
        parsed = parse(text)
    except InputError as exc:
        one_line(exc)
        return
    assert isinstance(parsed, Filter)
    equivalent(parsed, parse(str(parsed)), [attrs, {}])


# ==================================================================================================
# Mapper
# ==================================================================================================
SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])  # what JSON escapes can decode to
any_text = st.one_of(  # text() draws code points evenly: four surrogates in an alphabet would almost never show
    st.text(max_size=30),
    st.tuples(st.text(max_size=10), SURROGATES, st.text(max_size=10)).map("".join),
)
emailish = st.one_of(
    any_text,
    st.emails().map(str.upper),
    st.tuples(SURROGATES, st.emails()).map(
        "".join
    ),  # half a character (from a JSON escape) in a valid address  # normalisation must bring a valid address back
    st.tuples(st.sampled_from(["", " ", "\t", "\n", "\u3000", "\x1c"]), st.emails()).map(lambda t: t[0] + t[1] + t[0]),
    st.text(st.sampled_from("aZ@.-_ \u0130\u1e9e\u00df\u212a\ud800"), max_size=20),
)


@given(value=st.one_of(emailish, json_scalars, st.floats()))
@example(value="\u0130@X.CO")  # İ: lower() gives i + combining dot
@example(value="A\ud800@b.co")
def test_normalise_email_is_idempotent_lower_and_trimmed(value: Any) -> None:
    email = normalise_email(value)
    assert isinstance(email, str)
    assert email == email.strip()
    assert email == email.lower()
    assert normalise_email(email) == email
    problem = email_problem(email)
    assert problem is None or (isinstance(problem, str) and problem)
    if problem is None:
        email.encode("utf-8")  # an accepted address can be sent and stored


@given(email=st.emails())
def test_valid_addresses_are_accepted(email: str) -> None:
    assert email_problem(normalise_email(email)) is None, email


@given(email=st.one_of(any_text, emailish, st.emails()))
@example(email="\U0001f600@b.co")  # beyond the BMP: refused
@example(email="a@\u00e9.\ud7ff\ue000")
@example(email="a@b.c\u00e9")
def test_the_ascii_fast_path_agrees_with_the_full_syntax(email: str) -> None:
    assert email_syntax_ok(email) == bool(_unicode_email().match(email))


@given(email=any_text)
def test_email_problem_never_raises(email: str) -> None:
    problem = email_problem(email)
    assert problem is None or isinstance(problem, str)


attribute_values = st.one_of(json_values, st.floats(), any_text, st.tuples(st.integers()))
attribute_dicts = st.dictionaries(
    st.one_of(st.sampled_from(["email", "first", "last", "name", "first+last"]), st.text(max_size=6)),
    attribute_values,
    max_size=6,
)
mappings = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.sampled_from(["first", "last", "first+last", " first + last ", "missing", "a+"]), st.text(max_size=6)),
    max_size=5,
)


def with_email(attrs: dict[str, Any], email: str | None) -> dict[str, Any]:
    return attrs if email is None else {**attrs, "email": email}


@given(
    attrs=attribute_dicts,
    email=st.one_of(st.none(), st.emails(), emailish),
    mapping=mappings,
    email_field=st.sampled_from(["email", "mail", ""]),
)
@example(attrs={"first": "\ud800"}, email="a@b.co", mapping={"FNAME": "first"}, email_field="email")
def test_mapper_returns_a_record_or_a_reason(
    attrs: dict[str, Any], email: str | None, mapping: dict[str, str], email_field: str
) -> None:
    attrs = with_email(attrs, email)
    mapper = Mapper(email_field, mapping)
    result = mapper.map(attrs)
    if isinstance(result, str):
        assert result
        return
    assert isinstance(result, Mapped)
    assert result.email == normalise_email(attrs.get(email_field))
    assert email_problem(result.email) is None
    assert set(result.fields) == set(mapping)
    assert len(result.digest) == 16
    # Stable: the same data in another order, or a deep copy, hashes the same.
    shuffled = dict(reversed(list(copy.deepcopy(attrs).items())))
    again = Mapper(email_field, dict(reversed(list(mapping.items())))).map(shuffled)
    assert isinstance(again, Mapped) and again.digest == result.digest
    assert mapper.fingerprint == Mapper(email_field, dict(reversed(list(mapping.items())))).fingerprint


def _json_finite(value: Any) -> bool:
    """Return whether ``value`` holds no NaN or infinity (standard JSON can carry it)."""
    try:
        json.dumps(value, allow_nan=False, default=str)
    except ValueError:
        return False
    return True


@given(
    attrs=attribute_dicts,
    email=st.emails(),
    field=st.sampled_from(["first", "last", "other"]),
    new=st.one_of(json_values, any_text),
)
def test_digest_changes_with_the_fields(attrs: dict[str, Any], email: str, field: str, new: Any) -> None:
    """A different mapped value (or address) gives a different digest; an equal one the same digest."""
    # A non-finite number (which loading refuses) makes the record a reject: tested on its own.
    assume(_json_finite(attrs.get(field)) and _json_finite(new))
    mapper = Mapper("email", {"F": field})
    before = mapper.map(with_email(attrs, email))
    after = mapper.map(with_email({**attrs, field: new}, email))
    assert isinstance(before, Mapped) and isinstance(after, Mapped)
    same = json.dumps(before.fields, sort_keys=True) == json.dumps(after.fields, sort_keys=True)
    assert (before.digest == after.digest) == same, (before.fields, after.fields)
    other = mapper.map(with_email(attrs, "x" + email))
    assert isinstance(other, Mapped) and other.digest != before.digest


# ==================================================================================================
# HTTP answers (plugins' parsers are fuzzed in tests/plugins/*/test_fuzz.py)
# ==================================================================================================
def test_a_deeply_nested_answer_is_no_document() -> None:
    """A body nested past the JSON parser's recursion limit is 'not JSON' (None), like any other broken body."""
    url = "https://api.example.test/deep"
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.get(url, body=b"[" * 100_000)
        assert json_body(requests.get(url, timeout=5)) is None
