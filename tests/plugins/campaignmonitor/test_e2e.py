"""End to end: the real CLI in a subprocess against the Campaign Monitor sandbox on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from segport.testing.operator import Operator
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
    rows = ["id,email,first_name,last_name,tier,city"]
    for i in range(count):
        first = "Renamed" if i in renamed else f"First{i}"
        rows.append(f"p{i:05d},{email(i)},{first},Last{i},{'gold' if i % 4 == 0 else 'basic'},City{i % 5}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_keys(path: Path, keys: list[int]) -> Path:
    path.write_text("".join(f"p{i:05d}\n" for i in keys), encoding="utf-8")
    return path


def setup(tmp_path: Path, sandbox: CampaignMonitorSandbox, count: int = 1500) -> Operator:
    op = Operator(tmp_path / "ws")
    op("init", "--admin", "ada")
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


def test_first_run_lands_exactly_then_delta_and_exit(tmp_path: Path, sandbox: CampaignMonitorSandbox) -> None:
    op = setup(tmp_path, sandbox)
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


def test_both_destinations_are_listed_from_their_entry_points(tmp_path: Path) -> None:
    listed = json.loads(Operator(tmp_path)("plugins", "list", "--json").stdout)
    found = {p["name"]: p for p in listed}
    assert found["mailchimp"]["status"] == found["campaignmonitor"]["status"] == "ok"
    assert found["campaignmonitor"]["target"] == "segport_campaignmonitor:CampaignMonitorDestination"
