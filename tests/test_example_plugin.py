"""A third party's view: segport and the webhook example plugin installed into a fresh venv, as wheels.

segport is installed with its test extra from a copy of this source tree (non-editable), then the example
from a copy of ``examples/webhook``. In that venv the real CLI lists the plugin, serves its receiver,
exports through it, and the example's own test suite (the conformance kit included) passes against the
installed distributions. Copies keep build artefacts out of the work tree. Slow (a minute or two): pip
builds both wheels and installs segport's dependencies (from pip's cache when it has them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "webhook"
JUNK = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis", ".segport")
PEOPLE = [  # id, email, first_name, last_name, tier
    ("p1", "  Ada.Lovelace@Example.COM ", "Ada", "Lovelace", "gold"),
    ("p2", "grace@example.com", "Grace", "Hopper", "gold"),
    ("p3", "alan@example.com", "Alan", "Turing", "basic"),
    ("p4", "edsger@example.com", "Edsger", "Dijkstra", "basic"),
    ("p5", "nobody@example.com", "No", "Body", "basic"),
]


def run(*command: str | Path, env: dict[str, str], cwd: Path | None = None, timeout: float = 600) -> str:
    """Run a command; fail with its output unless it exits 0. Returns stdout."""
    done = subprocess.run(
        [str(c) for c in command], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without SEGPORT_* (see segport.testing.operator), PYTHONPATH or a venv."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGPORT_") and k not in drop}
    return {**env, "SEGPORT_HOME": str(home), "SEGPORT_USER": "ada"}


def copy_sources(tmp_path: Path) -> tuple[Path, Path]:
    """segport's distribution sources and the example, copied without build artefacts."""
    segport = tmp_path / "src" / "segport"
    segport.mkdir(parents=True)
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, segport / name)
    for name in ("core", "plugins", "schemas"):
        shutil.copytree(REPO / name, segport / name, ignore=JUNK)
    example = tmp_path / "src" / "webhook"
    shutil.copytree(EXAMPLE, example, ignore=JUNK)
    return segport, example


def webhook_state(url: str) -> dict[str, Any]:
    """The receiver's members of ``newsletter`` by email: ``{email: {"fields", "markers"}}``."""
    state = requests.get(f"{url}/_sandbox/state", timeout=10).json()
    members = state["audiences"]["newsletter"].values()
    return {m["email"]: {"fields": m["fields"], "markers": set(m["markers"])} for m in members}


def test_the_example_installs_exports_and_passes_its_own_suite(tmp_path: Path) -> None:
    segport_src, example = copy_sources(tmp_path)
    venv = tmp_path / "venv"
    env = clean_env(tmp_path / "ws")
    run(sys.executable, "-m", "venv", venv, env=env)
    bin_dir = venv / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "-q", f"{segport_src}[test]", env=env)
    run(bin_dir / "python", "-m", "pip", "install", "-q", example, env=env)
    segport = bin_dir / "segport"

    listed = {p["name"]: p for p in json.loads(run(segport, "plugins", "list", "--json", env=env))}
    assert listed["webhook"] == {
        "name": "webhook",
        "target": "segport_webhook:WebhookDestination",
        "distribution": "segport-webhook",
        "version": "0.1.0",
        "title": "Webhook (HTTP JSON)",
        "status": "ok",
        "reason": None,
    }

    # the example's receiver, served by segport's own CLI through the installed plugin
    command = [str(segport), "sandbox", "webhook", "--seed", "7"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as receiver:
        try:
            assert receiver.stdout is not None
            lines = [receiver.stdout.readline().strip() for _ in range(3)]
            assert lines[0].startswith("webhook sandbox serving at http://127.0.0.1:"), lines
            config = json.loads(lines[1].removeprefix("connection config: "))
            assert json.loads(lines[2].removeprefix("export options: ")) == {"audience": "newsletter"}
            export_through_the_cli(tmp_path, segport, env, config)
        finally:
            receiver.terminate()
            _, errors = receiver.communicate(timeout=10)
    assert receiver.returncode == 0 and "Traceback" not in errors, errors

    # the example's own tests, the conformance kit included, against the installed distributions
    out = run(bin_dir / "pytest", "-q", "-p", "no:cacheprovider", env=env, cwd=example)
    assert re.search(r"^\d+ passed in ", out, re.M), out  # nothing failed, skipped or errored


def export_through_the_cli(tmp_path: Path, segport: Path, env: dict[str, str], config: dict[str, Any]) -> None:
    """init, load, segment, connect (the check pings the receiver), export twice, then a leaver."""
    profiles = tmp_path / "profiles.csv"
    rows = ["id,email,first_name,last_name,tier", *(",".join(p) for p in PEOPLE)]
    profiles.write_text("\n".join(rows) + "\n", encoding="utf-8")
    vip = tmp_path / "vip.txt"
    vip.write_text("p1\np3\np4\n", encoding="utf-8")
    run(segport, "init", "--admin", "ada", env=env)
    run(segport, "profiles", "load", profiles, env=env)
    run(segport, "segments", "load", "VIP", vip, env=env)
    run(segport, "segments", "define", "Gold", "--where", "tier = 'gold'", env=env)
    connect = ["connections", "add", "hook", "--type", "webhook", "--config", json.dumps(config), "--agree-privacy"]
    run(segport, *connect, env=env)
    tested = json.loads(run(segport, "connections", "test", "hook", "--json", env=env))
    assert tested["status"] == "ok" and tested["account"].startswith("webhook receiver 'segport webhook sandbox'")
    export = ["exports", "add", "crm", "--connection", "hook", "--segment", "VIP", "--segment", "Gold"]
    export += ["--email", "email", "--map", "first_name=first_name", "--map", "last_name=last_name"]
    run(segport, *export, "--option", "audience=newsletter", env=env)

    first = json.loads(run(segport, "exports", "run", "crm", "--json", env=env))
    assert first["status"] == "succeeded" and first["counts"]["created"] == 4, first
    landed = webhook_state(config["url"])
    assert landed == {
        "ada.lovelace@example.com": {
            "fields": {"first_name": "Ada", "last_name": "Lovelace"},
            "markers": {"VIP", "Gold"},
        },
        "grace@example.com": {"fields": {"first_name": "Grace", "last_name": "Hopper"}, "markers": {"Gold"}},
        "alan@example.com": {"fields": {"first_name": "Alan", "last_name": "Turing"}, "markers": {"VIP"}},
        "edsger@example.com": {"fields": {"first_name": "Edsger", "last_name": "Dijkstra"}, "markers": {"VIP"}},
    }

    second = json.loads(run(segport, "exports", "run", "crm", "--json", env=env))
    sent = {k: v for k, v in second["counts"].items() if v and k != "unchanged"}
    assert second["status"] == "succeeded" and not sent, second

    vip.write_text("p1\np3\n", encoding="utf-8")  # Edsger leaves VIP, and with it every exported segment
    run(segport, "segments", "load", "VIP", vip, env=env)
    third = json.loads(run(segport, "exports", "run", "crm", "--json", env=env))
    assert third["status"] == "succeeded" and third["counts"]["updated"] == 1, third
    landed = webhook_state(config["url"])
    assert landed["edsger@example.com"] == {
        "fields": {"first_name": "Edsger", "last_name": "Dijkstra"},
        "markers": set(),
    }
    assert landed["alan@example.com"]["markers"] == {"VIP"} and len(landed) == 4
