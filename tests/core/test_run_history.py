"""Runs you can read: absolute reject paths, ``runs rejects``, one reject line per person per reason,
``runs prune`` and the retention setting (both stores)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from segport import ExitStatus, InputError, NotFound, PermissionDenied, Registry, RetryPolicy, RunError, Workspace
from segport.plugins import make_manager
from segport.services.history import parse_age
from segport.store.schema import platform_ledger, reject_lines, runs, sync_state
from segport.testing.fakes import MemoryPlatform

BAD = {1: "not-an-email", 3: "two@@example.com"}  # rejected before sending, each with its own reason


def write_people(path: Path, count: int = 6, bad: dict[int, str] | None = None) -> Path:
    bad = BAD if bad is None else bad
    rows = ["id,email,first_name"] + [f"p{i:03d},{bad.get(i, f'user{i}@example.com')},First{i}" for i in range(count)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def setup_export(ws: Workspace, folder: Path) -> None:
    ws.load_profiles(write_people(folder / "people.csv"))
    ws.define_segment("All", "email is not empty")
    ws.add_connection("mem", "memory", {"api_key": "memory-key-0001"}, agree_privacy=True)
    ws.add_export("all", connection="mem", segments=["All"], email_field="email", mapping={"FNAME": "first_name"},
                  options={"audience_id": "aud1"})


def lines(path: str | None) -> list[dict[str, Any]]:
    assert path is not None
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def age(ws: Workspace, run_id: int, days: float) -> None:
    """Make a run look ``days`` old (its start moved back): the store's clock is not faked."""
    started = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="seconds")
    with ws.store.transaction():
        ws.store.db.execute(update(runs).where(runs.c.id == run_id).values(started_at=started))


def count(ws: Workspace, table: Any) -> int:
    return int(ws.store.db.execute(select(func.count()).select_from(table)).scalar_one())


# -- absolute reject paths ------------------------------------------------------------------------
def test_reject_paths_are_absolute_whatever_folder_the_run_started_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: Registry, database_url: str | None) -> None:
    monkeypatch.chdir(tmp_path)
    ws = Workspace.create(Path("rel-ws"), "ada", database_url=database_url, registry=registry,
                          pm=make_manager(autoload=False), retry=RetryPolicy(attempts=2, base=0.001, cap=0.01))
    try:
        setup_export(ws, tmp_path)
        run = ws.run_export("all")
        expected = str(tmp_path / "rel-ws" / "rejects" / f"run-{run.id}.jsonl")
        assert run.reject_file == expected
        monkeypatch.chdir(tmp_path / "rel-ws")  # read from elsewhere: the path still names the file
        assert Path(run.reject_file).is_file() and len(lines(run.reject_file)) == 2
        assert ws.get_run(run.id).reject_file == expected
        assert [r.reject_file for r in ws.list_runs()] == [expected]
        with ws.store.transaction():  # a run recorded by an older segport, started from tmp_path
            ws.store.db.execute(update(runs).where(runs.c.id == run.id)
                                .values(reject_file=f"rel-ws/rejects/run-{run.id}.jsonl"))
        assert ws.get_run(run.id).reject_file == expected
        assert [r.reject_file for r in ws.list_runs()] == [expected]
        assert ws.run_rejects(run.id).run.reject_file == expected
    finally:
        ws.close()


# -- one reject line per person per reason --------------------------------------------------------
def test_a_person_refused_again_for_the_same_reason_is_counted_not_rewritten(ws: Workspace, tmp_path: Path) -> None:
    setup_export(ws, tmp_path)
    first = ws.run_export("all")
    assert first.counts["rejected"] == 2
    assert [(line["key"], line["email"]) for line in lines(first.reject_file)] == [
        ("p001", "not-an-email"), ("p003", "two@@example.com")]

    again = ws.run_export("all", full=True)
    assert again.counts["rejected"] == 2 and again.counts["unchanged"] + again.counts["updated"] == 4
    assert again.reject_file is None
    assert not (ws.home / "rejects" / f"run-{again.id}.jsonl").exists()
    listed = ws.run_rejects(again.id)
    assert listed.total == 2
    assert [(r.key, r.status, r.reported_in, r.reporter_kept) for r in listed.rows] == [
        ("p001", "rejected", first.id, True), ("p003", "rejected", first.id, True)]
    assert [r.reason for r in listed.rows] == [line["reason"] for line in lines(first.reject_file)]
    assert {r.reported_in for r in ws.run_rejects(first.id).rows} == {first.id}

    ws.load_profiles(write_people(tmp_path / "changed.csv", bad={**BAD, 1: "still bad"}))  # a new reason for p001
    third = ws.run_export("all")
    assert third.counts["rejected"] == 2
    assert [(line["key"], line["email"]) for line in lines(third.reject_file)] == [("p001", "still bad")]
    assert {r.key: r.reported_in for r in ws.run_rejects(third.id).rows} == {"p001": third.id, "p003": first.id}
    assert count(ws, reject_lines) == 3


def test_a_run_the_platform_refuses_whole_says_who_refused_what(
        ws: Workspace, tmp_path: Path, platform: MemoryPlatform) -> None:
    """Most records refused by the platform after sending, two by segport before: the error tells them apart."""
    setup_export(ws, tmp_path)
    fake = "looks fake or invalid, please enter a real email address."
    platform.reject_emails = {f"user{i}@example.com": f"User{i}@Example.com {fake}" for i in (0, 2, 4, 5)}
    with pytest.raises(RunError) as raised:
        ws.run_export("all")
    run, message = raised.value.run, str(raised.value)
    assert run is not None and raised.value.exit_status is ExitStatus.RUN_FAILED
    assert message.startswith(
        f"all 6 selected profiles were refused: the platform refused 4 after sending (most common: <address> {fake}); "
        "segport refused 2 before sending (most common: "
    ), message
    assert message.endswith(f"; every reason: segport runs rejects {run.id}")
    assert "data matching" not in message  # the platform's refusals dominate: the matching is not to blame


def test_rejects_of_a_run_without_any(ws: Workspace, tmp_path: Path) -> None:
    ws.load_profiles(write_people(tmp_path / "people.csv", bad={}))
    ws.define_segment("All", "email is not empty")
    ws.add_connection("mem", "memory", {"api_key": "memory-key-0001"}, agree_privacy=True)
    ws.add_export("all", connection="mem", segments=["All"], email_field="email", options={"audience_id": "aud1"})
    run = ws.run_export("all")
    listed = ws.run_rejects(run.id)
    assert listed.total == 0 and listed.rows == [] and run.reject_file is None
    with pytest.raises(NotFound, match="unknown run 999"):
        ws.run_rejects(999)


# -- runs prune -----------------------------------------------------------------------------------
def test_runs_prune_removes_old_runs_their_outcomes_and_files_never_sync_state(
        ws: Workspace, tmp_path: Path, platform: MemoryPlatform) -> None:
    setup_export(ws, tmp_path)
    old = ws.run_export("all")
    kept = ws.run_export("all")  # delta: nothing new, the same two rejects (already reported by ``old``)
    assert kept.reject_file is None
    age(ws, old.id, days=100)
    state, ledger = count(ws, sync_state), count(ws, platform_ledger)
    size = Path(old.reject_file or "").stat().st_size

    planned = ws.prune_runs("90d", dry_run=True)
    assert (planned.runs, planned.outcomes, planned.files, planned.bytes, planned.run_ids) == (1, 6, 1, size, [old.id])
    assert ws.get_run(old.id) and Path(old.reject_file or "").is_file()  # a dry run removes nothing

    report = ws.prune_runs("90d")
    assert (report.runs, report.outcomes, report.files, report.bytes, report.dry_run) == (1, 6, 1, size, False)
    with pytest.raises(NotFound):
        ws.get_run(old.id)
    assert ws.store.outcomes(old.id) == [] and not Path(old.reject_file or "").exists()
    assert [r.id for r in ws.list_runs()] == [kept.id]
    assert (count(ws, sync_state), count(ws, platform_ledger)) == (state, ledger)  # what delta runs stand on
    entry = ws.audit_entries(1)[0]
    assert (entry.action, entry.detail["runs"], entry.detail["outcomes"], entry.detail["bytes"]) == (
        "runs.prune", 1, 6, size)

    listed = ws.run_rejects(kept.id)  # its lines were in the pruned run's file
    assert [(r.reported_in, r.reporter_kept) for r in listed.rows] == [(old.id, False), (old.id, False)]
    platform.calls.clear()
    after = ws.run_export("all")
    assert platform.calls == [] and after.counts["unchanged"] == 4  # the sync state survived: nothing resent
    assert [line["key"] for line in lines(after.reject_file)] == ["p001", "p003"]  # reported again: no file held them
    assert ws.prune_runs("90d").runs == 0


def test_run_ids_are_never_reused_after_pruning_every_run(ws: Workspace, tmp_path: Path) -> None:
    """Webhook receivers deduplicate on the run id; the audit log and reject files name runs by it."""
    setup_export(ws, tmp_path)
    earlier = [ws.run_export("all").id for _ in range(3)]
    for run_id in earlier:
        age(ws, run_id, days=100)
    assert ws.prune_runs("90d").runs == 3 and ws.list_runs() == []

    first, second = ws.run_export("all"), ws.run_export("all")
    assert min(first.id, second.id) > max(earlier) and second.id > first.id
    for run_id in (first.id, second.id):
        age(ws, run_id, days=100)
    assert ws.prune_runs("90d").runs == 2
    assert ws.run_export("all").id > second.id  # the high-water mark only rises
    assert ws.prune_runs("90d", dry_run=True).runs == 0


def test_runs_prune_never_removes_a_running_run(ws: Workspace, tmp_path: Path) -> None:
    setup_export(ws, tmp_path)
    running = ws.store.start_run(ws.get_export("all"), "manual", "ada")
    age(ws, running.id, days=400)
    try:
        assert ws.prune_runs("1d").runs == 0
        assert ws.get_run(running.id).status.value == "running"
    finally:
        ws.store.run_ended(running.id)


def test_only_admins_prune(act_as: Any, ws: Workspace) -> None:
    for user in ("carl", "vera"):
        with pytest.raises(PermissionDenied):
            act_as(user).prune_runs("90d")
        with pytest.raises(PermissionDenied):
            act_as(user).set_runs_retention("90d")
    assert act_as("vera").runs_retention() is None


@pytest.mark.parametrize(("text", "seconds"), [("90d", 90 * 86400), ("12h", 43200), ("2w", 14 * 86400),
                                               ("30min", 1800), ("45s", 45), (" 7 d ", 7 * 86400), ("0d", 0)])
def test_ages(text: str, seconds: int) -> None:
    assert parse_age(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["90", "d", "-1d", "1.5d", "3m", "", "90 days", "1y"])
def test_bad_ages_are_refused_with_the_units(text: str) -> None:
    with pytest.raises(InputError, match="s, min, h, d or w"):
        parse_age(text)


# -- the retention setting ------------------------------------------------------------------------
def test_the_retention_setting_prunes_old_runs_whenever_a_run_ends(ws: Workspace, tmp_path: Path) -> None:
    setup_export(ws, tmp_path)
    assert ws.runs_retention() is None
    assert ws.set_runs_retention("30d") == "30d" and ws.runs_retention() == "30d"
    with pytest.raises(InputError, match="at least 1d"):
        ws.set_runs_retention("12h")
    assert ws.runs_retention() == "30d"
    old = ws.run_export("all")
    recent = ws.run_export("all")
    age(ws, old.id, days=40)
    age(ws, recent.id, days=20)
    last = ws.run_export("all", dry_run=True)  # any run that ends applies it, a dry run too
    assert [r.id for r in ws.list_runs()] == [last.id, recent.id]
    assert not Path(old.reject_file or "").exists()
    entry = ws.audit_entries(1)[0]
    assert entry.action == "runs.prune" and entry.detail["retention"] is True and entry.detail["runs"] == 1
    assert ws.set_runs_retention(None) is None
    age(ws, recent.id, days=400)
    ws.run_export("all")
    assert recent.id in [r.id for r in ws.list_runs()]  # no retention: kept until pruned


# -- the CLI --------------------------------------------------------------------------------------
@pytest.fixture
def cli_ws(run_cli: Any, tmp_path: Path) -> Any:
    """A workspace made by ``segport init`` with the export ``all`` (two bad addresses), acting as ada."""
    assert run_cli("init", "--admin", "ada").exit_code == 0
    ws = Workspace.open(tmp_path / "ws", user="ada", pm=make_manager(autoload=False))
    try:
        setup_export(ws, tmp_path)
    finally:
        ws.close()

    def invoke(*args: str) -> Any:
        return run_cli("--as", "ada", *args)

    return invoke


def test_runs_rejects_prints_reasons(cli_ws: Any) -> None:
    run = json.loads(cli_ws("exports", "run", "all", "--json").stdout)
    human = cli_ws("exports", "run", "all", "--full")
    assert human.exit_code == 0 and f"segport runs rejects {run['id'] + 1}" in human.stdout
    assert "reasons in" not in human.stdout  # no new line to write: the same people, the same reasons

    shown = cli_ws("runs", "rejects", str(run["id"]))
    assert shown.exit_code == 0, shown.output
    assert f"reject file: {run['reject_file']}" in shown.stdout
    for words in ("p001", "not-an-email", "email 'not-an-email' is not a valid address", "p003",
                  "email 'two@@example.com' is not a valid address", "this run"):
        assert words in shown.stdout
    later = cli_ws("runs", "rejects", str(run["id"] + 1))
    assert later.exit_code == 0 and later.stdout.count(f"already in run {run['id']}") == 2
    assert "already reported for the same reason by an earlier run" in later.stdout

    document = json.loads(cli_ws("runs", "rejects", str(run["id"] + 1), "--json", "--limit", "1").stdout)
    assert document == {
        "run": run["id"] + 1, "export": "all", "status": "succeeded", "reject_file": None,
        "reject_file_exists": False, "total": 2, "shown": 1,
        "rejects": [{"key": "p001", "email": "not-an-email", "status": "rejected",
                     "reason": "email 'not-an-email' is not a valid address", "reported_in": run["id"],
                     "reported_in_kept": True}],
    }
    Path(run["reject_file"]).unlink()
    gone = cli_ws("runs", "rejects", str(run["id"]))
    assert gone.exit_code == 0 and "the file is gone: reasons from the workspace database" in gone.stdout
    assert "not-an-email" in gone.stdout
    dry = json.loads(cli_ws("exports", "run", "all", "--dry-run", "--json").stdout)
    assert "is a dry run" in cli_ws("runs", "rejects", str(dry["id"])).stdout
    unknown = cli_ws("runs", "rejects", "4242")
    assert unknown.exit_code == 5 and "unknown run 4242" in unknown.output


def test_runs_prune_and_retention_from_the_cli(cli_ws: Any, tmp_path: Path) -> None:
    first = json.loads(cli_ws("exports", "run", "all", "--json").stdout)
    second = json.loads(cli_ws("exports", "run", "all", "--json").stdout)
    ws = Workspace.open(tmp_path / "ws", user="ada", pm=make_manager(autoload=False))
    try:
        age(ws, first["id"], days=100)
    finally:
        ws.close()
    refused = cli_ws("runs", "prune", "--older-than", "90d")  # no terminal to ask on
    assert refused.exit_code == 2 and "--yes" in refused.output
    dry = json.loads(cli_ws("runs", "prune", "--older-than", "90d", "--dry-run", "--json").stdout)
    assert (dry["dry_run"], dry["runs"], dry["outcomes"], dry["files"]) == (True, 1, 6, 1)
    assert dry["run_ids"] == [first["id"]]
    assert dry["bytes"] == Path(first["reject_file"]).stat().st_size
    human = cli_ws("runs", "prune", "--older-than", "90d", "--dry-run")
    assert human.exit_code == 0 and "would remove 1 run " in human.stdout
    assert "6 outcomes, 1 reject file (" in human.stdout
    done = json.loads(cli_ws("runs", "prune", "--older-than", "90d", "--yes", "--json").stdout)
    assert (done["dry_run"], done["runs"], done["outcomes"], done["files"]) == (False, 1, 6, 1)
    listed = json.loads(cli_ws("runs", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [second["id"]]
    nothing = cli_ws("runs", "prune", "--older-than", "90d")  # nothing to remove: nothing to confirm
    assert nothing.exit_code == 0 and "removed 0 runs" in nothing.stdout
    bad = cli_ws("runs", "prune", "--older-than", "90")
    assert bad.exit_code == 4 and "s, min, h, d or w" in bad.output

    assert json.loads(cli_ws("runs", "retention", "--json").stdout) == {"retention": None}
    assert "no retention" in cli_ws("runs", "retention").stdout
    assert json.loads(cli_ws("runs", "retention", "90d", "--json").stdout) == {"retention": "90d"}
    assert "retention 90d" in cli_ws("runs", "retention").stdout
    assert cli_ws("runs", "retention", "90d", "--off").exit_code == 2
    assert cli_ws("runs", "retention", "--off").stdout.startswith("no retention")


# -- the migration --------------------------------------------------------------------------------
def test_migration_0005_takes_over_the_lines_earlier_runs_wrote(database_url: str | None, tmp_path: Path) -> None:
    from alembic import command

    from segport.store import open_store
    from segport.store.base import SQLStore
    from segport.store.schema import exports, outcomes
    from segport.store.upgrade import alembic_config

    store = open_store(database_url, tmp_path)
    assert isinstance(store, SQLStore)
    try:
        with store.transaction():
            if not store.db.connection.in_transaction():
                store.db.connection.begin()  # SQLAlchemy's notion only: Alembic runs inside ours (as migrate does)
            command.upgrade(alembic_config(store.db.connection), "0004")
        with store.transaction():
            at = "2026-01-01T00:00:00+00:00"
            export_id = store.db.execute(exports.insert().values(
                name="all", connection="mem", segments="[]", email_field="email", mapping="{}", options="{}",
                owner="ada", created_at=at, updated_at=at).returning(exports.c.id)).scalar_one()
            run_ids = [store.db.execute(runs.insert().values(
                export_id=export_id, export="all", status="succeeded", trigger="manual", user="ada", started_at=at,
            ).returning(runs.c.id)).scalar_one() for _ in range(2)]
            for run_id in run_ids:  # both runs wrote both lines, as every run did before 0005
                store.db.execute(outcomes.insert(), [
                    {"run_id": run_id, "profile_key": "p1", "email": "bad", "status": "rejected", "reason": "invalid"},
                    {"run_id": run_id, "profile_key": "p2", "email": "x@example.com", "status": "created",
                     "reason": None},
                    {"run_id": run_id, "profile_key": "p3", "email": "y@example.com", "status": "failed",
                     "reason": None},
                ])
        store.migrate()
        assert store.reported_rejects(export_id, ["p1", "p2", "p3"]) == {
            ("p1", "bad", "rejected", "invalid"): run_ids[0], ("p3", "y@example.com", "failed", None): run_ids[0]}
        total, rows = store.run_rejects(run_ids[1])
        assert total == 2 and [(r.key, r.reported_in) for r in rows] == [("p1", run_ids[1]), ("p3", run_ids[1])]
    finally:
        store.close()
