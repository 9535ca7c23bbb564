"""Make the workspaces of tests/core/test_upgrade.py with an installed segport release.

Run it with the interpreter of the release whose workspaces the upgrade test must open (a venv
holding that release and ``psycopg``), from the repository root::

    /path/to/old/venv/bin/python tests/data/upgrade/make_workspaces.py tests/data/upgrade

It writes, for each store, what that release leaves behind after the same session:
``sqlite/`` (the workspace folder: ``segport.db`` and ``secret.key``) and ``postgres/``
(``secret.key``, and ``dump.sql``: ``pg_dump`` of the workspace's PostgreSQL database). The session:
``init``, a load of 30 profiles, a filter segment and a static one, a connection to the Mailchimp
sandbox (fixed API key and seed, so the test can start the same sandbox again), an export, a full
run, a reload changing one profile, and a delta run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from segport import __version__
from segport.testing.operator import Operator
from segport.testing.postgres import PostgresCluster
from segport_mailchimp.sandbox import MailchimpSandbox

API_KEY = "0123456789abcdef0123456789abcdef-us1"
SEED = 14
PROFILES = 30


def write_profiles(path: Path, renamed: int | None = None) -> Path:
    lines = ["id,email,first_name,last_name,tier"]
    for i in range(PROFILES):
        first = "Renamed" if i == renamed else f"First{i}"
        lines.append(f"p{i:03d},person{i}@shop.segport-test.net,{first},Last{i},{'gold' if i % 3 == 0 else 'basic'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def session(op: Operator, work: Path, sandbox: MailchimpSandbox) -> None:
    """The same commands on either store."""
    op("init", "--admin", "ada")
    op("profiles", "load", str(write_profiles(work / "profiles.csv")))
    op("segments", "define", "VIP", "--where", "tier = 'gold'")
    (work / "news.txt").write_text("".join(f"p{i:03d}\n" for i in range(0, PROFILES, 2)), encoding="utf-8")
    op("segments", "load", "Newsletter", str(work / "news.txt"))
    config = json.dumps(sandbox.demo_connection())
    op("connections", "add", "mc", "--type", "mailchimp", "--config", config, "--agree-privacy")
    audience = sandbox.demo_export_options()["audience_id"]
    op(
        "exports", "add", "news", "--connection", "mc", "--email", "email", "--option", f"audience_id={audience}",
        "--segment", "VIP", "--segment", "Newsletter", "--map", "FNAME=first_name", "--map", "LNAME=last_name",
    )  # fmt: skip
    for options in ((), ("--full",)):
        assert op.run_json("news", *options)["status"] == "succeeded"
    op("profiles", "load", str(write_profiles(work / "profiles.csv", renamed=3)))
    assert op.run_json("news")["counts"]["updated"] == 1


def main(out: Path) -> None:
    sandbox = MailchimpSandbox(seed=SEED, api_key=API_KEY)
    sandbox.start()
    cluster = PostgresCluster.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            sqlite_home = out / "sqlite"
            shutil.rmtree(sqlite_home, ignore_errors=True)
            session(Operator(sqlite_home), work, sandbox)
            pg_home = out / "postgres"
            shutil.rmtree(pg_home, ignore_errors=True)
            op = Operator(pg_home)
            url = cluster.create_database("legacy")
            op.env["SEGPORT_DATABASE_URL"] = url
            session(op, work, sandbox)
            dump = subprocess.run(
                [str(cluster.bindir / "pg_dump"), "--no-owner", "--no-privileges", "--dbname", url],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            # without the \\restrict guard lines, which psql before 15.14 refuses: any psql restores it
            lines = dump.splitlines(keepends=True)
            dump = "".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))
            (pg_home / "dump.sql").write_text(dump, encoding="utf-8")
            for home in (sqlite_home, pg_home):
                shutil.rmtree(home / "rejects", ignore_errors=True)
                (home / "RELEASE").write_text(f"segport {__version__}\n", encoding="utf-8")
    finally:
        cluster.stop()
        sandbox.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_FOLDER")
    os.umask(0o022)
    main(Path(sys.argv[1]).resolve())
