"""Profiles: the workspace's key guards loads; --replace counts; list, count, remove; stdin and gzip (issue 16)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import delete

from segport import Workspace
from segport.errors import ConfigError, ExitStatus
from segport.services.profiles import KeyMismatch
from segport.store.schema import settings


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def customers(tmp_path: Path, count: int, *, start: int = 0, name: str = "customers.csv", country: str = "FR") -> Path:
    rows = [f"c{i:05d},user{i}@example.com,First{i},{country if i % 2 == 0 else 'DE'}" for i in range(start, count)]
    return write(tmp_path / name, "id,email,first_name,country", rows)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


# -- the workspace's key --------------------------------------------------------------------------
def test_a_load_by_another_key_is_refused_naming_the_workspace_key(
    ws: Workspace, run_cli: Any, tmp_path: Path
) -> None:
    path = customers(tmp_path, 2000)
    assert run_cli("--as", "ada", "profiles", "load", str(path)).exit_code == 0
    assert ws.profile_key() == "id"

    result = run_cli("--as", "ada", "profiles", "load", str(path), "--key", "email")

    assert result.exit_code == ExitStatus.CONFIG_ERROR, result.output
    line = one_error_line(result.stderr)
    assert "keyed by 'id'" in line and "--key id" in line and "--replace" in line
    assert ws.count_profiles() == 2000  # not 4,000
    with pytest.raises(KeyMismatch) as raised:
        ws.load_profiles(path, key="email")
    assert (raised.value.current, raised.value.requested) == ("id", "email")
    assert isinstance(raised.value, ConfigError) and "--" not in str(raised.value)


def test_a_load_without_key_uses_the_workspace_key(ws: Workspace, run_cli: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "customer_id,email", ["k1,a@example.com", "k2,b@example.com"])
    assert run_cli("--as", "ada", "profiles", "load", str(path), "--key", "customer_id").exit_code == 0
    again = run_cli("--as", "ada", "profiles", "load", str(path), "--json")  # no --key: the workspace's
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["key"] == "customer_id"
    assert ws.count_profiles() == 2


def test_a_workspace_of_an_earlier_release_has_its_key_inferred(ws: Workspace, tmp_path: Path) -> None:
    ws.load_profiles(write(tmp_path / "p.csv", "customer_id,email", ["k1,a@example.com", "k2,b@example.com"]),
                     key="customer_id")
    with ws.store.transaction() as db:  # as before issue 16: no key recorded
        db.db.execute(delete(settings).where(settings.c.key == "profile_key"))
    assert ws.profile_key() == "customer_id"
    with pytest.raises(KeyMismatch, match="keyed by 'customer_id'"):
        ws.load_profiles(write(tmp_path / "q.csv", "id,customer_id,email", ["1,k1,a@example.com"]), key="id")
    assert ws.load_profiles(tmp_path / "p.csv").key == "customer_id"  # recorded from now on
    assert ws.store.profile_key_column() == "customer_id"


def test_an_empty_workspace_takes_any_key(ws: Workspace, tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "id,email", ["1,a@example.com"])
    ws.load_profiles(path)
    ws.remove_profiles(["1"])
    assert ws.load_profiles(path, key="email").key == "email"
    assert ws.profile_key() == "email"


def test_replace_with_another_key_re_keys_after_confirmation(ws: Workspace, run_cli: Any, tmp_path: Path) -> None:
    path = customers(tmp_path, 10)
    ws.load_profiles(path)
    ws.load_segment("VIP", write(tmp_path / "vip.txt", "c00001", ["c00002"]))

    refused = run_cli("--as", "ada", "profiles", "load", str(path), "--key", "email", "--replace")
    assert refused.exit_code == ExitStatus.USAGE
    line = one_error_line(refused.stderr)
    assert "re-key the profiles from 'id' to 'email'" in line and "remove 10 profiles" in line and "--yes" in line
    assert ws.profile_key() == "id" and ws.get_profile("c00001")["email"] == "user1@example.com"

    done = run_cli("--as", "ada", "profiles", "load", str(path), "--key", "email", "--replace", "--yes", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {
        "loaded": 10, "profiles": 10, "added": 10, "updated": 0, "unchanged": 0, "removed": 10, "key": "email",
        "rekeyed_from": "id",
    }
    assert "static segments 'VIP'" in done.stderr and "--key email" in done.stderr
    assert ws.profile_key() == "email" and ws.get_profile("user3@example.com")["id"] == "c00003"


# -- what a load reports --------------------------------------------------------------------------
def test_replace_reports_added_updated_unchanged_and_removed(ws: Workspace, run_cli: Any, tmp_path: Path) -> None:
    ws.load_profiles(customers(tmp_path, 10))  # c00000..c00009
    rows = [f"c{i:05d},user{i}@example.com,{'New' if i == 5 else 'First'}{i},{'FR' if i % 2 == 0 else 'DE'}"
            for i in range(4, 13)]  # 0-3 go, 4 and 6-9 stay, 5 changes, 10-12 come
    path = write(tmp_path / "next.csv", "id,email,first_name,country", rows)

    human = run_cli("--as", "ada", "profiles", "load", str(path), "--replace", "--yes")
    assert human.exit_code == 0, human.output
    assert human.stdout == (
        "loaded 9 profiles from next.csv: 3 added, 1 updated, 5 unchanged, 4 removed (9 in the workspace)\n"
    )
    again = run_cli("--as", "ada", "profiles", "load", str(path), "--replace", "--json")  # removes none: no question
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {
        "loaded": 9, "profiles": 9, "added": 0, "updated": 0, "unchanged": 9, "removed": 0, "key": "id",
        "rekeyed_from": None,
    }
    plain = run_cli("--as", "ada", "profiles", "load", str(customers(tmp_path, 3, name="few.csv")))
    assert plain.stdout == "loaded 3 profiles from few.csv: 3 added, 0 updated, 0 unchanged (12 in the workspace)\n"
    entry = ws.audit_entries(3)[2]
    assert entry.action == "profiles.load" and entry.detail["removed"] == 4 and entry.detail["added"] == 3


def test_replace_that_would_remove_profiles_needs_yes_and_changes_nothing_without(
    ws: Workspace, run_cli: Any, tmp_path: Path
) -> None:
    ws.load_profiles(customers(tmp_path, 10))
    smaller = customers(tmp_path, 4, name="smaller.csv", country="ES")
    refused = run_cli("--as", "ada", "profiles", "load", str(smaller), "--replace")
    assert refused.exit_code == ExitStatus.USAGE
    assert "remove 6 profiles not in smaller.csv" in one_error_line(refused.stderr)
    assert ws.count_profiles() == 10 and ws.get_profile("c00000")["country"] == "FR"  # all or nothing


def test_a_terminal_is_asked_and_a_no_changes_nothing(
    ws: Workspace, run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("segport.cli._confirm.sys", SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True)))
    ws.load_profiles(customers(tmp_path, 10))
    no = run_cli("--as", "ada", "profiles", "remove", "--where", "country = 'DE'", input="n\n")
    assert no.exit_code == 1
    assert "remove 5 profiles matching \"country = 'DE'\"" in no.stderr and "aborted: nothing changed" in no.stderr
    assert ws.count_profiles() == 10
    yes = run_cli("--as", "ada", "profiles", "remove", "--where", "country = 'DE'", input="y\n")
    assert yes.exit_code == 0 and yes.stdout == "removed 5 profiles\n"
    assert ws.count_profiles() == 5


# -- list, count, remove --------------------------------------------------------------------------
def test_list_pages_and_filters(ws: Workspace, run_cli: Any, tmp_path: Path) -> None:
    ws.load_profiles(customers(tmp_path, 25))
    page = json.loads(run_cli("--as", "vera", "profiles", "list", "--limit", "10", "--offset", "20", "--json").stdout)
    assert [p["key"] for p in page["profiles"]] == [f"c{i:05d}" for i in range(20, 25)]
    assert (page["total"], page["offset"], page["limit"]) == (25, 20, 10)
    assert page["profiles"][0]["attributes"] == {
        "id": "c00020", "email": "user20@example.com", "first_name": "First20", "country": "FR"}
    french = run_cli("--as", "vera", "profiles", "list", "--where", "country = 'FR'", "--limit", "3", "--offset", "2",
                     "--json")
    data = json.loads(french.stdout)
    assert [p["key"] for p in data["profiles"]] == ["c00004", "c00006", "c00008"] and data["total"] == 13
    human = run_cli("--as", "vera", "profiles", "list", "--limit", "2")
    assert human.exit_code == 0
    assert human.stdout.splitlines() == [
        "KEY     EMAIL              FIRST_NAME  COUNTRY",
        "c00000  user0@example.com  First0      FR",
        "c00001  user1@example.com  First1      DE",
    ]
    assert "profiles 1 to 2 of 25; next page: --offset 2" in human.stderr
    columns = run_cli("--as", "vera", "profiles", "list", "--limit", "1", "--columns", "country")
    assert columns.stdout.splitlines() == ["KEY     COUNTRY", "c00000  FR"]
    bad = run_cli("--as", "vera", "profiles", "list", "--where", "country = ")
    assert bad.exit_code == ExitStatus.INPUT_ERROR


def test_count(ws: Workspace, run_cli: Any, tmp_path: Path) -> None:
    ws.load_profiles(customers(tmp_path, 25))
    assert run_cli("--as", "vera", "profiles", "count").stdout == "25\n"
    counted = run_cli("--as", "vera", "profiles", "count", "--where", "country = 'DE'", "--json")
    assert json.loads(counted.stdout) == {"profiles": 12, "where": "country = 'DE'"}
    assert ws.count_profiles("first_name contains 'First1'") == 11


def test_remove_by_keys_by_file_by_stdin_and_by_filter(ws: Workspace, run_cli: Any, tmp_path: Path) -> None:
    ws.load_profiles(customers(tmp_path, 30))
    ws.load_segment("VIP", write(tmp_path / "vip.txt", "c00001", ["c00002", "c00003"]))
    ws.define_segment("french", "country = 'FR'")

    by_key = run_cli("--as", "carl", "profiles", "remove", "c00001", "c00002", "nobody", "--yes", "--json")
    assert by_key.exit_code == 0, by_key.output
    assert json.loads(by_key.stdout) == {"removed": 2, "not_found": 1}
    keys = write(tmp_path / "gone.txt", "# leavers", ["c00003", "", "c00004"])
    by_file = run_cli("--as", "carl", "profiles", "remove", "--keys-file", str(keys), "--yes")
    assert by_file.stdout == "removed 2 profiles\n"
    by_stdin = run_cli("--as", "carl", "profiles", "remove", "--keys-file", "-", "--yes", input="c00005\nc00006\n")
    assert by_stdin.stdout == "removed 2 profiles\n"
    by_filter = run_cli("--as", "carl", "profiles", "remove", "--where", "country = 'DE'", "--yes", "--json")
    assert json.loads(by_filter.stdout) == {"removed": 12, "not_found": 0}  # c00007, c00009 ... c00029

    assert ws.count_profiles() == 12
    members = {s.name: s.members for s in ws.list_segments()}
    assert members == {"VIP": 0, "french": 12}  # removed profiles left their segments
    reloaded = ws.load_profiles(customers(tmp_path, 4))
    assert reloaded.added == 4 - 1  # c00000 stayed; c00001..c00003 come back ...
    assert {s.name: s.members for s in ws.list_segments()}["VIP"] == 0  # ... but not into VIP
    entry = ws.audit_entries(4)[1]
    assert (entry.user, entry.action, entry.detail) == ("carl", "profiles.remove", {"profiles": 12,
                                                                                   "where": "country = 'DE'"})


def test_remove_needs_exactly_one_way_to_name_profiles_and_yes_without_a_terminal(
    ws: Workspace, run_cli: Any, tmp_path: Path
) -> None:
    ws.load_profiles(customers(tmp_path, 5))
    for args in ([], ["c00001", "--where", "country = 'FR'"]):
        result = run_cli("--as", "ada", "profiles", "remove", *args, "--yes")
        assert result.exit_code == ExitStatus.USAGE and "KEY arguments, --keys-file FILE or --where" in result.stderr
    refused = run_cli("--as", "ada", "profiles", "remove", "c00001")
    assert refused.exit_code == ExitStatus.USAGE and "--yes" in one_error_line(refused.stderr)
    assert ws.count_profiles() == 5
    nothing = run_cli("--as", "ada", "profiles", "remove", "nobody")  # nothing to remove: nothing to ask
    assert nothing.exit_code == 0 and nothing.stdout == "removed 0 profiles (1 key matched no profile)\n"
    viewer = run_cli("--as", "vera", "profiles", "remove", "c00001")
    assert viewer.exit_code == ExitStatus.PERMISSION_DENIED


# -- confirmation of the other removals -----------------------------------------------------------
def test_every_removal_needs_yes_without_a_terminal(ws: Workspace, run_cli: Any, memory_export: Any) -> None:
    memory_export(ws, 3)
    ws.define_segment("Spare", "email is not empty")
    for args in (["exports", "remove", "all"], ["connections", "remove", "mem"], ["segments", "remove", "Spare"],
                 ["users", "remove", "vera"]):
        refused = run_cli("--as", "ada", *args)
        assert refused.exit_code == ExitStatus.USAGE, (args, refused.output)
        line = one_error_line(refused.stderr)
        assert line.startswith(f"error: remove {args[0][:-1]} '{args[2]}'") and "confirm with --yes" in line
    assert [e.name for e in ws.list_exports()] == ["all"] and [c.name for c in ws.list_connections()] == ["mem"]
    assert {s.name for s in ws.list_segments()} == {"All", "Spare"} and len(ws.list_users()) == 3
    for args in (["exports", "remove", "all"], ["connections", "remove", "mem"], ["segments", "remove", "Spare"],
                 ["users", "remove", "vera"]):
        assert run_cli("--as", "ada", *args, "--yes").exit_code == 0, args
    assert ws.list_exports() == [] and ws.list_connections() == [] and len(ws.list_users()) == 2


# -- stdin and gzip -------------------------------------------------------------------------------
def test_profiles_load_from_stdin_needs_a_format(ws: Workspace, run_cli: Any) -> None:
    text = "id,email\n1,a@example.com\n2,b@example.com\n"
    missing = run_cli("--as", "ada", "profiles", "load", "-", input=text)
    assert missing.exit_code == ExitStatus.INPUT_ERROR
    assert "stdin" in one_error_line(missing.stderr) and "--format csv|jsonl" in missing.stderr
    loaded = run_cli("--as", "ada", "profiles", "load", "-", "--format", "csv", input=text)
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout.startswith("loaded 2 profiles from stdin:")
    line = '{"id": 3, "email": "c@x.org"}\n'
    jsonl = run_cli("--as", "ada", "profiles", "load", "-", "--format", "jsonl", input=line)
    assert jsonl.exit_code == 0 and ws.get_profile("3") == {"id": 3, "email": "c@x.org"}
    bad = run_cli("--as", "ada", "profiles", "load", "-", "--format", "csv", input="id,email\n4,d@x.org,extra\n")
    assert bad.exit_code == ExitStatus.INPUT_ERROR and "stdin: line 2" in one_error_line(bad.stderr)


def test_gzip_files_load_by_extension_magic_and_stdin(ws: Workspace, run_cli: Any, tmp_path: Path) -> None:
    text = "id,email,country\n1,a@example.com,FR\n2,b@example.com,DE\n"
    gz = tmp_path / "customers.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    assert run_cli("--as", "ada", "profiles", "load", str(gz)).exit_code == 0
    jsonl = tmp_path / "more.jsonl.gz"
    jsonl.write_bytes(gzip.compress(b'{"id": "3", "email": "c@example.com"}\n'))
    assert run_cli("--as", "ada", "profiles", "load", str(jsonl)).exit_code == 0
    unnamed = tmp_path / "export.csv"  # gzip without the extension: told by its magic bytes
    unnamed.write_bytes(gzip.compress(b"id,email\n4,d@example.com\n"))
    assert run_cli("--as", "ada", "profiles", "load", str(unnamed)).exit_code == 0
    piped = run_cli("--as", "ada", "profiles", "load", "-", "--format", "csv",
                    input=gzip.compress(b"id,email\n5,e@example.com\n"))
    assert piped.exit_code == 0, piped.output
    assert ws.count_profiles() == 5
    keys = tmp_path / "vip.txt.gz"
    keys.write_bytes(gzip.compress(b"1\n3\n"))
    assert run_cli("--as", "ada", "segments", "load", "VIP", str(keys)).exit_code == 0
    from_stdin = run_cli("--as", "ada", "segments", "load", "Two", "-", "--json", input="2\n5\n")
    assert json.loads(from_stdin.stdout) == {"segment": "Two", "members": 2, "unknown_keys": 0}
    assert {s.name: s.members for s in ws.list_segments()} == {"Two": 2, "VIP": 2}

    damaged = tmp_path / "damaged.csv.gz"
    damaged.write_bytes(gzip.compress(text.encode() * 50)[:-30])
    result = run_cli("--as", "ada", "profiles", "load", str(damaged))
    assert result.exit_code == ExitStatus.INPUT_ERROR
    assert "damaged.csv.gz is a damaged or truncated gzip file" in one_error_line(result.stderr)
    assert ws.count_profiles() == 5
