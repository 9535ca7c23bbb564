"""The terms of the filter language: values, their comparisons and the expression tree's nodes.

The grammar and its rules are in :mod:`segport.filters`; this module holds what a parsed expression
is made of and how each node decides a profile.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from segport.errors import InputError

MAX_LENGTH = 10_000
MAX_DEPTH = 100
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "empty", "true", "false", "null", "contains"})
_OPS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_NUM = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMERIC = re.compile(rf"\s*[+-]?{_NUM}\s*\Z")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_TOKEN = re.compile(
    rf"""(?P<space>\s+) | (?P<punct>[(),]) | (?P<op>[=!<>]+) | (?P<num>-?{_NUM})
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*") | (?P<field>`(?:[^`]|``)*`)
    | (?P<word>{_IDENT.pattern})""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_EXAMPLE = "country = 'FR'"


def _fail(problem: str, col: int, fix: str = "") -> InputError:
    """Return the one-line error for a problem at column ``col``."""
    text = f"filter expression: {problem} at column {col}" + (f" ({fix})" if fix else "")
    return InputError(" ".join(text.splitlines()))


def _show(text: str) -> str:
    """Quote a piece of the expression for an error message, shortened."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _to_number(text: str) -> int | float | None:
    """Return the number of a text already known to be numeric; None when out of range."""
    try:
        if any(c in text for c in ".eE"):
            value = float(text)
            return value if math.isfinite(value) else None
        return int(text)
    except ValueError:  # more digits than int() accepts
        return None


def _num(value: Any) -> int | float | None:
    """Numeric form of an attribute value, or None when it is not a finite number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and _NUMERIC.match(value):
        return _to_number(value.strip())
    return None


def _bool(value: Any) -> bool | None:
    """Boolean form of a value (true/false/1/0/yes/no in any case), or None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _BOOLS.get(value.strip().lower())
    if isinstance(value, (int, float)) and value in (0, 1):
        return value == 1
    return None


def _is_empty(value: Any) -> bool:
    """Missing, None, blank text, or an empty list/dict."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (list, tuple, dict)) and not value


def _text(value: Any) -> str:
    """Text form of an attribute value for exact comparison."""
    return value.strip() if isinstance(value, str) else str(value)


class _Literal:
    """A value written in the expression, with its forms precomputed at parse time."""

    __slots__ = ("boolean", "empty", "kind", "num", "plain", "value")

    def __init__(self, kind: str, value: Any, plain: str) -> None:
        self.kind = kind  # "str", "num", "bool" or "null"
        self.value = value
        self.plain = plain  # the text compared with attributes; canonical text for non-strings
        self.num = value if kind == "num" else _num(value)
        self.boolean = _bool(self.num if kind == "num" else value)
        self.empty = kind == "null" or _is_empty(value)

    def __str__(self) -> str:
        if self.kind != "str":
            return self.plain
        text = self.plain.replace("\\", "\\\\").replace("'", "\\'")
        return "'" + text.replace("\n", "\\n").replace("\t", "\\t") + "'"


def _example(name: str) -> str:
    """Return a field name for the example in an error message."""
    text = _field_text(name)
    return text if len(text) <= 40 else "field"


def _field_text(name: str) -> str:
    """Return a field name as written in canonical text."""
    if _IDENT.fullmatch(name) and name.lower() not in KEYWORDS:
        return name
    return "`" + name.replace("`", "``") + "`"


class _Node:
    """A compiled piece of a filter."""

    __slots__ = ()
    prec = 4  # binding strength, for parentheses in canonical text

    def matches(self, attrs: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def wrap(self, prec: int) -> str:
        """Canonical text, in parentheses when this binds looser than ``prec``."""
        return f"({self})" if self.prec < prec else str(self)


class _Or(_Node):
    __slots__ = ("items",)
    prec = 1

    def __init__(self, items: Sequence[_Node]) -> None:
        self.items = tuple(items)

    def matches(self, attrs: Mapping[str, Any]) -> bool:
        for item in self.items:
            if item.matches(attrs):
                return True
        return False

    def __str__(self) -> str:
        return " or ".join(item.wrap(self.prec + 1) for item in self.items)


class _And(_Or):
    __slots__ = ()
    prec = 2

    def matches(self, attrs: Mapping[str, Any]) -> bool:
        for item in self.items:
            if not item.matches(attrs):
                return False
        return True

    def __str__(self) -> str:
        return " and ".join(item.wrap(self.prec + 1) for item in self.items)


class _Not(_Node):
    __slots__ = ("item",)
    prec = 3

    def __init__(self, item: _Node) -> None:
        self.item = item

    def matches(self, attrs: Mapping[str, Any]) -> bool:
        return not self.item.matches(attrs)

    def __str__(self) -> str:
        return "not " + self.item.wrap(self.prec)


class _Test(_Node):
    """One condition on one field; a non-empty list attribute holds when any element does."""

    __slots__ = ("field", "negate", "op", "values")

    def __init__(self, field: str, op: str, values: Sequence[_Literal] = ()) -> None:
        self.field, self.op, self.values = field, op, tuple(values)
        self.negate = op.startswith(("!", "not ", "is not"))

    def item(self, value: Any) -> bool:
        """Whether one element of a list attribute passes (before negation)."""
        return self.one(value)

    def one(self, value: Any) -> bool:
        """Whether a value that is not a non-empty list passes (before negation)."""
        raise NotImplementedError

    def matches(self, attrs: Mapping[str, Any]) -> bool:
        value = attrs.get(self.field)
        if isinstance(value, (list, tuple)) and value:
            return any(self.item(v) for v in value) != self.negate
        return self.one(value) != self.negate

    def __str__(self) -> str:
        text = f"{_field_text(self.field)} {self.op}"
        if self.op.endswith("in"):
            return f"{text} ({', '.join(map(str, self.values))})"
        return f"{text} {self.values[0]}" if self.values else text


class _Eq(_Test):
    """``=``, ``!=``, ``in``, ``not in``: set look-ups on the literals' precomputed forms."""

    __slots__ = ("attr_bools", "bools", "null", "nums", "strs")

    def __init__(self, field: str, op: str, values: Sequence[_Literal]) -> None:
        super().__init__(field, op, values)
        self.null = any(v.empty for v in values)
        self.nums = frozenset(v.num for v in values if v.num is not None)
        self.strs = frozenset(v.plain for v in values if v.kind in ("str", "num"))
        self.bools = frozenset(v.value for v in values if v.kind == "bool")
        self.attr_bools = frozenset(v.boolean for v in values if v.boolean is not None)

    def item(self, value: Any) -> bool:
        if isinstance(value, str):
            text = value.strip()
            if not text or text in self.strs:
                return bool(text)
        elif isinstance(value, bool):
            return value in self.attr_bools
        elif _is_empty(value):
            return False
        else:
            text = ""
        num = _num(value) if self.nums else None
        if num is not None and num in self.nums:
            return True
        if self.bools and _bool(value) in self.bools:
            return True
        return not text and str(value) in self.strs

    def one(self, value: Any) -> bool:
        return self.null if _is_empty(value) else self.item(value)


class _Order(_Test):
    """``<``, ``<=``, ``>``, ``>=``."""

    __slots__ = ()

    def one(self, value: Any) -> bool:
        if _is_empty(value):
            return False
        num, literal = _num(value), self.values[0]
        if num is not None and literal.num is not None:
            return _ORDER[self.op](num, literal.num)
        return _ORDER[self.op](_text(value), literal.plain)


class _Contains(_Test):
    """``contains`` and ``not contains``."""

    __slots__ = ("member", "needle")

    def __init__(self, field: str, op: str, values: Sequence[_Literal]) -> None:
        super().__init__(field, op, values)
        self.needle = values[0].plain.casefold()
        self.member = _Eq(field, "=", values)

    def item(self, value: Any) -> bool:
        return self.member.item(value)

    def one(self, value: Any) -> bool:
        if _is_empty(value):
            return False
        if isinstance(value, dict):
            return self.values[0].plain in value
        return self.needle in str(value).casefold()


class _IsEmpty(_Test):
    """``is empty`` and ``is not empty``; a list with elements is not empty."""

    __slots__ = ()

    def item(self, value: Any) -> bool:
        return False

    def one(self, value: Any) -> bool:
        return _is_empty(value)
