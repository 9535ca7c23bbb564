r"""Filter expressions for ``segport segments define NAME --where EXPR``.

Example: ``country in ('FR', 'BE') and age >= 18 and not email is empty``. The text is parsed by a
small hand-written parser; nothing in it is ever executed as Python.

Syntax: conditions are joined with ``and``/``or``, negated with ``not`` and grouped with
parentheses; ``not`` binds tighter than ``and``, which binds tighter than ``or``. Keywords are
case-insensitive. A field is a name such as ``country`` or ``address.city`` (a dot is part of the
name, not a path) or any name in backquotes, ```first name``` (double a backquote inside). Values
are quoted text (``'FR'`` or ``"FR"``, escapes ``\\ \' \" \n \t``), numbers (``-12``,
``3.5``, ``1e3``), ``true``, ``false`` or ``null``.

- A value is *empty* when the attribute is missing, null, blank text, or an empty list/object;
  ``field is empty`` / ``field is not empty`` test that.
- ``field = v`` (or ``==``): numbers and numeric text compare as numbers (``"42" = 42``,
  ``"3.0" = 3``); ``true``/``false`` also match the text true/false/1/0/yes/no in any case;
  ``null`` (and ``''``) match only empty values; otherwise text must match exactly (case matters)
  after removing spaces around the attribute's value.
- ``field != v`` (or ``<>``) is exactly ``not field = v``: a missing attribute is ``!= 'FR'``.
- ``<``, ``<=``, ``>``, ``>=`` compare numbers as numbers and anything else as text (so ISO dates
  compare correctly); they are false on an empty attribute and refuse true/false/null.
- ``field in (v1, v2)`` holds when ``field = v`` holds for one value; ``not in`` negates it.
- ``field contains v``: case-insensitive substring test on text, ``=`` membership on a list, key
  test on an object; false on an empty attribute. ``not contains`` negates it.
- On a list attribute, ``=``, ``in`` and ``<``, ``<=``, ``>``, ``>=`` hold when they hold for
  any element, so ``!=`` and ``not in`` hold when no element matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from segport.errors import InputError

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "Filter", "parse"]

from .filter_terms import (
    _ESCAPES,
    _EXAMPLE,
    _OPS,
    _TOKEN,
    KEYWORDS,
    MAX_DEPTH,
    MAX_LENGTH,
    _And,
    _Contains,
    _Eq,
    _example,
    _fail,
    _IsEmpty,
    _Literal,
    _Node,
    _Not,
    _Or,
    _Order,
    _show,
    _to_number,
)


class _Token(NamedTuple):
    kind: str  # "punct", "op", "num", "str", "field", "word" or "end"
    text: str  # the source text
    value: Any  # decoded value; lower-cased text for words
    col: int


def _unquote(body: str, col: int, escapes: bool) -> str:
    """Return the value of a quoted token's body starting at column ``col``."""
    if not escapes:
        return body.replace("``", "`")

    def escape(match: re.Match[str]) -> str:
        if match.group(1) not in _ESCAPES:
            raise _fail(f"unknown escape {match.group()}", col + match.start(), "use \\\\ \\' \\\" \\n or \\t")
        return _ESCAPES[match.group(1)]

    return re.sub(r"\\(.)", escape, body, flags=re.DOTALL)


def _token(kind: str, text: str, col: int) -> _Token:
    """Check and convert one matched token."""
    if kind == "op" and text not in _OPS:
        raise _fail(f"unknown operator {_show(text)}", col, "use one of = != < <= > >=")
    if kind in ("str", "field"):
        value: Any = _unquote(text[1:-1], col + 1, kind == "str")
        if kind == "field" and not value:
            raise _fail("empty field name in backquotes", col, "write `first name`")
        return _Token(kind, text, value, col)
    if kind == "num":
        value = _to_number(text)
        if value is None:
            raise _fail(f"number {_show(text)} is out of range", col, "quote it as text")
        return _Token(kind, text, value, col)
    return _Token(kind, text, text.lower() if kind == "word" else text, col)


def _tokenize(text: str) -> list[_Token]:
    """Split the expression into tokens, ending with an "end" token."""
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match, col = _TOKEN.match(text, pos), pos + 1
        if match is None:
            quote = text[pos] in "'\"`"
            problem = f"unclosed quote {text[pos]}" if quote else f"unexpected {text[pos]!r}"
            fix = "quote text values and `backquote` other field names"
            raise _fail(problem, col, f"end it with a matching {text[pos]}" if quote else fix)
        kind, pos = str(match.lastgroup), match.end()
        if kind == "num" and pos < len(text) and (text[pos].isalnum() or text[pos] in "_.`"):
            bad = re.split(r"[^\w.`]", text[col - 1 :], maxsplit=1)[0]
            raise _fail(f"malformed number {_show(bad)}", col, "quote text values")
        if kind != "space":
            tokens.append(_token(kind, match.group(), col))
    return [*tokens, _Token("end", "", None, len(text) + 1)]


class _Parser:
    """Recursive-descent parser over the token list; collects field names."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens, self.pos, self.depth = tokens, 0, 0
        self.fields: set[str] = set()

    def next(self, *, peek: bool = False) -> _Token:
        token = self.tokens[self.pos]
        self.pos += not peek and token.kind != "end"
        return token

    def keyword(self, word: str) -> bool:
        """Consume the keyword ``word`` if it comes next."""
        token = self.next(peek=True)
        found = token.kind == "word" and token.value == word
        self.pos += found
        return found

    def nest(self, col: int) -> None:
        """Count one more level of ``(`` or ``not``; refuse too many."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _fail(f"nested deeper than {MAX_DEPTH} levels", col, "simplify the expression")

    def or_expr(self, word: str = "or") -> _Node:
        """``and_expr ("or" and_expr)*``, or with ``word="and"``: ``not_expr ("and" not_expr)*``."""
        part = self.not_expr if word == "and" else lambda: self.or_expr("and")
        kind, items = _And if word == "and" else _Or, [part()]
        while self.keyword(word):
            items.append(part())
        flat = [i for item in items for i in (item.items if type(item) is kind else (item,))]
        return flat[0] if len(flat) == 1 else kind(flat)

    def not_expr(self) -> _Node:
        """``"not" not_expr | "(" expr ")" | test``."""
        token = self.next(peek=True)
        if self.keyword("not"):
            self.nest(token.col)
            node: _Node = _Not(self.not_expr())
        elif token.text == "(":
            self.next()
            self.nest(token.col)
            node = self.or_expr()
            self.close(token)
        else:
            return self.test()
        self.depth -= 1
        return node

    def close(self, opening: _Token) -> None:
        """Consume the ``)`` matching ``opening``."""
        token = self.next()
        if token.kind == "end":
            raise _fail("unclosed '('", opening.col, "add the missing ')'")
        if token.text != ")":
            raise self.unexpected(token)

    @staticmethod
    def unexpected(token: _Token) -> InputError:
        if token.text == ")":
            return _fail("unexpected ')'", token.col, "remove it or add a matching '('")
        return _fail(f"unexpected {_show(token.text)}", token.col, "join conditions with and / or")

    def field(self) -> str:
        token = self.next()
        if token.kind == "field" or (token.kind == "word" and token.value not in KEYWORDS):
            name = str(token.value if token.kind == "field" else token.text)
            self.fields.add(name)
            return name
        found = "the end" if token.kind == "end" else _show(token.text)
        fix = f"write `{token.text}` for a field of that name" if token.kind == "word" else ""
        raise _fail(
            f"expected a field name but found {found}",
            token.col,
            fix or f"start each condition with a field name: {_EXAMPLE}",
        )

    def value(self, field: str, after: str) -> _Literal:
        token = self.next()
        if token.kind == "str":
            return _Literal("str", token.value, token.value)
        if token.kind == "num":
            return _Literal("num", token.value, token.text)
        if token.kind == "word" and token.value in ("true", "false", "null"):
            value = {"true": True, "false": False}.get(token.value)
            return _Literal("null" if value is None else "bool", value, token.value)
        fix = "give a quoted text, a number, true, false or null"
        if token.kind == "word":
            fix = f"quote text values: {_example(field)} = '{token.text[:40]}'"
        raise _fail(f"expected a value after {after!r}", token.col, fix)

    def test(self) -> _Node:
        field = self.field()
        token = self.next()
        if token.kind == "op":
            return self.compare(field, token)
        negate = token.kind == "word" and token.value == "not"
        token = self.next() if negate else token
        word = token.value if token.kind == "word" else None
        prefix = "not " if negate else ""
        if word == "in":
            return _Eq(field, prefix + "in", self.value_list(field))
        if word == "contains":
            value = self.value(field, "contains")
            if value.kind == "null":
                raise _fail("contains cannot take null", token.col, f"use {_example(field)} is empty")
            return _Contains(field, prefix + "contains", [value])
        if word == "is" and not negate:
            op = "is not empty" if self.keyword("not") else "is empty"
            if not self.keyword("empty"):
                raise _fail(
                    "expected 'empty' or 'not empty' after 'is'",
                    self.next(peek=True).col,
                    f"{_example(field)} is empty",
                )
            return _IsEmpty(field, op)
        after = field + " not" if negate else field
        what = "'in' or 'contains'" if negate else "an operator"
        raise _fail(f"expected {what} after {_show(after)}", token.col, "use = != < <= > >=, in, contains or is empty")

    def compare(self, field: str, token: _Token) -> _Node:
        value, op = self.value(field, token.text), _OPS[token.text]
        if op in ("=", "!="):
            return _Eq(field, op, [value])
        if value.kind in ("bool", "null"):
            raise _fail(
                f"{value.plain} cannot be used with {token.text!r}",
                token.col,
                "compare true, false and null with = or !=",
            )
        return _Order(field, op, [value])

    def value_list(self, field: str) -> list[_Literal]:
        opening = self.next()
        if opening.text != "(":
            raise _fail(
                "expected '(' after 'in'",
                opening.col,
                f"list the values in parentheses: {_example(field)} in ('FR', 'DE')",
            )
        values = [self.value(field, "(")]
        while self.next(peek=True).text == ",":
            self.next()
            if self.next(peek=True).text == ")":
                break
            values.append(self.value(field, ","))
        if self.next(peek=True).kind != "end" and self.next(peek=True).text != ")":
            raise _fail("expected ',' or ')' in the list", self.next().col, "separate values by ,")
        self.close(opening)
        return values


@dataclass(frozen=True, eq=False)
class Filter:
    """A parsed filter expression; build one with :func:`parse`."""

    source: str  # the original text
    fields: frozenset[str]  # every attribute name referenced
    _root: _Node

    def matches(self, attrs: Mapping[str, Any]) -> bool:
        """Whether a profile's attributes satisfy the expression."""
        return self._root.matches(attrs)

    def __str__(self) -> str:
        return str(self._root)

    def __repr__(self) -> str:
        return f"Filter({str(self)!r})"


def parse(text: str) -> Filter:
    """Parse a filter expression; raise :class:`InputError` on any syntax problem."""
    if len(text) > MAX_LENGTH:
        raise InputError(
            f"filter expression is too long: {len(text)} characters, the limit is "
            f"{MAX_LENGTH} (split it into several segments)"
        )
    if not text.strip():
        raise InputError(f"filter expression is empty: give a condition such as {_EXAMPLE}")
    parser = _Parser(_tokenize(text))
    root = parser.or_expr()
    if parser.next(peek=True).kind != "end":
        raise parser.unexpected(parser.next())
    return Filter(text, frozenset(parser.fields), root)
