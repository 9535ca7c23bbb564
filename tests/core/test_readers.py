"""Tests for segport.readers: streaming CSV/JSONL profile readers and segment key readers."""

from __future__ import annotations

import gc
import gzip
import io
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from segport.errors import InputError
from segport.readers import (
    MAX_FIELD_CHARS,
    ProfileRow,
    detect_format,
    read_profiles,
    read_segment_keys,
)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def error_of(path: Path, line: int | None = None, *, segment: bool = False, **kw: Any) -> str:
    """Consume the reader, expect an InputError, check its message and return it."""
    reader = read_segment_keys(path, **kw) if segment else read_profiles(path, **kw)
    with pytest.raises(InputError) as info:
        for _ in reader:
            pass
    message = str(info.value)
    assert path.name in message
    assert str(path.parent) not in message
    assert "\n" not in message and "\r" not in message
    if line is not None:
        assert f"line {line} " in message or f"line {line}:" in message, message
    return message


def rows(path: Path, **kw: Any) -> list[ProfileRow]:
    return list(read_profiles(path, **kw))


# --- detect_format -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("p.csv", "csv"), ("P.CSV", "csv"), ("p.jsonl", "jsonl"), ("p.ndjson", "jsonl"),
        ("p.json", "jsonl"),
    ],
)
def test_detect_format_from_extension(name: str, expected: str) -> None:
    assert detect_format(name) == expected


def test_detect_format_explicit_wins() -> None:
    assert detect_format("data.txt", "csv") == "csv"
    assert detect_format("data.csv", "JSONL") == "jsonl"


@pytest.mark.parametrize("name", ["profiles.tsv", "profiles.txt", "profiles"])
def test_detect_format_unknown_extension(name: str) -> None:
    with pytest.raises(InputError) as info:
        detect_format(Path("/some/dir") / name)
    message = str(info.value)
    assert name in message and "--format csv|jsonl" in message and "/some/dir" not in message
    if "." in name:
        assert name.rsplit(".", 1)[1] in message


def test_detect_format_bad_explicit_format() -> None:
    with pytest.raises(InputError, match="--format csv\\|jsonl"):
        detect_format("p.csv", "xml")


# --- CSV: good files ---------------------------------------------------------------------------


def test_csv_rows_lines_and_values(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", " id , email ,age\n 1 ,a@x.com,42\n2,,\n")
    got = rows(path)
    assert got == [
        ProfileRow(2, "1", {"id": " 1 ", "email": "a@x.com", "age": "42"}),
        ProfileRow(3, "2", {"id": "2", "email": "", "age": ""}),
    ]


def test_csv_custom_key_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", "email,name\r\na@x.com,Ann\r\nb@x.com,Bob\r\n")
    assert [(r.line, r.key) for r in rows(path, key="email")] == [(2, "a@x.com"), (3, "b@x.com")]


def test_csv_bom_is_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", b"\xef\xbb\xbfid,name\n1,Ann\n")
    assert rows(path) == [ProfileRow(2, "1", {"id": "1", "name": "Ann"})]


def test_csv_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", "\nid,name\n\n1,Ann\n   \n\n2,Bob")
    assert [(r.line, r.key) for r in rows(path)] == [(4, "1"), (7, "2")]


def test_csv_multiline_quoted_field_line_numbers(tmp_path: Path) -> None:
    text = 'id,note\n1,"one\ntwo\nthree"\n2,plain\n3,"a\r\nb"\n4,x\n'
    got = rows(path := write(tmp_path, "profiles.csv", text))
    assert [(r.line, r.key) for r in got] == [(2, "1"), (5, "2"), (6, "3"), (8, "4")]
    assert got[0].attrs["note"] == "one\ntwo\nthree"
    # an error after multi-line fields still names the right line
    write(tmp_path, "profiles.csv", text + "5,a,b\n")
    error_of(path, 9)


def test_csv_quoted_values(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", 'id,name\n1,"Doe, ""JJ"" John"\n')
    assert rows(path)[0].attrs["name"] == 'Doe, "JJ" John'


def test_csv_field_of_exactly_one_mib_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", "id,blob\n1," + "x" * MAX_FIELD_CHARS + "\n")
    assert len(rows(path)[0].attrs["blob"]) == MAX_FIELD_CHARS


# --- CSV: errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_csv_empty_file(tmp_path: Path, content: str) -> None:
    message = error_of(write(tmp_path, "profiles.csv", content))
    assert "empty" in message and "'id'" in message


def test_csv_empty_header_name(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "profiles.csv", "id, ,name\n1,2,3\n"), 1)
    assert "column 2" in message


def test_csv_duplicate_header_name(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "profiles.csv", "id,email, email\n1,2,3\n"), 1)
    assert "'email'" in message and "twice" in message


def test_csv_missing_key_column(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "profiles.csv", "email,first_name\na,b\n"))
    assert message == (
        "profiles.csv has no column 'id' (columns: email, first_name; pass --key COLUMN)"
    )


@pytest.mark.parametrize(("row", "fields"), [("1,a,b,c", 4), ("1,a", 2)])
def test_csv_ragged_row(tmp_path: Path, row: str, fields: int) -> None:
    path = write(tmp_path, "profiles.csv", f"id,a,b\n1,a,b\n\n{row}\n2,a,b\n")
    message = error_of(path, 4)
    assert f"has {fields} fields, the header has 3" in message


def test_csv_too_many_fields_hints_at_quoting(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", "a,b,c,d,id\n" + "1,2,3,4,5\n" * 10 + "1,2,3,4\n")
    assert error_of(path, 12) == (
        "profiles.csv: line 12 has 4 fields, the header has 5 (add the missing fields)"
    )
    write(tmp_path, "profiles.csv", "a,b,c,d,id\n1,2,3,4,5,6\n")
    assert "quote values containing commas" in error_of(path, 2)


@pytest.mark.parametrize("value", ["", "   ", '""'])
def test_csv_empty_key(tmp_path: Path, value: str) -> None:
    message = error_of(write(tmp_path, "profiles.csv", f"id,name\n1,a\n{value},b\n"), 3)
    assert "empty 'id'" in message


def test_csv_field_larger_than_one_mib(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", "id,blob\n1,a\n2," + "x" * (MAX_FIELD_CHARS + 1) + "\n")
    assert "larger than 1 MiB" in error_of(path, 3)


def test_csv_unterminated_quote(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", 'id,name\n1,a\n2,"open\nmore\nend\n')
    assert "never closed" in error_of(path, 3)


def test_csv_unterminated_quote_in_big_file_hits_field_limit(tmp_path: Path) -> None:
    body = "".join(f"{i},{'y' * 60}\n" for i in range(20_000))
    path = write(tmp_path, "profiles.csv", 'id,name\n1,"oops\n' + body)
    message = error_of(path, 2)
    assert "larger than 1 MiB" in message and "quote" in message


def test_csv_text_after_closing_quote(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", 'id,name\n1,"a" b\n')
    error_of(path, 2)


def test_csv_nul_byte(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", "id,name\n1,a\n2,b\x00c\n")
    assert "NUL" in error_of(path, 3)


def test_csv_utf16_file(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", "id,name\n1,a\n".encode("utf-16-le"))
    assert "UTF-16" in error_of(path, 1)


def test_csv_latin1_byte_in_line_5_of_10(tmp_path: Path) -> None:
    lines = [b"id,name"] + [f"{i},name{i}".encode() for i in range(1, 10)]
    lines[4] = "4,Jos\xe9".encode("latin-1")
    path = write(tmp_path, "profiles.csv", b"\n".join(lines) + b"\n")
    assert error_of(path, 5) == "profiles.csv: line 5 is not valid UTF-8 (save the file as UTF-8)"


def test_csv_bad_byte_deep_in_a_large_file(tmp_path: Path) -> None:
    lines = [b"id,note"] + [f'{i},"multi\nline {i}"'.encode() for i in range(1, 5000)]
    lines[3000] = b"3000,caf\xe9"  # rows 1..2999 take two lines each, after the header
    path = write(tmp_path, "profiles.csv", b"\n".join(lines) + b"\n")
    error_of(path, 2 + 2 * 2999)


# --- JSONL -------------------------------------------------------------------------------------


def test_jsonl_rows_and_values(tmp_path: Path) -> None:
    objs: list[dict[str, Any]] = [
        {"id": " a ", "n": 1, "f": 1.5, "b": True, "z": None, "l": [1], "d": {"x": 1}},
        {"id": 7},
    ]
    path = write(tmp_path, "profiles.jsonl", "\n".join(json.dumps(o) for o in objs[:1]) + "\n\n  \n"
                 + json.dumps(objs[1]) + "\n")
    got = rows(path)
    assert got == [ProfileRow(1, "a", objs[0]), ProfileRow(4, "7", objs[1])]


def test_jsonl_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.jsonl", b'\xef\xbb\xbf{"id": "x"}\n{"id": "y"}\n')
    assert [(r.line, r.key) for r in rows(path)] == [(1, "x"), (2, "y")]


def test_jsonl_format_override(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.txt", '{"email": "a@x.com"}\n')
    assert rows(path, key="email", fmt="jsonl")[0].key == "a@x.com"


def test_jsonl_invalid_json(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.jsonl", '{"id": 1}\n\n{"id": 2, "name": "a" "b"}\n')
    message = error_of(path, 3)
    assert message == (
        "profiles.jsonl: line 3 is not valid JSON (Expecting ',' delimiter at column 23); "
        "write one complete JSON object per line"
    )


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("[1, 2]", "a JSON array"), ('"id"', "a JSON string"), ("3", "a JSON number"),
        ("null", "JSON null"),
    ],
)
def test_jsonl_not_an_object(tmp_path: Path, value: str, kind: str) -> None:
    path = write(tmp_path, "profiles.jsonl", '{"id": 1}\n{"id": 2}\n' + value + "\n")
    message = error_of(path, 3)
    assert f"line 3 is {kind}, expected an object" in message


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ({"name": "a"}, "no 'id' field"),
        ({"id": ""}, "empty 'id'"),
        ({"id": "  "}, "empty 'id'"),
        ({"id": True}, "a JSON boolean"),
        ({"id": 1.5}, "a JSON number"),
        ({"id": None}, "JSON null"),
        ({"id": [1]}, "a JSON array"),
        ({"id": {"a": 1}}, "a JSON object"),
    ],
)
def test_jsonl_bad_key(tmp_path: Path, obj: dict[str, Any], problem: str) -> None:
    path = write(tmp_path, "profiles.jsonl", '{"id": 1}\n' + json.dumps(obj) + "\n")
    message = error_of(path, 2)
    assert problem in message and "--key" in message


@pytest.mark.parametrize("content", ["", "\n \n\n"])
def test_jsonl_empty_file(tmp_path: Path, content: str) -> None:
    assert "empty" in error_of(write(tmp_path, "profiles.jsonl", content))


def test_jsonl_latin1_byte_in_line_5_of_10(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i}).encode() for i in range(10)]
    lines[4] = '{"id": "Jos\xe9"}'.encode("latin-1")
    path = write(tmp_path, "profiles.jsonl", b"\n".join(lines) + b"\n")
    assert error_of(path, 5) == "profiles.jsonl: line 5 is not valid UTF-8 (save the file as UTF-8)"


def test_jsonl_huge_integer_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.jsonl", '{"id": 1, "n": ' + "9" * 5000 + "}\n")
    assert "too many digits" in error_of(path, 1)


@pytest.mark.parametrize(
    ("value", "where", "shown"),
    [
        ('{"score": NaN}', "score", "NaN"),
        ('{"score": Infinity}', "score", "Infinity"),
        ('{"score": -Infinity}', "score", "-Infinity"),
        ('{"score": 1e99999}', "score", "1e99999"),
        ('{"score": -1.5E400}', "score", "-1.5E400"),
        ('{"address": {"geo": [48.8, NaN]}}', "address.geo[1]", "NaN"),
    ],
)
def test_jsonl_non_finite_number_is_an_input_error(tmp_path: Path, value: str, where: str, shown: str) -> None:
    """Python's json accepts them; standard JSON (and so every platform) does not."""
    path = write(tmp_path, "p.jsonl", '{"id": "a", "n": 1.5}\n' + value.replace("{", '{"id": "b", ', 1) + "\n")
    message = error_of(path, 2)
    assert f"p.jsonl: line 2: attribute {where!r} is {shown}, not a finite number" in message


def test_jsonl_finite_numbers_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "p.jsonl", '{"id": "a", "big": 1.7976931348623157e308, "small": 5e-324, "i": 10}\n')
    assert rows(path)[0].attrs == {"id": "a", "big": 1.7976931348623157e308, "small": 5e-324, "i": 10}


def test_segment_jsonl_reads_only_the_key_even_beside_nan(tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", '{"id": "a", "score": NaN}\n')
    assert list(read_segment_keys(path)) == [(1, "a")]


def test_jsonl_deeply_nested_is_an_input_error(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    path = write(tmp_path, "profiles.jsonl", '{"id": 1}\n{"id": 2, "n": ' + deep + "}\n")
    assert "nested too deeply" in error_of(path, 2)


# --- files ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    message = error_of(tmp_path / "profiles.csv")
    assert message == "cannot read profiles.csv: No such file or directory (check the path and the file's permissions)"


def test_path_through_a_file(tmp_path: Path) -> None:
    write(tmp_path, "notadir", "x")
    message = error_of(tmp_path / "notadir" / "profiles.csv")
    assert message == "cannot read profiles.csv: Not a directory (check the path and the file's permissions)"


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "profiles.jsonl").mkdir()
    assert error_of(tmp_path / "profiles.jsonl").startswith("cannot read profiles.jsonl: ")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "profiles.csv", "id\n1\n")
    path.chmod(0)
    try:
        assert "Permission denied" in error_of(path)
    finally:
        path.chmod(0o600)


def test_errors_are_raised_while_iterating(tmp_path: Path) -> None:
    reader = read_profiles(tmp_path / "missing.csv")  # no error yet: a generator
    with pytest.raises(InputError):
        next(reader)
    path = write(tmp_path, "profiles.csv", "id\n1\n2\n,\n")
    reader = read_profiles(path)
    assert next(reader).key == "1"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("name", ["p.csv", "p.jsonl", "p.txt"])
def test_abandoned_generator_closes_the_file(tmp_path: Path, name: str) -> None:
    content = "id\n1\n2\n" if name.endswith(".csv") else '{"id": 1}\n{"id": 2}\n'
    path = write(tmp_path, name, content)

    def is_open() -> bool:
        return any(os.path.realpath(f"/proc/self/fd/{fd}") == str(path.resolve())
                   for fd in os.listdir("/proc/self/fd"))

    reader = read_segment_keys(path)
    next(reader)
    assert is_open()
    del reader  # abandoned half-way: the generator's `with` closes the file
    gc.collect()
    assert not is_open()


# --- segment key files ------------------------------------------------------------------------


def test_segment_one_key_per_line(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbf# members\nk1\n\n  k2  \n   # indented comment\nk3"
    path = write(tmp_path, "members.txt", content)
    assert list(read_segment_keys(path)) == [(2, "k1"), (4, "k2"), (6, "k3")]


def test_segment_no_extension_and_empty(tmp_path: Path) -> None:
    assert list(read_segment_keys(write(tmp_path, "members", "a\r\nb\r\n"))) == [(1, "a"), (2, "b")]
    assert list(read_segment_keys(write(tmp_path, "empty.lst", "\n# none\n"))) == []


def test_segment_csv_reads_only_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv", "name,email\nAnn, a@x.com\n\nBob,b@x.com\n")
    assert list(read_segment_keys(path, key="email")) == [(2, "a@x.com"), (4, "b@x.com")]


def test_segment_jsonl_reads_only_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "members.ndjson", '{"id": "a", "x": 1}\n\n{"id": 2}\n')
    assert list(read_segment_keys(path)) == [(1, "a"), (3, "2")]


def test_segment_format_override(tmp_path: Path) -> None:
    path = write(tmp_path, "members.csv", "id\nfoo\n")
    assert list(read_segment_keys(path, fmt="lines")) == [(1, "id"), (2, "foo")]
    other = write(tmp_path, "members.txt", "id,x\nfoo,1\n")
    assert list(read_segment_keys(other, fmt="csv")) == [(2, "foo")]


def test_segment_errors(tmp_path: Path) -> None:
    error_of(write(tmp_path, "m.csv", "id,x\na,1\nb\n"), 3, segment=True)
    assert "no column 'id'" in error_of(write(tmp_path, "n.csv", "email\na\n"), segment=True)
    error_of(write(tmp_path, "m.jsonl", '{"id": "a"}\n{"key": "b"}\n'), 2, segment=True)
    error_of(write(tmp_path, "m.txt", b"a\nb\nc\nd\n\xff\xfe\n"), 5, segment=True)
    error_of(tmp_path / "missing.txt", segment=True)


# --- streaming ----------------------------------------------------------------------------------


def test_200k_rows_stream_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("id,email,first_name,last_name,city\n")
        for i in range(200_000):
            f.write(f"{i},user{i}@example.com,First{i},Last{i},City{i % 100}\n")
    assert path.stat().st_size > 10_000_000
    tracemalloc.start()
    try:
        count = 0
        last = None
        for row in read_profiles(path):
            count += 1
            last = row
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert last is not None and last.line == 200_001 and last.key == "199999"
    assert peak < 20 * 1024 * 1024, peak


# --- gzip and stdin (issue 16) ------------------------------------------------------------------


def test_gzip_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i in range(200_000):
            f.write(json.dumps({"id": i, "email": f"user{i}@example.com", "first_name": f"First{i}"}) + "\n")
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_profiles(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 200_000
    assert peak < 20 * 1024 * 1024, peak


@pytest.mark.parametrize(("name", "expected"), [("p.csv.gz", "csv"), ("P.JSONL.GZ", "jsonl"), ("p.ndjson.gz", "jsonl")])
def test_format_is_read_under_the_gz_extension(name: str, expected: str) -> None:
    assert detect_format(name) == expected


def test_stdin_needs_a_format_and_reads_plain_or_gzip(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_format = r"^reading profiles from stdin needs the format \(pass --format csv\|jsonl\)$"
    with pytest.raises(InputError, match=needs_format):
        detect_format("-")
    for data in (b"id,email\n1,a@example.com\n", gzip.compress(b"id,email\n1,a@example.com\n")):
        stdin = io.TextIOWrapper(io.BytesIO(data))
        monkeypatch.setattr("sys.stdin", stdin)
        assert [(r.line, r.key) for r in read_profiles("-", fmt="csv")] == [(2, "1")]
        assert not stdin.buffer.closed  # the process's stdin stays open
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"k1\n# note\n\nk2\n")))
    assert list(read_segment_keys("-")) == [(1, "k1"), (4, "k2")]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"id\n1\n\xff\n")))
    with pytest.raises(InputError, match=r"^stdin is not valid UTF-8 at or after line \d+ \(send UTF-8\)$"):
        list(read_profiles("-", fmt="csv"))


def test_a_truncated_gzip_file_is_one_input_error(tmp_path: Path) -> None:
    data = gzip.compress(b"id,email\n" + b"".join(b"%d,u%d@example.com\n" % (i, i) for i in range(5000)))
    message = error_of(write(tmp_path, "cut.csv.gz", data[: len(data) // 2]))
    assert "cut.csv.gz is a damaged or truncated gzip file" in message and "compress it again" in message
