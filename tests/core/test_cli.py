"""The ``segport`` CLI end to end (in-process): workflows, --json documents, bad input, secrets."""

from __future__ import annotations

import json
import math
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import Result
from cryptography.fernet import Fernet
from jsonschema import Draft202012Validator

from segport import ConfigError, ExitStatus, Workspace, schemas
from segport.testing import dump_database
from segport.testing.fakes import MemoryPlatform

KEY = "SECRET-KEY-9f8e7d6c"
RUN_KEYS = {"id", "export", "status", "trigger", "user", "started_at", "finished_at", "counts", "requests", "retries",
            "reject_file"}



def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)  # exactly one JSON document on stdout


def assert_run_record(record: dict[str, Any]) -> None:
    assert RUN_KEYS <= set(record)
    Draft202012Validator(schemas.load("run-record")).validate(record)


@pytest.fixture
def sp(run_cli: Any) -> Callable[..., Result]:
    """``sp('users', 'list')``: the CLI acting as ada, in a workspace created by ``segport init``."""
    ok(run_cli("init", "--admin", "ada"))

    def invoke(*args: str, input: str | None = None) -> Result:
        return run_cli("--as", "ada", *args, input=input)

    return invoke


@pytest.fixture
def populated(sp: Callable[..., Result], make_profiles: Any, tmp_path: Path) -> Callable[..., Result]:
    """Nine profiles (FR: p000000, p000003, p000006), segments fr and vip, connection mem, export e1 (run once)."""
    keys = tmp_path / "vip.txt"
    keys.write_text("p000001\np000002\np999999\n", encoding="utf-8")
    for step in (
        ("profiles", "load", str(make_profiles(9))),
        ("segments", "define", "fr", "--where", "country = 'FR'"),
        ("segments", "load", "vip", str(keys)),
        ("connections", "add", "mem", "--type", "memory", "--config", json.dumps({"api_key": KEY}), "--agree-privacy"),
        ("exports", "add", "e1", "--connection", "mem", "--segment", "fr", "--email", "email",
         "--option", "audience_id=aud1"),
        ("exports", "run", "e1"),
    ):
        ok(sp(*step))
    return sp


# -- workflows ------------------------------------------------------------------------------------
def test_init_users_add_and_list(sp: Callable[..., Result], home: Path, database_url: str | None) -> None:
    assert (home / "segport.db").is_file() is (database_url is None)
    ok(sp("users", "add", "carl", "--role", "contributor"))
    added = as_json(sp("users", "add", "vera", "--role", "viewer", "--json"))
    assert added["name"] == "vera" and added["role"] == "viewer"
    users = as_json(sp("users", "list", "--json"))
    assert [(u["name"], u["role"]) for u in users] == [("ada", "admin"), ("carl", "contributor"), ("vera", "viewer")]
    assert "carl" in ok(sp("users", "list")).stdout


def test_init_twice_is_a_workspace_error(sp: Callable[..., Result], run_cli: Any, home: Path) -> None:
    before = dump_database(home)
    result = run_cli("init", "--admin", "bob")
    assert_bad(result, ExitStatus.WORKSPACE_ERROR)
    assert dump_database(home) == before


def test_profiles_load_and_show(sp: Callable[..., Result], make_profiles: Any) -> None:
    loaded = as_json(sp("profiles", "load", str(make_profiles(5)), "--json"))
    assert loaded == {"loaded": 5, "profiles": 5, "added": 5, "updated": 0, "unchanged": 0, "removed": 0, "key": "id",
                      "rekeyed_from": None}
    profile = as_json(sp("profiles", "show", "p000003", "--json"))
    assert profile == {"key": "p000003", "attributes": {
        "id": "p000003", "email": "User3@Example.com", "first_name": "First3", "last_name": "Last3",
        "country": "FR", "age": "21"}}
    assert "first_name: First3" in ok(sp("profiles", "show", "p000003")).stdout


def test_segments_load_define_and_list(sp: Callable[..., Result], make_profiles: Any, tmp_path: Path) -> None:
    ok(sp("profiles", "load", str(make_profiles(9))))
    keys = tmp_path / "vip.txt"
    keys.write_text("p000001\np000002\np999999\n", encoding="utf-8")
    assert as_json(sp("segments", "load", "vip", str(keys), "--json")) == {
        "segment": "vip", "members": 2, "unknown_keys": 1}
    defined = as_json(sp("segments", "define", "fr", "--where", "country = 'FR'", "--json"))
    assert defined["kind"] == "filter" and defined["expression"] == "country = 'FR'"
    ok(sp("segments", "define", "adults30", "--where", "age >= 23"))  # ages 18..26: p5..p8 are >= 23 (strings)
    rows = {r["name"]: r for r in as_json(sp("segments", "list", "--json"))}
    assert rows["vip"]["members"] == 2 and rows["vip"]["kind"] == "static"
    assert rows["fr"]["members"] == 3
    assert rows["adults30"]["members"] == 4


def test_exports_add_run_dry_run_and_runs(sp: Callable[..., Result], make_profiles: Any,
                                          platform: MemoryPlatform) -> None:
    ok(sp("profiles", "load", str(make_profiles(9))))
    ok(sp("segments", "define", "fr", "--where", "country = 'FR'"))
    ok(sp("connections", "add", "mem", "--type", "memory", "--config", json.dumps({"api_key": KEY}), "--agree-privacy"))
    export = as_json(sp("exports", "add", "e1", "--connection", "mem", "--segment", "fr", "--email", "email",
                        "--map", "FNAME=first_name", "--option", "audience_id=aud1", "--schedule", "0 3 * * *",
                        "--json"))
    assert export["mapping"] == {"FNAME": "first_name"} and export["options"] == {"audience_id": "aud1"}
    assert export["schedule"] == "0 3 * * *" and export["enabled"] is True and export["detached"] is False

    run = as_json(sp("exports", "run", "e1", "--json"))
    assert_run_record(run)
    assert (run["export"], run["status"], run["trigger"], run["user"]) == ("e1", "succeeded", "manual", "ada")
    assert run["counts"]["created"] == 3 and run["requests"] >= 1 and run["reject_file"] is None
    assert sorted(platform.members) == ["user0@example.com", "user3@example.com", "user6@example.com"]
    assert platform.members["user3@example.com"].fields == {"FNAME": "First3"}

    calls = len(platform.calls)
    dry = ok(sp("exports", "run", "e1", "--dry-run"))
    assert "dry run of e1" in dry.stdout and "nothing was sent" in dry.stdout and "  selected: 3" in dry.stdout
    assert len(platform.calls) == calls  # nothing sent
    dry_json = as_json(sp("exports", "run", "e1", "--dry-run", "--json"))
    assert dry_json["status"] == "planned" and dry_json["plan"]["selected"] == 3
    assert_run_record(dry_json)

    runs = as_json(sp("runs", "list", "--json"))
    assert [r["id"] for r in runs] == [dry_json["id"], dry_json["id"] - 1, run["id"]]
    for record in runs:
        assert_run_record(record)
    shown = as_json(sp("runs", "show", str(run["id"]), "--json"))
    assert shown == run
    assert "status: succeeded" in ok(sp("runs", "show", str(run["id"]))).stdout


def test_schedule_set_and_show(populated: Callable[..., Result]) -> None:
    assert as_json(populated("schedule", "show", "--json")) == {
        "refresh": None, "jobs": {}, "failing": {}, "schedules": []}
    ok(populated("exports", "edit", "e1", "--schedule", "30 2 * * 1"))
    ok(populated("schedule", "set", "0  3 * * *"))
    shown = as_json(populated("schedule", "show", "--json"))
    schedules = shown.pop("schedules")
    assert shown == {
        "refresh": "0 3 * * *", "jobs": {"refresh": "0 3 * * *", "export:e1": "30 2 * * 1"}, "failing": {}}
    assert [(s["job"], s["cron"], s["timezone"], s["active"], len(s["next_runs"])) for s in schedules] == [
        ("refresh", "0 3 * * *", "UTC", True, 3), ("export:e1", "30 2 * * 1", "UTC", True, 3)]
    assert "refresh: 0 3 * * *" in ok(populated("schedule", "show")).stdout


def test_refresh(populated: Callable[..., Result], platform: MemoryPlatform) -> None:
    ok(populated("exports", "add", "e2", "--connection", "mem", "--segment", "vip", "--email", "email",
                 "--option", "audience_id=aud1"))
    ok(populated("exports", "add", "off", "--connection", "mem", "--segment", "vip", "--email", "email",
                 "--option", "audience_id=aud1"))
    ok(populated("exports", "disable", "off"))
    results = as_json(populated("refresh", "--json"))
    assert sorted(r["export"] for r in results) == ["e1", "e2"]
    for record in results:
        assert_run_record(record)
        assert record["trigger"] == "refresh" and record["status"] == "succeeded"
    e2 = next(r for r in results if r["export"] == "e2")
    assert e2["counts"]["created"] == 2


def test_refresh_failure_exits_run_failed(populated: Callable[..., Result], platform: MemoryPlatform) -> None:
    platform.audiences.clear()
    result = populated("refresh", "--json")
    assert result.exit_code == ExitStatus.RUN_FAILED
    document = json.loads(result.stdout)  # one JSON object: the error, and every export's result
    assert document["error"]["code"] == ExitStatus.RUN_FAILED and document["error"]["status"] == "RUN_FAILED"
    assert document["results"][0]["status"] == "failed"
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")


# -- bad input ------------------------------------------------------------------------------------
def assert_bad(result: Result, status: ExitStatus) -> str:
    """The error contract: documented exit status, one ``error:`` line, no traceback."""
    assert result.exit_code == status, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def _jsonl(tmp_path: Path, text: str, name: str = "bad.jsonl") -> str:
    return _csv(tmp_path, text, name)


def _csv(tmp_path: Path, text: str, name: str = "bad.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


BAD_INPUT: list[Any] = [
    pytest.param(lambda t: ["profiles", "load", _csv(t, "id,email\np1,a@x.com\np2,b@x.com,extra\n")],
                 ExitStatus.INPUT_ERROR, "line 3 has 3 fields", id="ragged-csv"),
    pytest.param(lambda t: ["profiles", "load", _csv(t, "id,email\np1,a@x.com\n"), "--key", "customer"],
                 ExitStatus.INPUT_ERROR, "no column 'customer'", id="unknown-key-column"),
    pytest.param(lambda t: ["profiles", "load", _csv(t, "id,email\np1,a@x.com\np2,b@x.com\np1,c@x.com\n")],
                 ExitStatus.INPUT_ERROR, "line 4 repeats key 'p1' first seen on line 2", id="duplicate-keys"),
    pytest.param(lambda t: ["profiles", "load", _csv(t, "")], ExitStatus.INPUT_ERROR, "is empty", id="empty-file"),
    *(pytest.param(lambda t, v=value: ["profiles", "load", _jsonl(t, f'{{"id": "p1", "email": "a@x.com"}}\n'
                                                           f'{{"id": "p2", "score": {v}, "email": "b@x.com"}}\n')],
                   ExitStatus.INPUT_ERROR, f"bad.jsonl: line 2: attribute 'score' is {value}, not a finite number",
                   id=f"jsonl-{value}")
      for value in ("NaN", "Infinity", "-Infinity", "1e99999")),
    pytest.param(lambda t: ["connections", "add", "c", "--type", "memory", "--config", "{bad", "--agree-privacy"],
                 ExitStatus.CONFIG_ERROR, "not valid JSON", id="bad-json-config"),
    pytest.param(lambda t: ["connections", "add", "c", "--type", "memory", "--config", '{"api_key": "SECRET-KEY-x",'
                            ' "account": 7}', "--agree-privacy"],
                 ExitStatus.CONFIG_ERROR, '$.account: 7 is not of type "string"', id="config-fails-schema"),
    pytest.param(lambda t: ["connections", "add", "c", "--type", "nosuch", "--config", json.dumps({"api_key": KEY}),
                            "--agree-privacy"],
                 ExitStatus.PLUGIN_ERROR, "unknown destination type 'nosuch' (available: memory)",
                 id="unknown-connection-type"),
    pytest.param(lambda t: ["schedule", "set", "61 * * * *"], ExitStatus.INPUT_ERROR, "invalid cron schedule",
                 id="bad-cron-schedule-set"),
    pytest.param(lambda t: ["schedule", "set", "0 3 * *"], ExitStatus.INPUT_ERROR, "invalid cron schedule",
                 id="four-field-cron"),
    pytest.param(lambda t: ["schedule", "set", "0 0 30 2 *"], ExitStatus.INPUT_ERROR,
                 "invalid cron schedule '0 0 30 2 *': it never fires", id="30-february-schedule-set"),
    pytest.param(lambda t: ["exports", "edit", "e1", "--schedule", "0 0 31 4 *"], ExitStatus.INPUT_ERROR,
                 "invalid cron schedule '0 0 31 4 *': it never fires", id="31-april-exports-edit"),
    pytest.param(lambda t: ["exports", "edit", "e1", "--schedule", "0 0 30 2 *"], ExitStatus.INPUT_ERROR,
                 "invalid cron schedule '0 0 30 2 *': it never fires", id="30-february-exports-edit"),
    pytest.param(lambda t: ["exports", "add", "e2", "--connection", "mem", "--segment", "fr", "--email", "email",
                            "--option", "audience_id=aud1", "--schedule", "every day"],
                 ExitStatus.INPUT_ERROR, "invalid cron schedule 'every day'", id="bad-cron-exports-add"),
    pytest.param(lambda t: ["exports", "edit", "e1", "--schedule", "0 25 * * *"],
                 ExitStatus.INPUT_ERROR, "invalid cron schedule", id="bad-cron-exports-edit"),
    pytest.param(lambda t: ["exports", "show", "nope"], ExitStatus.NOT_FOUND, "unknown export 'nope'",
                 id="unknown-export-show"),
    pytest.param(lambda t: ["exports", "run", "nope"], ExitStatus.NOT_FOUND, "unknown export 'nope'",
                 id="unknown-export-run"),
    pytest.param(lambda t: ["segments", "remove", "nope"], ExitStatus.NOT_FOUND, "unknown segment 'nope'",
                 id="unknown-segment-remove"),
    pytest.param(lambda t: ["exports", "add", "e2", "--connection", "mem", "--segment", "nope", "--email", "email",
                            "--option", "audience_id=aud1"], ExitStatus.NOT_FOUND, "unknown segment 'nope'",
                 id="unknown-segment-export"),
    pytest.param(lambda t: ["connections", "show", "nope"], ExitStatus.NOT_FOUND, "unknown connection 'nope'",
                 id="unknown-connection-show"),
    pytest.param(lambda t: ["exports", "add", "e2", "--connection", "nope", "--segment", "fr", "--email", "email",
                            "--option", "audience_id=aud1"], ExitStatus.NOT_FOUND, "unknown connection 'nope'",
                 id="unknown-connection-export"),
    pytest.param(lambda t: ["runs", "show", "999"], ExitStatus.NOT_FOUND, "unknown run 999", id="unknown-run"),
    pytest.param(lambda t: ["profiles", "show", "nope"], ExitStatus.NOT_FOUND, "unknown profile key 'nope'",
                 id="unknown-profile"),
    pytest.param(lambda t: ["segments", "define", "x", "--where", "country = "], ExitStatus.INPUT_ERROR,
                 "filter expression: expected a value after '='",
                 id="invalid-filter"),
    pytest.param(lambda t: ["segments", "define", "x", "--where", "country == 'FR' and"], ExitStatus.INPUT_ERROR,
                 "filter expression: expected a field name",
                 id="invalid-filter-trailing-and"),
    pytest.param(lambda t: ["exports", "add", "e1", "--connection", "mem", "--segment", "fr", "--email", "email",
                            "--option", "audience_id=aud1"], ExitStatus.CONFIG_ERROR, "exists already",
                 id="duplicate-export"),
    pytest.param(lambda t: ["exports", "add", "e2", "--connection", "mem", "--segment", "fr", "--email", "email",
                            "--map", "email=email", "--option", "audience_id=aud1"], ExitStatus.CONFIG_ERROR,
                 "--email FIELD", id="map-email"),
]


@pytest.mark.parametrize(("args", "status", "message"), BAD_INPUT)
def test_bad_input(populated: Callable[..., Result], home: Path, tmp_path: Path, args: Callable[[Path], list[str]],
                   status: ExitStatus, message: str) -> None:
    before = dump_database(home)
    line = assert_bad(populated(*args(tmp_path)), status)
    assert message in line
    assert dump_database(home) == before


def test_an_unknown_user_is_refused_and_the_attempt_audited(populated: Callable[..., Result], home: Path) -> None:
    before = dump_database(home).splitlines()
    line = assert_bad(populated("--as", "mallory", "users", "list"), ExitStatus.NOT_FOUND)
    assert "unknown user 'mallory'" in line
    added = [row for row in dump_database(home).splitlines() if row not in set(before)]  # issue 15: audited
    assert len(added) == 1 and added[0].startswith('INSERT INTO "audit"')
    assert "'mallory', 'denied', 'users.list', '{\"reason\":\"unknown user\"}'" in added[0]


def test_exports_add_without_segment_is_a_usage_error(populated: Callable[..., Result], home: Path) -> None:
    before = dump_database(home)
    result = populated("exports", "add", "e2", "--connection", "mem", "--email", "email", "--option", "audience_id=a")
    assert result.exit_code == ExitStatus.USAGE
    assert "--segment" in result.stderr and "Traceback" not in result.output
    assert dump_database(home) == before


def test_exports_add_without_segment_prints_one_error_line(populated: Callable[..., Result]) -> None:
    result = populated("exports", "add", "e2", "--connection", "mem", "--email", "email", "--option", "audience_id=a")
    assert "--segment" in assert_bad(result, ExitStatus.USAGE)


def test_exports_add_with_no_segment_api(populated: Callable[..., Result], home: Path) -> None:
    before = dump_database(home)
    with Workspace.open(home, user="ada") as ws, pytest.raises(ConfigError, match="at least one segment"):
        ws.add_export("e2", connection="mem", segments=[], email_field="email", options={"audience_id": "aud1"})
    assert dump_database(home) == before


def test_debug_prints_the_traceback_and_keeps_the_exit_status(populated: Callable[..., Result]) -> None:
    """Issue 15: ``--debug`` used to let the error escape, so every failure exited 1."""
    result = populated("--debug", "exports", "show", "nope")
    assert result.exit_code == ExitStatus.NOT_FOUND, result.output
    assert "Traceback (most recent call last)" in result.stderr
    assert "segport.errors.NotFound: unknown export 'nope'" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: unknown export 'nope'")


# -- secrets --------------------------------------------------------------------------------------
def test_secret_never_shown_or_stored_in_clear(populated: Callable[..., Result], platform: MemoryPlatform,
                                               home: Path, run_cli: Any, database_url: str | None) -> None:
    config = json.dumps({"api_key": KEY})
    results: list[Result] = []

    def run(*args: str, input: str | None = None, expect: int = ExitStatus.OK) -> Result:
        results.append(populated(*args, input=input))
        assert results[-1].exit_code == expect, results[-1].output
        return results[-1]

    bad = ExitStatus.CONFIG_ERROR
    for fmt in ((), ("--json",)):
        run("connections", "add", f"c{len(fmt)}", "--type", "memory", "--config", config, "--agree-privacy", *fmt)
        run("connections", "list", *fmt)
        run("connections", "show", "mem", *fmt)
        run("connections", "test", "mem", *fmt)
        run("exports", "list", *fmt)
        run("exports", "show", "e1", *fmt)
        run("exports", "run", "e1", *fmt)
        run("exports", "run", "e1", "--dry-run", *fmt)
        # failing ones
        run("connections", "add", "mem", "--type", "memory", "--config", config, "--agree-privacy", *fmt, expect=bad)
        run("connections", "add", "x", "--type", "memory", "--config", config, *fmt, expect=bad)  # no consent
        run("connections", "add", "x", "--type", "memory", "--config", json.dumps({"api_key": KEY, "zz": KEY}),
            "--agree-privacy", *fmt, expect=bad)  # an unknown property holding the key
        run("connections", "add", "x", "--type", "memory", "--config", "-", "--agree-privacy", *fmt,
            input=json.dumps({"api_key": KEY, "account": 1}), expect=bad)
        run("connections", "add", "x", "--type", "nosuch", "--config", config, "--agree-privacy", *fmt,
            expect=ExitStatus.PLUGIN_ERROR)
        run("exports", "add", "e9", "--connection", "mem", "--segment", "fr", "--email", "email", *fmt,
            "--option", "audience_id=aud1", "--option", "zz=1", expect=bad)
    run("connections", "set-cap", "mem", "100")
    run("exports", "edit", "e1", "--option", "tag_prefix=t-", "--json")
    run("exports", "disable", "e1")
    run("exports", "enable", "e1")
    platform.valid_keys = {"another-key-0000"}
    for fmt in ((), ("--json",)):
        run("connections", "test", "mem", *fmt, expect=ExitStatus.AUTH_ERROR)
        run("exports", "run", "e1", *fmt, expect=ExitStatus.AUTH_ERROR)
        run("connections", "add", "y", "--type", "memory", "--config", config, "--agree-privacy", *fmt,
            expect=ExitStatus.AUTH_ERROR)
    failed = json.loads(results[-2].stdout)["run"]  # the failure's JSON object holds the failed run's record
    assert failed["status"] == "failed"
    platform.valid_keys = None
    run("runs", "list", "--json")
    run("runs", "show", str(failed["id"]), "--json")
    run("runs", "show", str(failed["id"]))
    run("audit", "list", "--json")
    run("audit", "list")
    run("connections", "remove", "c0", "--yes")
    run("exports", "remove", "e1", "--yes")

    assert len(results) > 40
    for result in results:
        assert "Traceback" not in result.output
        assert KEY not in result.stdout and KEY not in result.stderr and KEY not in str(result.exception or "")
    # every file of the workspace after the last connection closed (WAL checkpointed), and any left WAL
    files = [p for p in home.rglob("*") if p.is_file() and p.name != "secret.key"]
    assert any(p.name == "segport.db" for p in files) is (database_url is None)
    assert KEY not in dump_database(home)
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


def test_secret_key_file_mode(sp: Callable[..., Result], home: Path) -> None:
    assert stat.S_IMODE(os.stat(home / "secret.key").st_mode) == 0o600
    Fernet((home / "secret.key").read_bytes().strip())  # a valid key


@pytest.mark.parametrize("args", [("connections", "test", "mem"), ("connections", "test", "mem", "--json"),
                                  ("exports", "run", "e1", "--json")])
def test_wrong_secret_key_is_a_workspace_error(populated: Callable[..., Result], home: Path,
                                               monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]) -> None:
    before = dump_database(home)
    monkeypatch.setenv("SEGPORT_SECRET_KEY", Fernet.generate_key().decode())
    result = populated(*args)
    line = assert_bad(result, ExitStatus.WORKSPACE_ERROR)
    assert "cannot be decrypted" in line and KEY not in result.output
    if "--json" in args:  # one JSON error object on stdout, the same line
        assert json.loads(result.stdout) == {"error": {"code": 12, "status": "WORKSPACE_ERROR", "message": line[7:]}}
    else:
        assert result.stdout == ""
    assert dump_database(home) == before


def test_right_secret_key_from_env_works(populated: Callable[..., Result], home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGPORT_SECRET_KEY", (home / "secret.key").read_text().strip())
    assert as_json(populated("connections", "test", "mem", "--json"))["status"] == "ok"


def test_malformed_secret_key_is_a_workspace_error(populated: Callable[..., Result],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGPORT_SECRET_KEY", "not-a-fernet-key")
    assert "malformed" in assert_bad(populated("connections", "test", "mem"), ExitStatus.WORKSPACE_ERROR)


# -- plugins (no workspace needed) ----------------------------------------------------------------
def test_plugins_list_and_show(run_cli: Any) -> None:
    rows = as_json(run_cli("plugins", "list", "--json"))
    assert [(r["name"], r["status"], r["reason"]) for r in rows] == [("memory", "ok", None)]
    assert "memory" in ok(run_cli("plugins", "list")).stdout
    spec = as_json(run_cli("plugins", "show", "memory", "--json"))
    assert spec["name"] == "memory" and spec["limits"]["batch_size"] == 10
    assert spec["connection_schema"]["properties"]["api_key"]["writeOnly"] is True
    assert spec["export_schema"]["required"] == ["audience_id"]
    assert spec["fields"]["email"] == "required" and "FNAME" in spec["fields"]
    assert "api_key (required, secret)" in ok(run_cli("plugins", "show", "memory")).stdout
    assert "tag_prefix (default \"\"): Prefix of segment markers" in ok(run_cli("plugins", "show", "memory")).stdout
    assert_bad(run_cli("plugins", "show", "nosuch"), ExitStatus.PLUGIN_ERROR)


# -- the workspace itself -------------------------------------------------------------------------
def test_no_workspace_is_a_workspace_error(run_cli: Any, home: Path) -> None:
    assert "no workspace" in assert_bad(run_cli("--as", "ada", "users", "list"), ExitStatus.WORKSPACE_ERROR)
    assert not home.exists()


def test_missing_key_file_is_a_workspace_error(populated: Callable[..., Result], home: Path) -> None:
    (home / "secret.key").unlink()
    assert "secret.key is missing" in assert_bad(populated("users", "list"), ExitStatus.WORKSPACE_ERROR)


def test_init_with_an_invalid_admin_name(run_cli: Any) -> None:
    assert "invalid user name" in assert_bad(run_cli("init", "--admin", "  "), ExitStatus.CONFIG_ERROR)


def test_failed_init_leaves_nothing_behind(run_cli: Any, home: Path) -> None:
    assert run_cli("init", "--admin", "  ").exit_code == ExitStatus.CONFIG_ERROR
    assert not (home / "segport.db").exists()
    ok(run_cli("init", "--admin", "ada"))


# -- numbers JSON cannot hold, in a workspace loaded before they were refused -----------------------
def _strict_json(text: str) -> Any:
    """Parse standard JSON only: NaN, Infinity and -Infinity are refused."""
    def refuse(constant: str) -> Any:
        raise AssertionError(f"non-standard JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_of_an_old_workspace_are_neither_printed_nor_sent(
        populated: Callable[..., Result], platform: MemoryPlatform, tmp_path: Path, home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from segport import readers

    old = tmp_path / "old.jsonl"
    scores = (("p000000", math.nan), ("p000003", math.inf), ("p000006", 7.5))
    old.write_text("".join(json.dumps({"id": key, "email": f"{key}@example.org", "country": "FR", "score": score})
                           + "\n" for key, score in scores), encoding="utf-8")
    with monkeypatch.context() as patch:  # the reader of an older segport, which let NaN and infinity in
        patch.setattr(readers, "read_profiles", lambda path, key="id", fmt=None: readers._read_jsonl(path, key))
        ok(populated("profiles", "load", str(old)))
    shown = _strict_json(ok(populated("profiles", "show", "p000000", "--json")).stdout)
    assert shown["attributes"]["score"] is None  # printed as JSON.stringify would
    ok(populated("exports", "add", "scored", "--connection", "mem", "--segment", "fr", "--email", "email",
                 "--map", "SCORE=score", "--option", "audience_id=aud1"))
    platform.calls.clear()
    result = populated("exports", "run", "scored", "--json")
    assert "Traceback" not in result.output
    run = _strict_json(result.stdout)
    assert run["counts"].get("created") == 1 and run["counts"].get("rejected") == 2, run
    assert platform.sent_emails() == ["p000006@example.org"]
    rejects = [json.loads(line) for line in Path(run["reject_file"]).read_text(encoding="utf-8").splitlines()]
    assert sorted(r["key"] for r in rejects) == ["p000000", "p000003"]
    assert all("attribute 'score'" in r["reason"] and "not a finite number" in r["reason"] for r in rejects), rejects


# -- the scheduler survives a bad or failing schedule ----------------------------------------------
def test_scheduler_goes_on_past_a_broken_cron_line_and_a_failing_run(
        populated: Callable[..., Result], platform: MemoryPlatform, home: Path, database_url: str | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from segport.cli import _schedule
    from segport.scheduling import Scheduler
    from segport.store import open_store

    ok(populated("exports", "edit", "e1", "--schedule", "* * * * *"))
    ok(populated("exports", "add", "broken", "--connection", "mem", "--segment", "vip", "--email", "email",
                 "--option", "audience_id=nosuch", "--schedule", "* * * * *"))
    store = open_store(database_url, home)  # an old workspace: its refresh fires on 30 February
    try:
        with store.transaction():
            store.set_setting("refresh_schedule", "0 0 30 2 *")
    finally:
        store.close()
    start = datetime(2026, 11, 25, 2, 59, 30, tzinfo=timezone.utc)

    def minutes(**kwargs: Any) -> Scheduler:  # three ticks, one minute apart, then stop
        times = iter([start + timedelta(minutes=i) for i in range(4)])
        stop = kwargs["stop"]

        def clock() -> datetime:
            now = next(times, None)
            if now is None:
                stop.set()
            return now or start
        return Scheduler(*kwargs.pop("args"), clock=clock, **kwargs)

    monkeypatch.setattr(_schedule, "Scheduler", lambda *args, **kwargs: minutes(args=args, **kwargs))
    result = populated("scheduler", "--tick", "0.05")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert result.stdout.count("export:e1: e1 succeeded") == 3
    assert result.stdout.count("export:broken: broken failed") == 3
    errors = result.stderr.splitlines()
    assert len([e for e in errors if "error: refresh: cron schedule '0 0 30 2 *' has no next time" in e]) == 1
    assert len([e for e in errors if "error: export:broken: 1 of 1 runs failed: broken" in e]) == 3
    for line in errors:
        assert datetime.fromisoformat(line.split(" ")[0]).tzinfo is not None, line  # each line has its time
    shown = as_json(populated("schedule", "show", "--json"))
    assert shown["refresh"] == "0 0 30 2 *"
    assert shown["jobs"] == {"refresh": "0 0 30 2 *", "export:e1": "* * * * *", "export:broken": "* * * * *"}
    assert sorted(shown["failing"]) == ["export:broken", "refresh"]
    assert shown["failing"]["refresh"]["cron"] == "0 0 30 2 *"
    assert "no next time" in shown["failing"]["refresh"]["error"]
    assert "runs failed" in shown["failing"]["export:broken"]["error"]
    assert "FAILING since" in ok(populated("schedule", "show")).stdout
    ok(populated("schedule", "set", "0 3 * * *"))  # a new line clears the mark
    assert sorted(as_json(populated("schedule", "show", "--json"))["failing"]) == ["export:broken"]
    platform.audiences.add("nosuch")  # a run that succeeds clears it too
    assert ok(populated("scheduler", "--tick", "0.05")).stdout.count("export:broken: broken succeeded") == 3
    assert as_json(populated("schedule", "show", "--json"))["failing"] == {}
