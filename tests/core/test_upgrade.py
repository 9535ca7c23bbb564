"""A workspace made by an earlier release opens, upgrades in place and keeps exporting.

``tests/data/upgrade`` holds what segport 0.1.0 left after one session (see its README): the
SQLite workspace folder, and for PostgreSQL the key file and a ``pg_dump`` of the database. Each
test opens a copy with this code, which upgrades the schema, and runs the export again against
the same Mailchimp sandbox account: the sync state must have survived, so the delta sends nothing
for unchanged profiles, and exactly the one profile changed since.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from segport import Workspace
from segport.testing.operator import Operator
from segport_mailchimp.sandbox import MailchimpSandbox

DATA = Path(__file__).resolve().parents[1] / "data" / "upgrade"
API_KEY = "0123456789abcdef0123456789abcdef-us1"  # as make_workspaces.py started the sandbox
SEED = 14
PROFILES = 30
SELECTED = 20  # VIP (every third profile) or Newsletter (every even one)


@pytest.fixture
def sandbox() -> Iterator[MailchimpSandbox]:
    server = MailchimpSandbox(seed=SEED, api_key=API_KEY)
    server.start()
    yield server
    server.stop()


def restore(request: pytest.FixtureRequest, home: Path, database_url: str | None) -> None:
    """The earlier release's workspace, as it left it, at ``home`` (and in ``database_url``)."""
    if database_url is None:
        shutil.copytree(DATA / "sqlite", home)
        return
    shutil.copytree(DATA / "postgres", home, ignore=shutil.ignore_patterns("dump.sql"))
    cluster = request.getfixturevalue("pg_cluster")
    subprocess.run(
        [str(cluster.bindir / "psql"), "--quiet", "-v", "ON_ERROR_STOP=1", "--dbname", database_url,
         "--file", str(DATA / "postgres" / "dump.sql")],
        check=True, capture_output=True,
    )  # fmt: skip


def repoint(home: Path, sandbox: MailchimpSandbox) -> None:
    """Point the connection at this test's sandbox (same account, another port)."""
    with Workspace.open(home, user="ada") as ws:
        connection = ws.get_connection("mc")
        with ws.store.transaction():
            config = {**connection.config, "api_base_url": sandbox.api_base_url}
            ws.store.update_connection_config(connection.id, config, ws.store.connection_secrets(connection.id))


def write_profiles(path: Path, renamed: set[int]) -> Path:
    lines = ["id,email,first_name,last_name,tier"]
    for i in range(PROFILES):
        first = "Renamed" if i in renamed else f"First{i}"
        lines.append(f"p{i:03d},person{i}@shop.segport-test.net,{first},Last{i},{'gold' if i % 3 == 0 else 'basic'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_an_earlier_release_workspace_upgrades_and_exports(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str | None, sandbox: MailchimpSandbox
) -> None:
    home = tmp_path / "ws"
    restore(request, home, database_url)
    repoint(home, sandbox)
    op = Operator(home)
    if database_url is not None:
        op.env["SEGPORT_DATABASE_URL"] = database_url

    assert [run["id"] for run in json.loads(op("runs", "list", "--json").stdout)] == [3, 2, 1]
    delta = op.run_json("news")
    assert delta["status"] == "succeeded", delta
    assert delta["counts"] == {
        "created": 0, "updated": 0, "unchanged": SELECTED, "skipped": 0, "rejected": 0, "failed": 0
    }  # fmt: skip
    assert sandbox.members() == []  # nothing was sent: what 0.1.0 delivered is still known

    op("profiles", "load", str(write_profiles(tmp_path / "profiles.csv", renamed={3, 6})))  # 3 was renamed before
    changed = op.run_json("news")
    assert changed["status"] == "succeeded", changed
    assert (changed["counts"]["updated"], changed["counts"]["unchanged"]) == (1, SELECTED - 1)
    [member] = sandbox.members()
    assert (member.email, member.fields["FNAME"]) == ("person6@shop.segport-test.net", "Renamed")
