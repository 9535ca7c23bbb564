"""End to end: the real CLI in a subprocess against the Campaign Monitor sandbox on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from segport.sandboxing import Request, Response
from segport.testing import files
from segport.testing.files import write_rows
from segport.testing.operator import Operator
from segport_campaignmonitor.destination import LIMITS
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox

pytestmark = pytest.mark.e2e


@pytest.fixture
def sandbox() -> Iterator[CampaignMonitorSandbox]:
    with CampaignMonitorSandbox(seed=4) as server:
        yield server


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


def expected(i: int) -> set[str]:
    return ({"VIP"} if i % 4 == 0 else set()) | ({"Newsletter"} if i % 2 == 0 else set())


def write_profiles(path: Path, count: int, renamed: frozenset[int] = frozenset()) -> Path:
    def row(i: int) -> list[str]:
        first = "Renamed" if i in renamed else f"First{i}"
        return [f"p{i:05d}", email(i), first, f"Last{i}", "gold" if i % 4 == 0 else "basic", f"City{i % 5}"]

    return write_rows(path, ["id", "email", "first_name", "last_name", "tier", "city"], map(row, range(count)))


def write_keys(path: Path, keys: list[int]) -> Path:
    return files.write_keys(path, (f"p{i:05d}" for i in keys))


def setup(
    tmp_path: Path, sandbox: CampaignMonitorSandbox, count: int = 1500, *, database_url: str | None = None
) -> Operator:
    op = Operator.init(tmp_path / "ws", database_url=database_url)  # PostgreSQL: as workers would share it
    op("profiles", "load", str(write_profiles(tmp_path / "profiles.csv", count)))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "newsletter.txt", list(range(0, count, 2)))))
    op(
        "connections",
        "add",
        "cm",
        "--type",
        "campaignmonitor",
        "--config",
        json.dumps(sandbox.demo_connection()),
        "--agree-privacy",
    )
    op(
        "exports",
        "add",
        "news",
        "--connection",
        "cm",
        "--segment",
        "VIP",
        "--segment",
        "Newsletter",
        "--email",
        "email",
        "--map",
        "Name=first_name+last_name",
        "--option",
        f"list_id={sandbox.list_id}",
    )
    return op


def subscribers(sandbox: CampaignMonitorSandbox) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = sandbox.state()["lists"][sandbox.list_id]["subscribers"]
    return found


def options_of(subscriber: dict[str, Any]) -> set[str]:
    value = subscriber["CustomFields"].get("Segments") or []
    return set(value if isinstance(value, list) else [value])


def test_first_run_lands_exactly_then_delta_and_exit(
    tmp_path: Path, sandbox: CampaignMonitorSandbox, database_url: str | None
) -> None:
    op = setup(tmp_path, sandbox, database_url=database_url)
    seen = len(sandbox.requests_log)
    first = op.run_json("news")
    assert first["status"] == "succeeded"
    landed = subscribers(sandbox)
    selected = [i for i in range(1500) if expected(i)]
    assert set(landed) == {email(i) for i in selected}
    for i in selected:
        subscriber = landed[email(i)]
        assert subscriber["State"] == "Active" and subscriber["Name"] == f"First{i} Last{i}"
        assert options_of(subscriber) == expected(i)
    titles = {s["Title"] for s in sandbox.state()["lists"][sandbox.list_id]["segments"]}
    assert {"VIP", "Newsletter"} <= titles
    imports = [path for _, path in sandbox.requests_log[seen:] if path.endswith("/import.json")]
    assert len(imports) == 1  # 750 subscribers: one import
    assert first["requests"] == len(sandbox.requests_log) - seen  # pre-flight calls included

    op("profiles", "load", str(write_profiles(tmp_path / "profiles.csv", 1500, renamed=frozenset({0, 2}))))
    op("segments", "load", "Newsletter", str(write_keys(tmp_path / "newsletter.txt", list(range(4, 1500, 2)))))
    seen = len(sandbox.requests_log)
    second = op.run_json("news")
    # p0 renamed and left Newsletter, p2 renamed and left (it is in no segment now), nobody else.
    assert second["counts"]["updated"] == 2 and second["requests"] == len(sandbox.requests_log) - seen
    landed = subscribers(sandbox)
    assert landed[email(0)]["Name"] == "Renamed Last0" and options_of(landed[email(0)]) == {"VIP"}
    assert options_of(landed[email(2)]) == set() and landed[email(2)]["State"] == "Active"
    assert options_of(landed[email(4)]) == {"VIP", "Newsletter"}


def test_suppressed_and_unsubscribed_are_not_reactivated(tmp_path: Path, sandbox: CampaignMonitorSandbox) -> None:
    sandbox.add_subscriber(email(2), state="Unsubscribed")
    sandbox.suppress(email(4))
    op = setup(tmp_path, sandbox)
    run = op.run_json("news")
    landed = subscribers(sandbox)
    assert landed[email(2)]["State"] == "Unsubscribed"
    assert email(4) not in landed or landed[email(4)]["State"] != "Active"
    assert run["counts"]["rejected"] == 2
    lines = [json.loads(x) for x in Path(run["reject_file"]).read_text(encoding="utf-8").splitlines()]
    reasons = {line["key"]: line["reason"] for line in lines}
    assert reasons["p00002"].startswith("code 206") and reasons["p00004"].startswith("code 204")


@pytest.mark.parametrize(
    ("breakage", "code", "words"),
    [("list", 9, ("does not exist", "list_id")), ("key", 8, ("refused the credentials",))],
)
def test_wrong_list_or_key_stops_before_sending(
    tmp_path: Path, sandbox: CampaignMonitorSandbox, breakage: str, code: int, words: tuple[str, ...]
) -> None:
    op = setup(tmp_path, sandbox, count=50)
    if breakage == "list":
        op("exports", "edit", "news", "--option", "list_id=" + "0" * 32)
    else:
        sandbox.revoke_key()
    result = op("exports", "run", "news", check=False)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert all(word in lines[0] for word in words)
    assert subscribers(sandbox) == {}
    assert sandbox.demo_connection()["api_key"] not in result.stdout + result.stderr


def test_a_killed_run_is_interrupted_and_the_next_run_finishes_exactly(
    tmp_path: Path, sandbox: CampaignMonitorSandbox, database_url: str | None, committed_so_far: Callable[..., int]
) -> None:
    op = setup(tmp_path, sandbox, count=24000, database_url=database_url)  # 12,000 selected: 12 imports
    sandbox.set_faults(latency_ms=300)
    process = op.popen("exports", "run", "news")
    deadline = time.monotonic() + 60
    while committed_so_far(op.home, database_url) < 1000 and time.monotonic() < deadline:  # kill after 1+ import
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert sandbox.wait_idle()  # the imports in flight at the kill land before the state is read
    sandbox.set_faults(latency_ms=0)
    runs = json.loads(op("runs", "list", "--json").stdout)
    assert runs[0]["status"] == "interrupted"
    committed = runs[0]["counts"]["created"]
    landed_at_kill = len(subscribers(sandbox))
    selected = [i for i in range(24000) if expected(i)]
    assert 0 < committed <= landed_at_kill < len(selected)  # killed mid-run
    finished = op.run_json("news")
    assert finished["status"] == "succeeded"
    landed = subscribers(sandbox)
    assert set(landed) == {email(i) for i in selected}
    for i in selected:
        subscriber = landed[email(i)]
        assert subscriber["State"] == "Active" and subscriber["Name"] == f"First{i} Last{i}"
        assert options_of(subscriber) == expected(i)
    # The second run sends only what the first did not commit (imports upsert: new to segport, so
    # "created"); what it sends twice (landed but not committed) is at most the imports in flight.
    assert finished["counts"]["created"] == len(selected) - committed
    assert finished["counts"]["unchanged"] == committed
    assert landed_at_kill - committed <= LIMITS.max_concurrency * LIMITS.batch_size


class HeldCreations(CampaignMonitorSandbox):
    """Answers no custom field or rule segment creation until ``runs`` runs have read both: each run's
    pre-flight then finds neither, as two first runs on one list at once (two workers) may."""

    def __init__(self, runs: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs, self.reads, self.held = runs, Counter[str](), True
        self.read = threading.Condition()

    def respond(self, req: Request) -> Response:
        creates = req.method == "POST" and (req.path.endswith("/customfields.json") or "/segments/" in req.path)
        if creates:
            with self.read:
                self.held = self.held and self.read.wait_for(self.everyone_read, timeout=60)
        answer = super().respond(req)
        name = req.path.rsplit("/", 1)[-1]
        if req.method == "GET" and name in ("customfields.json", "segments.json"):
            with self.read:
                self.reads[name] += 1
                self.read.notify_all()
        return answer

    def everyone_read(self) -> bool:
        return min(self.reads["customfields.json"], self.reads["segments.json"]) >= self.runs


def test_two_first_runs_on_one_list_at_once_both_land(tmp_path: Path, database_url: str | None) -> None:
    """Issue 9 (workers): the second run's creations of the membership field and of a shared rule segment
    answer "already exists" (255, 275), which means another run made them: both runs go on."""
    with HeldCreations(runs=2, seed=5) as sandbox:
        op = setup(tmp_path, sandbox, count=200, database_url=database_url)
        connection = ("--connection", "cm", "--email", "email", "--map", "Name=first_name+last_name")
        op("exports", "add", "gold", *connection, "--segment", "VIP", "--option", f"list_id={sandbox.list_id}")
        runs = [
            subprocess.Popen([sys.executable, "-m", "segport", "exports", "run", name, "--json"], env=op.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("news", "gold")
        ]
        results = [(run.communicate(timeout=120), run.returncode) for run in runs]
        assert sandbox.held  # both pre-flights read before either created: the race happened
        assert [code for _, code in results] == [0, 0], [err for (_, err), _ in results]
        assert [json.loads(out)["status"] for (out, _), _ in results] == ["succeeded", "succeeded"]
        landed = subscribers(sandbox)
        selected = [i for i in range(200) if expected(i)]
        assert set(landed) == {email(i) for i in selected}
        assert all(options_of(landed[email(i)]) == expected(i) for i in selected)
        state = sandbox.state()["lists"][sandbox.list_id]
        assert sorted(s["Title"] for s in state["segments"]) == ["Newsletter", "VIP"]  # one each
        paths = [path for method, path in sandbox.requests_log if method == "POST"]
        assert sum(p.endswith("/customfields.json") for p in paths) == 2  # one created it, one was told it exists


def test_both_destinations_are_listed_from_their_entry_points(tmp_path: Path) -> None:
    listed = json.loads(Operator(tmp_path)("plugins", "list", "--json").stdout)
    found = {p["name"]: p for p in listed}
    assert found["mailchimp"]["status"] == found["campaignmonitor"]["status"] == "ok"
    assert found["campaignmonitor"]["target"] == "segport_campaignmonitor:CampaignMonitorDestination"


def add_city_export(op: Operator, sandbox: CampaignMonitorSandbox) -> None:
    """The README's Campaign Monitor example: Name and City mapped, on a list with no City field."""
    op(
        "exports", "add", "vip-cm", "--connection", "cm", "--segment", "VIP", "--email", "email",
        "--map", "Name=first_name+last_name", "--map", "City=city", "--option", f"list_id={sandbox.list_id}",
    )


def test_a_dry_run_fails_like_the_run_on_a_missing_custom_field(
    tmp_path: Path, sandbox: CampaignMonitorSandbox, database_url: str | None
) -> None:
    op = setup(tmp_path, sandbox, count=40, database_url=database_url)
    add_city_export(op, sandbox)
    before = sandbox.state()
    dry = op("exports", "run", "vip-cm", "--dry-run", check=False)
    real = op("exports", "run", "vip-cm", check=False)
    assert dry.returncode == real.returncode == 3, (dry.stderr, real.stderr)  # a config error, exit 3
    assert dry.stderr == real.stderr  # the same one line
    assert dry.stderr.startswith("error: ") and len(dry.stderr.strip().splitlines()) == 1
    assert f"list {sandbox.list_id} has no custom field City" in dry.stderr
    assert dry.stdout == ""  # no plan printed for a dry run that failed
    assert sandbox.state() == before  # neither changed the list
    as_json = op("exports", "run", "vip-cm", "--dry-run", "--json", check=False)
    assert as_json.returncode == 3 and as_json.stderr == real.stderr
    failure = json.loads(as_json.stdout)  # one document: the error, and the dry run's record beside it
    assert failure["error"]["code"] == 3 and "has no custom field City" in failure["error"]["message"]
    record = failure["run"]
    assert record["status"] == "planned" and "has no custom field City" in record["error"]
    runs = json.loads(op("runs", "list", "--export", "vip-cm", "--json").stdout)
    assert [r["status"] for r in runs] == ["planned", "failed", "planned"]  # a dry run stays a plan, with its error

    field = {"FieldName": "City", "DataType": "Text", "VisibleInPreferenceCenter": True}
    created = requests.post(
        f"{sandbox.api_base_url}/lists/{sandbox.list_id}/customfields.json", json=field, auth=(sandbox.api_key, "x"),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    seen = len(sandbox.requests_log)
    plan = op.run_json("vip-cm", "--dry-run")
    calls = sandbox.requests_log[seen:]
    assert calls and all(method == "GET" for method, _ in calls)  # the pre-flight ran, reading only
    assert plan["status"] == "planned" and plan["error"] is None and plan["requests"] == len(calls)
    assert plan["plan"]["created"] == 10 and plan["plan"]["updated"] == 0
    assert plan["would_create"] == ["custom field Segments (MultiSelectMany) with options VIP", "rule segment VIP"]
    fields = sandbox.state()["lists"][sandbox.list_id]["custom_fields"].values()
    assert subscribers(sandbox) == {} and {f["FieldName"] for f in fields} == {"City"}
    run = op.run_json("vip-cm")
    assert run["status"] == "succeeded" and run["counts"]["created"] == 10
