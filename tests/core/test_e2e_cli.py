"""End to end: the installed CLI in a subprocess, as an operator runs it (no destination needed)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

import pytest

from segport.testing.operator import Operator

pytestmark = pytest.mark.e2e


def segport(
    home: Path, *args: str, user: str | None = "ada", database_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    operator = Operator(home, user)
    if database_url is not None:
        operator.env["SEGPORT_DATABASE_URL"] = database_url
    return operator(*args, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for word in words:
        assert word in lines[0]


def test_operator_flow_with_100k_profiles(tmp_path: Path, database_url: str | None) -> None:
    home = tmp_path / "ws"
    segport = functools.partial(globals()["segport"], database_url=database_url)
    assert segport(home, "init", "--admin", "ada", user=None).returncode == 0
    assert segport(home, "users", "add", "carl", "--role", "contributor").returncode == 0
    csv_path = tmp_path / "profiles.csv"
    with csv_path.open("w", encoding="utf-8") as out:
        out.write("customer_id,email,first_name,country\n")
        for i in range(100_000):
            out.write(f"c{i:06d},user{i}@example.com,F{i},{'FR' if i % 4 == 0 else 'DE'}\n")
    loaded = segport(home, "profiles", "load", str(csv_path), "--key", "customer_id", "--json")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout) == {"loaded": 100_000, "profiles": 100_000, "added": 100_000, "updated": 0,
                                         "unchanged": 0, "removed": 0, "key": "customer_id", "rekeyed_from": None}
    keys = tmp_path / "vip.txt"
    keys.write_text("c000001\nc000002\nc999999\n", encoding="utf-8")
    # global options also follow the command (issue 16): the later --as acts, an unknown user is refused
    assert segport(home, "segments", "load", "VIP", str(keys), "--as", "nobody").returncode == 5
    loaded_seg = segport(home, "--as", "carl", "segments", "load", "VIP", str(keys), "--json")
    assert json.loads(loaded_seg.stdout) == {"segment": "VIP", "members": 2, "unknown_keys": 1}
    assert segport(home, "segments", "define", "french", "--where", "country = 'FR'").returncode == 0
    listed = json.loads(segport(home, "segments", "list", "--json").stdout)
    assert {s["name"]: s["members"] for s in listed} == {"VIP": 2, "french": 25_000}
    shown = json.loads(segport(home, "profiles", "show", "c000004", "--json").stdout)
    assert shown["attributes"]["country"] == "FR"


def test_bad_input_is_one_line_with_exit_code(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    segport(home, "init", "--admin", "ada", user=None)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,email\n1,a@example.com\n2,b@example.com,extra\n", encoding="utf-8")
    assert_one_line_error(segport(home, "profiles", "load", str(ragged)), 4, "line 3")
    assert_one_line_error(segport(home, "profiles", "load", str(ragged), "--key", "nope"), 4, "nope")
    assert_one_line_error(segport(home, "schedule", "set", "every day"), 4, "cron")
    assert_one_line_error(segport(home, "users", "list", user="mallory"), 5, "mallory")
    assert_one_line_error(segport(home, "connections", "add", "x", "--type", "mailchimp", "--config", "{bad"), 3)
    assert_one_line_error(segport(home, "connections", "add", "x", "--type", "nosuch", "--agree-privacy"), 7, "nosuch")
    assert_one_line_error(segport(home, "connections", "add", "x", "--type", "nosuch"), 3, "--agree-privacy")


def test_plugins_list_json_without_a_workspace(tmp_path: Path) -> None:
    result = segport(tmp_path / "none", "plugins", "list", "--json", user=None)
    assert result.returncode == 0
    assert isinstance(json.loads(result.stdout), list)


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    demo = ("demo", "mailchimp", "campaignmonitor", "--profiles", "600", "--dir", str(tmp_path / "demo"))
    result = segport(tmp_path, *demo, user=None)  # named: an installed third-party sandbox would add a leg
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in ("Mailchimp", "Campaign Monitor"):
        assert f"== {title}: sandbox serving at http://127.0.0.1:" in out
    assert out.count("run 1 of demo-export: succeeded") == 2
    assert out.count("run 2 of demo-export: succeeded") == 2
    assert out.count("updated 5,") == 2  # 3 renamed profiles + 2 that left the Newsletter segment
    assert "Newsletter=" in out and "tags: " in out and "segments field options: " in out
    assert "{'" not in out and "['" not in out  # readable, no Python reprs
    assert out.count("broken address on purpose") == 2  # the rejects are announced as deliberate
