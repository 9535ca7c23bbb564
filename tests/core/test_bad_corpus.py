"""The bad-input corpus (``tests/data/bad/``): every bad input gives one ``error:`` line naming the problem
and the fix, its documented exit status, no traceback, and leaves the workspace as it was.

Each case of ``cases.json`` runs against a copy of one populated workspace, built once through the CLI:
in-process (click's runner) with the memory destination and the real Mailchimp and Campaign Monitor
plugins side by side, and, for the cases marked ``subprocess``, again through the installed ``segport``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner, Result

from segport import ExitStatus, Registry, RetryPolicy
from segport.cli import cli
from segport.plugins import make_manager
from segport.registry import set_default_registry
from segport.testing import dump_database
from segport.testing.fakes import MemoryPlatform, memory_destination
from segport.testing.operator import Operator
from segport_campaignmonitor import CampaignMonitorDestination
from segport_mailchimp import MailchimpDestination

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad"
FILES = CORPUS / "files"
MANIFEST: dict[str, Any] = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))
FAST_RETRY = RetryPolicy(attempts=2, base=0.001, cap=0.01)
MC_KEY = "0123456789abcdef0123456789abcdef-us1"
# What the issue asks the corpus to hold, by the manifest's category names.
REQUIRED_CATEGORIES = {"csv", "jsonl", "config", "types", "unknown", "cron", "emails", "https", "cap"}
RUN_TABLES = ("runs", "audit", "sqlite_sequence")


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    args: list[str]
    exit: str
    error: str
    fix: str
    user: str = "ada"
    home: str | None = None
    subprocess: bool = False
    records_failed_run: bool = False
    audits_denial: bool = False  # an unknown user's attempt is audited (issue 15)
    generate: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def status(self) -> ExitStatus:
        return ExitStatus[self.exit]

    def materialise(self, tmp: Path) -> tuple[list[str], Path | None]:
        """The command line with ``{files}``/``{tmp}`` filled in (generated files written to ``tmp``)."""
        for name, spec in self.generate.items():
            with (tmp / name).open("w", encoding="utf-8", newline="") as out:
                out.write(spec["head"] + spec["repeat"] * spec["count"] + spec["tail"])

        def fill(text: str) -> str:
            return text.replace("{files}", str(FILES)).replace("{tmp}", str(tmp))

        return [fill(a) for a in self.args], Path(fill(self.home)) if self.home else None


CASES = [Case(**raw) for raw in MANIFEST["cases"]]


# -- the manifest itself --------------------------------------------------------------------------
def test_manifest_is_complete_and_consistent() -> None:
    assert len(CASES) >= 40
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert REQUIRED_CATEGORIES <= {c.category for c in CASES}
    used: set[str] = set()
    for case in CASES:
        assert case.status not in (ExitStatus.OK, ExitStatus.ERROR), case.id  # a bad input is never 0 or a bug
        assert case.error.strip() and case.fix.strip(), f"{case.id}: name the problem and the fix"
        re.compile(case.error)
        re.compile(case.fix)
        for arg in case.args:
            for name in re.findall(r"\{files\}/([^\s/]+)", arg):
                used.add(name)
                assert (FILES / name).exists() or "missing" in case.id or "no-such" in arg or "does-not" in arg, (
                    case.id, name)
    orphans = {p.name for p in FILES.iterdir()} - used
    assert not orphans, f"files no case uses: {sorted(orphans)}"
    assert sum(c.subprocess for c in CASES) >= 5
    readme = (CORPUS.parents[2] / "README.md").read_text(encoding="utf-8")
    for status in {c.status for c in CASES}:
        assert f"\n| {int(status)} | " in readme, f"exit status {status!r} is not documented in README"


# -- the populated workspace --------------------------------------------------------------------
def _registry(platform: MemoryPlatform) -> Registry:
    return Registry.from_plugins(
        [memory_destination(platform, batch_size=10, max_concurrency=2), MailchimpDestination,
         CampaignMonitorDestination]
    )


def _invoke(home: Path, user: str | None, *args: str) -> Result:
    prefix = ["--home", str(home)] + (["--as", user] if user else [])
    return CliRunner().invoke(cli, [*prefix, *args], catch_exceptions=True)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Users ada/carl/vera, 9 profiles, segments fr (3) and vip (2), connections mem (shared), capped (cap 2),
    mc (Mailchimp) and cm (Campaign Monitor), exports e1 (run once), big (over its cap), off (disabled),
    noaud (unknown audience), mc1 and cm1."""
    root = tmp_path_factory.mktemp("bad-corpus")
    home = root / "ws"
    profiles = root / "profiles.csv"
    lines = ["id,email,first_name,last_name,country,age"]
    lines += [f"p{i:06d},user{i}@example.com,First{i},Last{i},{('FR', 'DE', 'US')[i % 3]},{20 + i}" for i in range(9)]
    profiles.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "vip.txt").write_text("p000001\np000002\n", encoding="utf-8")
    mem = json.dumps({"api_key": "0123456789"})
    loopback = "http://127.0.0.1:9"  # never called: connections added with --no-check, no run
    export = ["--segment", "fr", "--email", "email"]
    steps: list[tuple[str, ...]] = [
        ("users", "add", "carl", "--role", "contributor"),
        ("users", "add", "vera", "--role", "viewer"),
        ("profiles", "load", str(profiles)),
        ("segments", "define", "fr", "--where", "country = 'FR'"),
        ("segments", "load", "vip", str(root / "vip.txt")),
        ("connections", "add", "mem", "--type", "memory", "--config", mem, "--agree-privacy",
         "--share", "contributors"),
        ("connections", "add", "capped", "--type", "memory", "--config", mem, "--agree-privacy", "--profile-cap", "2"),
        ("connections", "add", "mc", "--type", "mailchimp", "--agree-privacy", "--no-check",
         "--config", json.dumps({"api_key": MC_KEY, "api_base_url": loopback + "/3.0"})),
        ("connections", "add", "cm", "--type", "campaignmonitor", "--agree-privacy", "--no-check",
         "--config", json.dumps({"api_key": "c" * 32, "api_base_url": loopback})),
        ("exports", "add", "e1", "--connection", "mem", *export, "--option", "audience_id=aud1"),
        ("exports", "run", "e1"),
        ("exports", "add", "big", "--connection", "capped", *export, "--option", "audience_id=aud1"),
        ("exports", "add", "off", "--connection", "mem", *export, "--option", "audience_id=aud1"),
        ("exports", "disable", "off"),
        ("exports", "add", "noaud", "--connection", "mem", *export, "--option", "audience_id=missing"),
        ("exports", "add", "mc1", "--connection", "mc", *export, "--option", "audience_id=abc123"),
        ("exports", "add", "cm1", "--connection", "cm", *export, "--option", "list_id=0123456789abcdef"),
    ]
    with pytest.MonkeyPatch.context() as mp:
        _patch(mp)
        set_default_registry(_registry(MemoryPlatform()))
        try:
            assert _invoke(home, None, "init", "--admin", "ada").exit_code == 0
            for step in steps:
                result = _invoke(home, "ada", *step)
                assert result.exit_code == 0, (step, result.output)
        finally:
            set_default_registry(None)
    yield home


def _patch(mp: pytest.MonkeyPatch) -> None:
    for name in ("SEGPORT_HOME", "SEGPORT_USER", "SEGPORT_SECRET_KEY", "SEGPORT_LOAD_PLUGINS"):
        mp.delenv(name, raising=False)
    mp.setattr("segport.workspace.make_manager", lambda: make_manager(autoload=False))
    mp.setattr("segport.workspace.RetryPolicy", lambda: FAST_RETRY)


@pytest.fixture
def workspace(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of the template; the CLI sees a fresh memory platform and both real plugins."""
    home = tmp_path / "ws"
    shutil.copytree(template, home)
    _patch(monkeypatch)
    set_default_registry(_registry(MemoryPlatform()))
    yield home
    set_default_registry(None)


def snapshot(home: Path) -> tuple[str, dict[str, str]]:
    """The database dump and a digest of every other file of the workspace (reject files, key)."""
    files = {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.startswith("segport.db")
    }
    return (dump_database(home) if (home / "segport.db").exists() else ""), files


def assert_one_error_line(case: Case, stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"{case.id}: expected one stderr line, got:\n{stderr}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in stderr
    assert len(line) < 1000, f"{case.id}: the error line is {len(line)} characters long"
    assert re.search(case.error, line), f"{case.id}: the problem /{case.error}/ is not named in: {line}"
    assert re.search(case.fix, line), f"{case.id}: the fix /{case.fix}/ is not named in: {line}"
    return line


def assert_unchanged(case: Case, home: Path, before: tuple[str, dict[str, str]], line: str) -> None:
    after = snapshot(home)
    assert after[1] == before[1], f"{case.id}: workspace files changed"
    if case.audits_denial:
        added = [line for line in after[0].splitlines() if line not in set(before[0].splitlines())]
        assert len(added) == 1 and added[0].startswith('INSERT INTO "audit"') and "'denied'" in added[0], added
        assert [line for line in after[0].splitlines() if line != added[0]] == before[0].splitlines(), case.id
        return
    if not case.records_failed_run:
        assert after[0] == before[0], f"{case.id}: the database changed"
        return
    # A refused run is kept in the history as failed, with its reason; nothing else may change.
    old, new = before[0].splitlines(), after[0].splitlines()
    added, removed = set(new) - set(old), set(old) - set(new)
    touched = {m.group(1) for m in (re.match(r'(?:INSERT INTO|DELETE FROM) "?(\w+)"?', s) for s in added | removed)
               if m}
    assert touched <= set(RUN_TABLES), f"{case.id}: changed {touched - set(RUN_TABLES)}"
    assert not {s for s in removed if not s.startswith('INSERT INTO "sqlite_sequence"')}, case.id
    db = sqlite3.connect(home / "segport.db")
    try:
        status, error = db.execute("SELECT status, error FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        (outcomes,) = db.execute("SELECT count(*) FROM outcomes WHERE run_id = (SELECT max(id) FROM runs)").fetchone()
    finally:
        db.close()
    assert (status, outcomes) == ("failed", 0)
    assert line == f"error: {error}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_input_in_process(case: Case, workspace: Path, tmp_path: Path) -> None:
    args, home = case.materialise(tmp_path)
    home = home or workspace
    before = snapshot(workspace)
    result = _invoke(home, case.user, *args)
    assert result.exit_code == case.status, (case.id, result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == "", f"{case.id}: an error prints nothing on stdout"
    line = assert_one_error_line(case, result.stderr)
    assert_unchanged(case, workspace, before, line)
    if case.home:
        assert not home.exists(), "a command on a missing workspace must not create it"


@pytest.mark.e2e
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES if c.subprocess])
def test_bad_input_through_the_installed_cli(case: Case, template: Path, tmp_path: Path) -> None:
    home = tmp_path / "ws"
    shutil.copytree(template, home)
    args, _ = case.materialise(tmp_path)
    before = snapshot(home)
    result = Operator(home, case.user)(*args, check=False)
    assert result.returncode == case.status, (case.id, result.returncode, result.stderr)
    assert result.stdout == ""
    line = assert_one_error_line(case, result.stderr)
    assert_unchanged(case, home, before, line)


# -- invalid emails: per-record rejects, named, never sent ---------------------------------------
def test_invalid_emails_are_rejected_by_name_and_never_sent(workspace: Path, tmp_path: Path) -> None:
    emails = {"q1": "not-an-email", "q2": "two@@example.com", "q3": "", "q4": "spa ce@example.com",
              "q5": "ok@example.com", "q6": "trailing-dot@example.com.", "q7": "a@b"}
    path = tmp_path / "emails.jsonl"
    path.write_text("".join(json.dumps({"id": k, "email": v, "country": "BE"}) + "\n" for k, v in emails.items()),
                    encoding="utf-8")
    platform = MemoryPlatform()
    set_default_registry(_registry(platform))
    for step in (("profiles", "load", str(path)), ("segments", "define", "be", "--where", "country = 'BE'"),
                 ("exports", "add", "be", "--connection", "mem", "--segment", "be", "--email", "email",
                  "--option", "audience_id=aud1")):
        assert _invoke(workspace, "ada", *step).exit_code == 0
    result = _invoke(workspace, "ada", "exports", "run", "be", "--json")
    assert result.exit_code == ExitStatus.OK, result.output  # per-record rejects exit 0 and name their file
    run = json.loads(result.stdout)
    assert run["counts"]["created"] == 1 and run["counts"]["rejected"] == 6
    assert platform.sent_emails() == ["ok@example.com"]
    rejects = [json.loads(line) for line in Path(run["reject_file"]).read_text(encoding="utf-8").splitlines()]
    reasons = {r["key"]: r["reason"] for r in rejects}
    assert set(reasons) == set(emails) - {"q5"}
    assert reasons["q3"] == "email is empty"
    for key in ("q1", "q2", "q4", "q6", "q7"):
        assert reasons[key] == f"email {emails[key]!r} is not a valid address", reasons[key]
    human = _invoke(workspace, "ada", "exports", "run", "be", "--full")  # the same people, the same reasons
    assert human.exit_code == 0 and "6 records rejected, failed or skipped" in human.stdout
    assert "reasons in" not in human.stdout  # one line per person per reason: no new reject file
    later = int(human.stdout.split("segport runs rejects ")[1].split()[0])
    listed = json.loads(_invoke(workspace, "ada", "runs", "rejects", str(later), "--json").stdout)
    assert listed["reject_file"] is None and listed["total"] == 6
    assert {r["key"]: (r["reason"], r["reported_in"]) for r in listed["rejects"]} == {
        key: (reason, run["id"]) for key, reason in reasons.items()
    }
