"""Streaming readers for the files operators load: customer profiles and segment member lists.

A file may be gzip-compressed, and ``-`` reads standard input (see :mod:`segport.sources`).

Profiles come as CSV (header row, values kept as strings) or JSONL (one JSON object per line, its
numbers finite: ``NaN``, ``Infinity`` and numbers too large for a float are refused, as standard JSON
has no such values).
Segment member lists are one key per line, or a CSV/JSONL file of which only the key is read.

Every reader is a generator: it opens the file lazily, raises while iterating (so a caller inside a
transaction can roll back) and closes the file when abandoned. Memory stays bounded: one row at a
time, nothing kept across rows. Every problem becomes one :class:`~segport.errors.InputError` whose
one-line message names the file (basename), the line, the problem and the fix. Duplicate keys across
a file are not detected here: the store's UNIQUE index does that.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import InputError
from .sources import DamagedGzip, display_name, inner_name, is_stdin, open_text

__all__ = ["MAX_FIELD_CHARS", "MAX_NESTING", "ProfileRow", "detect_format", "read_profiles", "read_segment_keys"]

#: Largest CSV field accepted, in characters.
MAX_FIELD_CHARS = 1024 * 1024
#: Deepest JSONL object accepted (the object itself is level 1). Deeper values could be read but not
#: stored or hashed later: ``json`` recursion depends on how deep the caller's stack already is.
MAX_NESTING = 100
#: ``csv`` accepts a field of exactly its limit and rejects a longer one, so the limit is 1 MiB
#: itself (not 1 MiB + 1: that would let a field of 1 MiB + 1 characters through). The limit is
#: process-wide; it is set (never restored) each time a CSV is opened, because restoring it is
#: unsafe while several reader generators interleave.
_CSV_FIELD_LIMIT = MAX_FIELD_CHARS
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_FIX_FORMAT = "pass --format csv|jsonl"
_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}  # shown as \n, \x0b, ...
_ESCAPED = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of undecodable bytes
_SURROGATE = re.compile("[\ud800-\udfff]")  # after json.loads: only from an unpaired \uD800-\uDFFF escape
_JSON_KINDS = {
    list: "a JSON array",
    str: "a JSON string",
    int: "a JSON number",
    float: "a JSON number",
    bool: "a JSON boolean",
    type(None): "JSON null",
}


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One profile read from a file."""

    line: int  #: 1-based physical line where the row starts
    key: str  #: the key column's value, stripped; never empty
    attrs: dict[str, Any]  #: every column/field, the key column included


def _fail(message: str) -> InputError:
    """Return an InputError whose message is one line (every break ``str.splitlines`` knows, escaped)."""
    return InputError(message.translate(_BREAKS))


def _name(path: str | os.PathLike[str]) -> str:
    return display_name(path)


def _extension(path: str | os.PathLike[str]) -> str:
    """Return the file's extension, lower case, under a ``.gz`` one (``p.CSV.gz`` -> ``.csv``)."""
    return os.path.splitext(inner_name(path))[1].lower()


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """``"csv"`` or ``"jsonl"``: ``fmt`` if given, else from the file's extension (under ``.gz``).

    Standard input (``-``) has no extension: ``fmt`` is required for it.
    """
    if fmt is not None:
        if fmt.strip().lower() in ("csv", "jsonl"):
            return fmt.strip().lower()
        raise _fail(f"{_name(path)}: unknown format {fmt!r} ({_FIX_FORMAT})")
    if is_stdin(path):
        raise _fail(f"reading profiles from stdin needs the format ({_FIX_FORMAT})")
    ext = _extension(path)
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    what = f"extension {ext!r}" if ext else "no extension"
    raise _fail(f"{_name(path)} has {what}: cannot tell CSV from JSONL ({_FIX_FORMAT})")


def read_profiles(path: str | os.PathLike[str], key: str = "id", fmt: str | None = None) -> Iterator[ProfileRow]:
    """Yield the profiles of a CSV or JSONL file, checking each row; see the module docstring."""
    if detect_format(path, fmt) == "jsonl":
        yield from _read_jsonl(path, key, finite=True)
        return
    for line, key_value, header, row in _read_csv(path, key):
        yield ProfileRow(line, key_value, dict(zip(header, row, strict=True)))


def read_segment_keys(
    path: str | os.PathLike[str], key: str = "id", fmt: str | None = None
) -> Iterator[tuple[int, str]]:
    """Yield ``(line, key)`` for each member of a segment file.

    ``fmt`` may be ``"csv"``, ``"jsonl"`` or ``"lines"``; without it ``.csv`` is CSV,
    ``.jsonl``/``.ndjson``/``.json`` is JSONL (also under ``.gz``) and any other file, standard
    input included, holds one key per line (blank lines and lines starting with ``#`` skipped).
    """
    if fmt is not None and fmt.strip().lower() == "lines":
        kind = "lines"
    elif fmt is not None:
        kind = detect_format(path, fmt)
    else:
        kind = _EXTENSIONS.get(_extension(path), "lines")  # standard input too: one key per line
    if kind == "csv":
        for line, key_value, _header, _row in _read_csv(path, key):
            yield line, key_value
    elif kind == "jsonl":
        for profile in _read_jsonl(path, key):
            yield profile.line, profile.key
    else:
        yield from _read_lines(path)


def _opened(path: str | os.PathLike[str], newline: str | None) -> Any:
    """Open for strict UTF-8 reading (``-``: standard input; gzip decompressed); a UTF-8 BOM is stripped."""
    return open_text(path, newline)


def _unreadable(path: str | os.PathLike[str], exc: OSError | DamagedGzip) -> InputError:
    if isinstance(exc, DamagedGzip):
        return _fail(f"{_name(path)} is a damaged or truncated gzip file ({exc}; compress it again)")
    return _fail(f"cannot read {_name(path)}: {exc.strerror or exc} (check the path and the file's permissions)")


def _not_utf8(path: str | os.PathLike[str], newline: str | None, fallback: int) -> InputError:
    """Return the error for an invalid UTF-8 file: re-read it leniently to find the first bad line."""
    line = fallback
    if is_stdin(path):  # read once: the line being decoded is the best known
        return _fail(f"{_name(path)} is not valid UTF-8 at or after line {line} (send UTF-8)")
    try:
        with open_text(path, newline, errors="surrogateescape") as f:
            for number, text in enumerate(f, 1):
                if _ESCAPED.search(text):
                    line = number
                    break
    except (OSError, DamagedGzip):
        pass
    return _fail(f"{_name(path)}: line {line} is not valid UTF-8 (save the file as UTF-8)")


def _read_csv(path: str | os.PathLike[str], key: str) -> Iterator[tuple[int, str, list[str], list[str]]]:
    """Yield ``(line, key, header, row)`` for each data row of a CSV file."""
    name = _name(path)
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    last = 0  # physical lines consumed so far
    try:
        with _opened(path, "") as f:
            reader = csv.reader(_without_nul(name, f), strict=True)
            try:
                header, index = _csv_header(name, reader, key)
                last = reader.line_num
                width = len(header)
                for row in reader:
                    start, last = last + 1, reader.line_num
                    if len(row) != width:
                        if not row or (len(row) == 1 and not row[0].strip()):
                            continue  # a blank line
                        raise _ragged(name, start, len(row), width)
                    value = row[index].strip()
                    if not value:
                        if width == 1:
                            continue  # a blank line
                        raise _fail(f"{name}: line {start} has an empty {key!r} (give every row a key)")
                    yield start, value, header, row
            except csv.Error as exc:
                raise _csv_error(name, str(exc), last + 1, reader.line_num) from None
    except UnicodeDecodeError:
        raise _not_utf8(path, "", last + 1) from None
    except (OSError, DamagedGzip) as exc:
        raise _unreadable(path, exc) from None


def _without_nul(name: str, lines: Iterable[str]) -> Iterator[str]:
    """Pass lines through, refusing NUL bytes (``csv`` accepts them since Python 3.11)."""
    for number, text in enumerate(lines, 1):
        if "\x00" in text:
            raise _fail(f"{name}: line {number} contains a NUL byte (is the file UTF-16? save it as UTF-8)")
        yield text


def _csv_header(name: str, reader: Any, key: str) -> tuple[list[str], int]:
    """Read and check the header row; return the column names and the key column's index."""
    for row in reader:
        if row and (len(row) > 1 or row[0].strip()):
            break
    else:
        raise _fail(f"{name} is empty: it needs a header row with a {key!r} column")
    line = reader.line_num
    header = [column.strip() for column in row]
    seen: set[str] = set()
    for number, column in enumerate(header, 1):
        if not column:
            raise _fail(f"{name}: line {line}: header column {number} has no name (name every column)")
        if column in seen:
            raise _fail(f"{name}: line {line}: header has the column {column!r} twice (rename one)")
        seen.add(column)
    if key not in seen:
        shown = ", ".join(header[:20]) + (", ..." if len(header) > 20 else "")
        raise _fail(f"{name} has no column {key!r} (columns: {shown}; pass --key COLUMN)")
    return header, header.index(key)


def _ragged(name: str, line: int, fields: int, width: int) -> InputError:
    fix = "quote values containing commas" if fields > width else "add the missing fields"
    return _fail(f"{name}: line {line} has {fields} fields, the header has {width} ({fix})")


def _csv_error(name: str, problem: str, start: int, current: int) -> InputError:
    """Turn a csv.Error into an InputError; ``start`` is where the failing row began."""
    if "field limit" in problem:
        return _fail(f"{name}: line {start} has a field larger than 1 MiB (check for a quote that is never closed)")
    if "end of data" in problem:
        return _fail(
            f"{name}: line {start} has a quoted value that is never closed"
            " (close the quote, or double quotes inside quoted values)"
        )
    if "expected after" in problem:
        return _fail(
            f"{name}: line {current} has text after a closing quote (quote the whole value and double quotes inside it)"
        )
    return _fail(f"{name}: line {current} is not valid CSV ({problem}; fix the quoting)")


def _read_jsonl(path: str | os.PathLike[str], key: str, *, finite: bool = False) -> Iterator[ProfileRow]:
    """Yield one ProfileRow per non-blank line of a JSONL file.

    With ``finite``, a number JSON cannot hold (``NaN``, ``Infinity``, ``-Infinity``, which Python's
    ``json`` accepts, or one too large for a float such as ``1e99999``) is refused, naming its attribute.
    """
    name = _name(path)
    number = 0
    found = False
    odd: list[str] = []  # the line's numbers that are not finite, as written
    loads = json.loads if not finite else _finite_loads(odd)
    try:
        with _opened(path, None) as f:
            for number, text in enumerate(f, 1):
                if not text or text.isspace():
                    continue
                try:
                    obj = loads(text)
                except json.JSONDecodeError as exc:
                    problem = f"{exc.msg} at column {exc.colno}"
                    raise _fail(
                        f"{name}: line {number} is not valid JSON ({problem}); write one complete JSON object per line"
                    ) from None
                except RecursionError:
                    raise _fail(f"{name}: line {number} is nested too deeply (flatten the object)") from None
                except ValueError:  # an integer beyond Python's digit limit
                    raise _fail(
                        f"{name}: line {number} has a number with too many digits (write it as a string)"
                    ) from None
                if type(obj) is not dict:
                    kind = _JSON_KINDS.get(type(obj), "not a JSON object")
                    raise _fail(f"{name}: line {number} is {kind}, expected an object (write one JSON object per line)")
                if odd:
                    raise _fail(
                        f"{name}: line {number}: attribute {_non_finite_path(obj)!r} is {odd[0]}, not a finite number"
                        " (JSON has no NaN or infinity: write a number, null or a string)"
                    )
                # Both scans are cheap substring tests first; the walk runs only on suspicious lines.
                if text.count("[") + text.count("{") > MAX_NESTING and _depth(obj) > MAX_NESTING:
                    raise _fail(f"{name}: line {number} is nested too deeply (flatten the object)")
                if "\\u" in text and _has_surrogate(obj):
                    raise _fail(
                        f"{name}: line {number} has a \\u escape for half a character (an unpaired surrogate such as"
                        " \\ud800; escape the whole character as a pair, or write it as UTF-8)"
                    )
                found = True
                yield ProfileRow(number, _json_key(name, number, obj, key), obj)
    except UnicodeDecodeError:
        raise _not_utf8(path, None, number + 1) from None
    except (OSError, DamagedGzip) as exc:
        raise _unreadable(path, exc) from None
    if not found:
        raise _fail(f"{name} is empty: it needs one JSON object per line with a {key!r} field")


def _finite_loads(odd: list[str]) -> Any:
    """Return a ``json.loads`` that records in ``odd`` each number of the last line that is not finite."""

    def constant(text: str) -> float:  # NaN, Infinity, -Infinity
        odd.append(text)
        return float(text)

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):  # 1e99999 overflows to infinity
            odd.append(text if len(text) <= 40 else f"{text[:37]}...")
        return value

    decode = json.JSONDecoder(parse_constant=constant, parse_float=number).decode  # one decoder per file: cheaper

    def loads(text: str) -> Any:
        odd.clear()
        return decode(text)

    return loads


def _non_finite_path(obj: dict[str, Any]) -> str:
    """Return where the first non-finite number of a document is: ``score``, ``address.lat``, ``tags[2]``."""
    stack: list[tuple[str, Any]] = [(str(k), v) for k, v in reversed(obj.items())]
    while stack:
        path, item = stack.pop()
        if type(item) is float and not math.isfinite(item):
            return path
        if type(item) is dict:
            stack.extend((f"{path}.{k}", v) for k, v in reversed(item.items()))
        elif type(item) is list:
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))
    return "?"


def _containers(obj: Any) -> Iterator[tuple[Any, int]]:
    """Every value of a decoded JSON document with its level (the document is 1), without recursion."""
    stack = [(obj, 1)]
    while stack:
        item, level = stack.pop()
        yield item, level
        if type(item) is dict:
            stack.extend((key, level + 1) for key in item)
            stack.extend((value, level + 1) for value in item.values())
        elif type(item) is list:
            stack.extend((value, level + 1) for value in item)


def _depth(obj: Any) -> int:
    """How many arrays/objects deep a decoded JSON document goes, stopping once past the limit."""
    deepest = 0
    for item, level in _containers(obj):
        if type(item) in (dict, list):
            deepest = max(deepest, level)
            if deepest > MAX_NESTING:
                break
    return deepest


def _has_surrogate(obj: Any) -> bool:
    """Whether a decoded JSON document holds a lone surrogate (it can be neither stored nor sent as UTF-8)."""
    return any(type(item) is str and _SURROGATE.search(item) for item, _ in _containers(obj))


def _json_key(name: str, line: int, obj: dict[str, Any], key: str) -> str:
    """Return the object's key as a stripped, non-empty string."""
    value = obj.get(key)
    if type(value) is str:
        value = value.strip()
        if value:
            return value
        problem = f"has an empty {key!r}"
    elif type(value) is int:
        return str(value)
    elif key not in obj:
        problem = f"has no {key!r} field"
    else:
        problem = f"has {key!r} as {_JSON_KINDS.get(type(value), 'a JSON object')}"
    raise _fail(
        f"{name}: line {line} {problem} (give every object a non-empty string or integer {key!r}, or pass --key FIELD)"
    )


def _read_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """Yield ``(line, key)`` from a file holding one key per line."""
    number = 0
    try:
        with _opened(path, None) as f:
            for number, text in enumerate(f, 1):
                value = text.strip()
                if value and not value.startswith("#"):
                    yield number, value
    except UnicodeDecodeError:
        raise _not_utf8(path, None, number + 1) from None
    except (OSError, DamagedGzip) as exc:
        raise _unreadable(path, exc) from None
