"""Tests for segport.filters: the --where filter language."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from segport.errors import InputError
from segport.filters import MAX_DEPTH, MAX_LENGTH, Filter, parse


def m(expr: str, **attrs: Any) -> bool:
    """Whether ``expr`` matches a profile with ``attrs``."""
    return parse(expr).matches(attrs)


# --- precedence and parentheses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "attrs", "expected"),
    [
        ("a = 1 or b = 1 and c = 1", {"a": 1}, True),  # a or (b and c)
        ("a = 1 or b = 1 and c = 1", {"b": 1}, False),
        ("(a = 1 or b = 1) and c = 1", {"a": 1}, False),
        ("(a = 1 or b = 1) and c = 1", {"a": 1, "c": 1}, True),
        ("not a = 1 and b = 1", {"b": 1}, True),  # (not a) and b
        ("not a = 1 and b = 1", {"a": 1, "b": 1}, False),
        ("not (a = 1 and b = 1)", {"a": 1}, True),
        ("not a = 1 or a = 1", {"a": 1}, True),
        ("not not a = 1", {"a": 1}, True),
        ("((a = 1))", {"a": 1}, True),
        ("a = 1 and b = 1 and c = 1", {"a": 1, "b": 1, "c": 1}, True),
        ("a = 1 and b = 1 and c = 1", {"a": 1, "b": 1}, False),
        ("a = 1 or b = 1 or c = 1", {"c": 1}, True),
        ("a = 1 or b = 1 or c = 1", {}, False),
        ("(a = 1 or b = 1) or (c = 1 and d = 1)", {"c": 1, "d": 1}, True),
    ],
)
def test_precedence(expr: str, attrs: dict[str, Any], expected: bool) -> None:
    assert parse(expr).matches(attrs) is expected


def test_keywords_are_case_insensitive() -> None:
    f = parse("NOT a IS EMPTY And b In ('x') oR c CONTAINS 'y' AnD d = TRUE or e = Null")
    assert f.matches({"a": "1", "b": "x"})
    assert f.matches({"c": "xyz", "d": "yes"})
    assert f.matches({"e": ""})
    assert not f.matches({"a": "1", "b": "z", "e": "v"})
    assert not f.matches({"a": "1", "b": "X", "c": "y", "d": "no", "e": 0})
    assert str(f) == (
        "not a is empty and b in ('x') or c contains 'y' and d = true or e = null"
    )


# --- = and != ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "value", "expected"),
    [
        ("x = 'FR'", "FR", True),
        ("x = 'FR'", " FR ", True),  # attribute whitespace is stripped
        ("x = 'FR'", "fr", False),  # case-sensitive
        ("x == 'FR'", "FR", True),
        ('x = "FR"', "FR", True),
        ("x = 42", "42", True),
        ("x = 42", " 42 ", True),
        ("x = 42", 42, True),
        ("x = 42", 42.0, True),
        ("x = 42", "42.0", True),
        ("x = '42'", 42, True),
        ("x = 3", "3.0", True),
        ("x = 3.0", 3, True),
        ("x = 1e3", "1000", True),
        ("x = -12", "-12", True),
        ("x = 0.5", ".5", True),
        ("x = 42", "43", False),
        ("x = 42", "42abc", False),
        ("x = 42", "nan", False),
        ("x = 'nan'", float("nan"), True),  # not a number: compared as the text "nan"
        ("x = 'NaN'", float("nan"), False),
        ("x = 12345678901234567890", "12345678901234567891", False),  # exact, not float
        ("x = 12345678901234567890", 12345678901234567890, True),
        ("x = 3.5", 3.5, True),
        ("x = 3.5", "3.50", True),
        ("x = 'abc'", 3.5, False),
        ("x = '1_000'", "1000", False),  # underscores are not numbers
        ("x = 'inf'", "inf", True),  # not a number, but the same text
        ("x = true", True, True),
        ("x = true", False, False),
        ("x = true", "TRUE", True),
        ("x = true", "yes", True),
        ("x = true", " Yes ", True),
        ("x = true", "1", True),
        ("x = true", 1, True),
        ("x = true", "no", False),
        ("x = true", "maybe", False),
        ("x = false", "0", True),
        ("x = false", "False", True),
        ("x = false", "NO", True),
        ("x = false", False, True),
        ("x = false", 0, True),
        ("x = false", None, False),
        ("x = false", "", False),
        ("x = 'true'", True, True),  # a boolean attribute against boolean-looking text
        ("x = 'yes'", True, True),
        ("x = 1", True, True),
        ("x = 0", True, False),
        ("x = 'FR'", True, False),
        ("x = null", None, True),
        ("x = null", "", True),
        ("x = null", "   ", True),
        ("x = null", [], True),
        ("x = null", {}, True),
        ("x = null", "FR", False),
        ("x = null", 0, False),
        ("x = null", False, False),
        ("x = ''", "", True),
        ("x = ''", None, True),
        ("x = 'FR'", None, False),
        ("x = 'FR'", "", False),
        ("x = 0", None, False),
        ("x = 'FR'", ["DE", "FR"], True),
        ("x = 'FR'", ["DE", "BE"], False),
        ("x = 42", ["1", "42"], True),
        ("x = 'FR'", ("FR",), True),
        ("x = null", ["", None], False),  # a list with elements is not empty
        ("x = \"{'a': 1}\"", {"a": 1}, True),  # other values compare through str()
    ],
)
def test_equals(expr: str, value: Any, expected: bool) -> None:
    f = parse(expr)
    assert f.matches({"x": value}) is expected
    for op in ("!=", "<>"):
        negated = parse(expr.replace("==", "=").replace("=", op, 1))
        assert negated.matches({"x": value}) is (not expected)


def test_missing_attribute() -> None:
    assert not m("country = 'FR'")
    assert m("country != 'FR'")
    assert m("country <> 'FR'")
    assert m("country = null")
    assert not m("country != null")
    assert not m("country = false")
    assert not m("country < 'z'")
    assert not m("country > 0")
    assert not m("country in ('FR', 'DE')")
    assert m("country not in ('FR', 'DE')")
    assert not m("country contains 'F'")
    assert m("country not contains 'F'")
    assert m("country is empty")
    assert not m("country is not empty")


# --- ordering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "value", "expected"),
    [
        ("x > 18", "20", True),
        ("x > 18", "9", False),  # numeric, not text
        ("x > 18", 20, True),
        ("x > 18", 18, False),
        ("x >= 18", 18, True),
        ("x >= 18", "18.0", True),
        ("x < 18", 17.5, True),
        ("x <= 18", "18", True),
        ("x < -1", "-2", True),
        ("x < 1e3", "999", True),
        ("x > '9'", "10", True),  # numeric text on both sides compares as numbers
        ("x > 'b'", "c", True),
        ("x > 'b'", "a", False),
        ("x > 'B'", "a", True),  # text comparison is by code point
        ("x < 18", "abc", False),  # text comparison: "abc" > "18"
        ("x > 18", "abc", True),
        ("x >= '2024-01-01'", "2024-03-05", True),
        ("x >= '2024-01-01'", "2023-12-31", False),
        ("x < '2024-01-01T00:00:00'", "2023-12-31T23:59:59", True),
        ("x < 18", None, False),
        ("x < 18", "", False),
        ("x > ''", "", False),
        ("x < 'z'", "  ", False),
        ("x < 18", [], False),
        ("x > 18", ["3", "40"], True),  # any element
        ("x > 18", ["3", "4"], False),
        ("x > 18", float("inf"), True),  # text: "inf" > "18"
    ],
)
def test_ordering(expr: str, value: Any, expected: bool) -> None:
    assert parse(expr).matches({"x": value}) is expected


# --- in / not in ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FR", True),
        ("DE", True),
        ("BE", False),
        ("1", True),
        (1.0, True),
        ("2", False),
        (None, True),  # null in the list
        ("", True),
        (["BE", "DE"], True),
        (["BE", "NL"], False),
        ("yes", True),  # true in the list
        (True, True),
    ],
)
def test_in(value: Any, expected: bool) -> None:
    f = parse("x in ('FR', \"DE\", 1, null, true,)")
    assert f.matches({"x": value}) is expected
    assert parse("x not in ('FR', \"DE\", 1, null, true)").matches({"x": value}) is (not expected)


def test_in_without_null_and_single_value() -> None:
    assert not m("x in ('FR')", x=None)
    assert m("x not in ('FR')")
    assert m("x in (42)", x="42")
    assert m("x in ('FR')", x=" FR")


# --- contains ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "value", "expected"),
    [
        ("x contains 'gmail'", "john@GMail.com", True),
        ("x contains 'GMAIL'", "john@gmail.com", True),
        ("x contains 'yahoo'", "john@gmail.com", False),
        ("x contains 12", "a12b", True),
        ("x contains 12", 312, True),
        ("x contains 'vip'", ["new", "vip"], True),
        ("x contains 'vip'", ["new", "vipx"], False),  # membership, not substring
        ("x contains 42", ["1", "42"], True),  # membership uses =
        ("x contains 'k'", {"k": 1}, True),  # key test on an object
        ("x contains 'v'", {"k": "v"}, False),
        ("x contains 'a'", None, False),
        ("x contains 'a'", "", False),
        ("x contains 'a'", [], False),
        ("x contains ''", "abc", True),
        ("x contains true", [True], True),
    ],
)
def test_contains(expr: str, value: Any, expected: bool) -> None:
    assert parse(expr).matches({"x": value}) is expected
    negated = parse(expr.replace("contains", "not contains"))
    assert negated.matches({"x": value}) is (not expected)


# --- is empty ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "empty"),
    [
        (None, True),
        ("", True),
        ("  \t", True),
        ([], True),
        ({}, True),
        ("x", False),
        (0, False),
        (False, False),
        (0.0, False),
        ([""], False),
        ({"a": None}, False),
    ],
)
def test_is_empty(value: Any, empty: bool) -> None:
    assert parse("x is empty").matches({"x": value}) is empty
    assert parse("x is not empty").matches({"x": value}) is (not empty)
    assert parse("not x is empty").matches({"x": value}) is (not empty)


def test_is_empty_on_missing() -> None:
    assert m("x is empty", y=1)
    assert not m("x is not empty", y=1)


# --- fields, quoting, escapes -------------------------------------------------------------


def test_backquoted_fields() -> None:
    assert m("`first name` = 'Ann'", **{"first name": "Ann"})
    assert m("`it``s` = 1", **{"it`s": "1"})
    assert m("`and` = 1", **{"and": 1})
    assert m("`é` = 1", é=1)
    f = parse("`first name` = 'Ann' and `a``b` = 1 and `or` = 2 and `plain` = 3")
    assert f.fields == frozenset({"first name", "a`b", "or", "plain"})
    assert str(f) == "`first name` = 'Ann' and `a``b` = 1 and `or` = 2 and plain = 3"


def test_dots_and_dashes_are_part_of_a_name() -> None:
    f = parse("address.city = 'Paris' and utm-source = 'x' and _x1 = 1")
    assert f.fields == frozenset({"address.city", "utm-source", "_x1"})
    assert f.matches({"address.city": "Paris", "utm-source": "x", "_x1": 1})
    assert not f.matches({"address": {"city": "Paris"}, "utm-source": "x", "_x1": 1})


def test_fields() -> None:
    f = parse("a = 1 or (b in (1, 2) and not c is empty) or d contains 'x' or a > 2")
    assert f.fields == frozenset({"a", "b", "c", "d"})
    assert isinstance(f.fields, frozenset)
    assert f.source == "a = 1 or (b in (1, 2) and not c is empty) or d contains 'x' or a > 2"


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\\b'", "a\\b"),
        (r"'a\nb'", "a\nb"),
        (r"'a\tb'", "a\tb"),
        ("\"it's\"", "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        ("''", ""),
        ("'  x '", "  x "),
        ("'é ✓'", "é ✓"),
    ],
)
def test_string_escapes(literal: str, value: str) -> None:
    f = parse(f"x contains {literal}")  # on an object: an exact key test
    assert f.matches({"x": {value: 1}})
    assert parse(str(f)).matches({"x": {value: 1}})
    assert not f.matches({"x": {value + "?": 1}})


def test_code_in_a_string_is_just_a_value(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    for expr in (
        f'x = "{payload}"',
        "x contains \"__import__('os')\"",
        f"`{payload}` = 1",
        'x = "__import__(\'os\')" or x = "{0.__class__}"',
    ):
        f = parse(expr)
        assert not f.matches({"x": "safe"})
        assert not marker.exists()
    assert m(f'x = "{payload}"', x=payload)
    assert m("x contains \"__import__('os')\"", x=payload)
    assert parse(f"`{payload}` = 1").fields == frozenset({payload})
    assert not marker.exists()
    with pytest.raises(InputError):
        parse("__import__('os').system('true')")


def test_filter_is_immutable() -> None:
    f = parse("a = 1")
    with pytest.raises(AttributeError):
        f.source = "b = 1"  # type: ignore[misc]
    assert isinstance(f, Filter)
    assert "a = 1" in repr(f)


# --- canonical text ------------------------------------------------------------------------

ROUND_TRIP = [
    "country = 'FR'",
    "country=='FR'",
    "a = 1 or b = 2 and not c = 3",
    "(a = 1 or b = 2) and c = 3",
    "not (a = 1 or b = 2)",
    "not not a = 1",
    "NOT a > 3 OR b <= '2024-01-01'",
    "x <> -2.5",
    "x != 1e3",
    "x in ('a', \"b\", 3, null, true, false,)",
    "x not in (1)",
    "x is empty and y is not empty",
    "x contains 'it\\'s' or x not contains \"a\\\\b\\n\\t\"",
    "`first name` = 'Ann' and `a``b` >= 2 and `not` < 3",
    "a = 1 and (b = 2 and (c = 3 or (d = 4)))",
    "((a = 1) or (b = 2)) or c = 3",
    "x = '__import__(\"os\")'",
    "x = true or y = FALSE or z = Null",
]
PROFILES: list[dict[str, Any]] = [
    {},
    {"country": "FR", "a": 1, "b": "2", "c": 3.0, "x": "a", "first name": "Bob"},
    {"a": "3", "b": 2, "c": "3", "d": 4, "x": ["b", "z"], "y": "", "z": None},
    {"a": 5, "b": "2024-01-01", "x": "it's", "first name": "Ann", "a`b": 2, "not": 1},
    {"x": "a\\b\n\t", "y": "q", "country": " FR ", "a": None},
    {"x": 1000, "y": True, "z": ""},
    {"x": "-2.5", "y": "false", "c": 3},
    {"x": '__import__("os")', "d": "4"},
]


@pytest.mark.parametrize("expr", ROUND_TRIP)
def test_round_trip(expr: str) -> None:
    f = parse(expr)
    again = parse(str(f))
    assert str(again) == str(f)
    assert again.fields == f.fields
    for profile in PROFILES:
        assert again.matches(profile) is f.matches(profile), profile


def test_canonical_text() -> None:
    assert str(parse("  country=='FR'  AND age>=18 ")) == "country = 'FR' and age >= 18"
    assert str(parse("a=1 or (b=2 or c=3)")) == "a = 1 or b = 2 or c = 3"
    assert str(parse("(a=1 and b=2) or c=3")) == "a = 1 and b = 2 or c = 3"
    assert str(parse("a=1 and (b=2 or c=3)")) == "a = 1 and (b = 2 or c = 3)"
    assert str(parse('x = "it\'s"')) == "x = 'it\\'s'"
    assert str(parse("x <> 1")) == "x != 1"
    assert str(parse("x not in (1,2,)")) == "x not in (1, 2)"


# --- errors --------------------------------------------------------------------------------

MALFORMED = [
    "country = FR",
    "country =",
    "age => 18",
    "age =< 18",
    "a === 1",
    "a ! 1",
    "(a = 1",
    "((a = 1) or b = 2",
    "a = 1)",
    "a",
    "a = 1 b = 2",
    "a = 1 and",
    "or a = 1",
    "a = 1 and and b = 2",
    "and = 1",
    "'country' = 'FR'",
    "a in 1",
    "a in (",
    "a in ()",
    "a in (1 2)",
    "a in (1,,2)",
    "a is",
    "a is not",
    "a is full",
    "a not = 1",
    "a not is empty",
    "a = 'FR",
    'a = "FR',
    "`a = 1",
    "`` = 1",
    "a = 'bad \\q escape'",
    "a = 12ab",
    "a = 1.2.3",
    "a = 1e999",
    "a = -",
    "a $ 1",
    "a = 1;",
    "a < null",
    "a >= true",
    "a contains null",
    "a contains",
    "()",
    "not",
    "a = 1 or ()",
    "a = (1)",
    "x = 'a' 'b'",
]


@pytest.mark.parametrize("expr", MALFORMED)
def test_malformed(expr: str) -> None:
    with pytest.raises(InputError) as info:
        parse(expr)
    message = str(info.value)
    assert message.startswith("filter expression"), message
    assert "\n" not in message
    assert "column" in message


@pytest.mark.parametrize("expr", ["", "   ", "\n\t"])
def test_empty(expr: str) -> None:
    with pytest.raises(InputError, match=r"^filter expression is empty: give a condition"):
        parse(expr)


def test_error_messages() -> None:
    def error(expr: str) -> str:
        with pytest.raises(InputError) as info:
            parse(expr)
        return str(info.value)

    assert error("country=FR") == (
        "filter expression: expected a value after '=' at column 9 "
        "(quote text values: country = 'FR')"
    )
    assert error("age => 3").startswith("filter expression: unknown operator '=>' at column 5")
    assert error("(a = 1").startswith("filter expression: unclosed '(' at column 1")
    assert error("a in ('x'").startswith("filter expression: unclosed '(' at column 6")
    assert "unexpected ')' at column 6" in error("a = 1)")
    assert "nested deeper than 100 levels" in error("(" * 101 + "a = 1" + ")" * 101)
    assert "column 5" in error("a = 'x\ny")  # an unclosed quote spanning a newline
    assert "\n" not in error("`a\nb` x")
    assert "\n" not in error("x = 1 'a\nb'")


@pytest.mark.parametrize(
    "expr",
    [
        "x = " + "1" * 5000,
        "x " + "=" * 5000 + " 1",
        "x = 1" + "a" * 5000,
        "`" + "f" * 5000 + "` not = 1",
        "x = 1 " + "y" * 5000,
        "x = " + "y" * 5000,
        "`" + "f" * 5000 + "` in 1",
    ],
)
def test_error_messages_stay_short(expr: str) -> None:
    with pytest.raises(InputError) as info:
        parse(expr)
    assert len(str(info.value)) < 250, str(info.value)


def test_error_is_an_input_error() -> None:
    with pytest.raises(ValueError):  # InputError is also a ValueError
        parse("a =")


# --- limits --------------------------------------------------------------------------------


def test_nesting_limit() -> None:
    ok = "(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH
    assert parse(ok).matches({"a": "1"})
    nots = "not " * MAX_DEPTH + "a = 1"
    assert parse(nots).matches({"a": "1"})
    for deep in (
        "(" * (MAX_DEPTH + 1) + "a = 1" + ")" * (MAX_DEPTH + 1),
        "(" * 5000,
        "not " * 2400 + "a = 1",
        "not (" * 1000 + "a = 1" + ")" * 1000,
        "(" * 3000 + "a = 1" + ")" * 3000,
    ):
        with pytest.raises(InputError, match=r"^filter expression: nested deeper than 100"):
            parse(deep)


def test_length_limit() -> None:
    clause = "a = 1 or "
    at_limit = (clause * (MAX_LENGTH // len(clause)))[: MAX_LENGTH - 6] + "a = 1"
    at_limit = at_limit.rstrip()
    assert len(at_limit) <= MAX_LENGTH
    long_ok = "x in (" + ", ".join(["1"] * 3000) + ")"
    assert len(long_ok) <= MAX_LENGTH
    assert parse(long_ok).matches({"x": 1})
    flat = " or ".join(["a = 1"] * 1000)
    assert len(flat) <= MAX_LENGTH
    assert parse(flat).matches({"a": 1})
    assert not parse(flat).matches({"a": 2})
    for too_long in ("a = 1 or " * 2000 + "a = 1", "x = '" + "y" * MAX_LENGTH + "'", "(" * 20000):
        with pytest.raises(InputError, match=r"^filter expression is too long") as info:
            parse(too_long)
        assert "\n" not in str(info.value)


def test_mapping_types() -> None:
    f = parse("country = 'FR' and age >= 18")
    assert f.matches(MappingProxyType({"country": "FR", "age": "30"}))
    assert not f.matches(MappingProxyType({"country": "FR", "age": "3"}))
