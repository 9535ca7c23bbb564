"""Benchmark of the Celery executor (issue 9): a refresh of many exports on 1, 2, 3 workers.

Run by hand, never in the test suite (needs ``segport[workers]`` and ``redis-server``; ``--postgres``
also the PostgreSQL server binaries and ``segport[postgres]``)::

    python benchmarks/workers.py --exports 12 --profiles 5000 --latency-ms 200 --workers 1,2,3 [--postgres]

Two Mailchimp sandboxes (two API keys, each limited to 10 connections) serve every export, half each;
export k sends its own segment ``G{k}`` (the profiles ``i % exports == k``), so nobody is sent twice.
For each worker count, a new set of exports (new names and tag prefixes, so nothing was delivered yet;
the sandboxes are reset) is queued by ``segport refresh`` and timed until every run has ended; each
export's tag is then checked to hold exactly its segment, and the keys' peak calls in flight reported.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segport import Workspace
from segport.testing.operator import Operator
from segport.testing.redis import RedisServer
from segport_mailchimp.sandbox import MailchimpSandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", type=int, default=12)
    parser.add_argument(
        "--profiles", type=int, default=60_000, help="profiles in the workspace, split over the exports"
    )
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--workers", default="1,2,3", help="worker counts to measure, e.g. 1,2,3")
    parser.add_argument("--concurrency", type=int, default=2, help="runs at once per worker")
    parser.add_argument("--postgres", action="store_true", help="the PostgreSQL store instead of SQLite")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="segport-bench-workers-"))
    with RedisServer() as redis, MailchimpSandbox(seed=1) as first, MailchimpSandbox(seed=2) as second:
        sandboxes = [first, second]
        cluster, url = _store(args.postgres)
        try:
            op = _workspace(root, args.profiles, args.exports, sandboxes, redis.url, url)
            print(
                f"{args.exports} exports, {args.profiles:,} profiles, {args.latency_ms} ms per call, "
                f"{'PostgreSQL' if url else 'SQLite'} store, 2 keys x 10 connections"
            )
            print(
                "| workers | wall s | exports/hour | profiles/s | run s (median) | calls | peak calls per key | state |"
            )
            print("|---|---|---|---|---|---|---|---|")
            for count in (int(n) for n in args.workers.split(",")):
                print(_round(op, root, sandboxes, args, count), flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
    return 0


def _store(postgres: bool) -> tuple[object | None, str | None]:
    if not postgres:
        return None, None
    from segport.testing.postgres import PostgresCluster

    cluster = PostgresCluster.start()
    return cluster, cluster.create_database()


def _workspace(
    root: Path, count: int, groups: int, sandboxes: list[MailchimpSandbox], broker: str, url: str | None
) -> Operator:
    profiles = root / "profiles.csv"
    lines = ["id,email,first_name,group"] + [
        f"p{i:07d},p{i}@bench.segport-test.net,F{i},g{i % groups}" for i in range(count)
    ]
    profiles.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with Workspace.create(root / "ws", "bench", database_url=url) as ws:
        ws.load_profiles(profiles)
        for g in range(groups):
            ws.define_segment(f"G{g}", f"group = 'g{g}'")
        for n, sandbox in enumerate(sandboxes):
            ws.add_connection(f"mc{n}", "mailchimp", sandbox.demo_connection(), agree_privacy=True)
    op = Operator(root / "ws", user="bench")
    op.env.update(SEGPORT_BROKER_URL=broker)
    if url:
        op.env["SEGPORT_DATABASE_URL"] = url
    return op


def _round(op: Operator, root: Path, sandboxes: list[MailchimpSandbox], args: argparse.Namespace, count: int) -> str:
    for sandbox in sandboxes:
        sandbox.reset()
        sandbox.set_faults(latency_ms=args.latency_ms)
    names = [f"w{count}-e{k}" for k in range(args.exports)]
    with Workspace.open(root / "ws", "bench", database_url=op.env.get("SEGPORT_DATABASE_URL")) as ws:
        for old in ws.list_exports():
            ws.remove_export(old.name)
        for k, name in enumerate(names):
            sandbox = sandboxes[k % 2]
            options = {**sandbox.demo_export_options(), "tag_prefix": f"{name}-"}  # one tag per export
            ws.add_export(
                name,
                connection=f"mc{k % 2}",
                segments=[f"G{k}"],
                email_field="email",
                mapping={"FNAME": "first_name"},
                options=options,
            )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "segport", "worker", "-c", str(args.concurrency), "-l", "warning"],
            env=op.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]
    try:
        time.sleep(3)  # the workers connect to the broker
        started = time.monotonic()
        op("refresh", "--json")
        while True:
            runs = json.loads(op("runs", "list", "--json", "--limit", "1000").stdout)
            mine = [r for r in runs if r["export"] in names]
            if len(mine) == len(names) and all(r["status"] != "running" for r in mine):
                break
            time.sleep(0.25)
        wall = time.monotonic() - started
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(30)
    sent = sum(r["counts"].get(k, 0) for r in mine for k in ("created", "updated", "unchanged"))
    sizes = {k: len(range(k, args.profiles, args.exports)) for k in range(args.exports)}
    tags = {**sandboxes[0].summary()["tags"], **sandboxes[1].summary()["tags"]}
    wrong = [n for k, n in enumerate(names) if tags.get(f"{n}-G{k}") != sizes[k]]
    ok = all(r["status"] == "succeeded" for r in mine) and not wrong
    peak = "/".join(str(s.max_in_flight) for s in sandboxes)
    durations = sorted(r["duration_s"] or 0 for r in mine)
    calls = sum(r["requests"] for r in mine)
    return (
        f"| {count} | {wall:.1f} | {len(names) / wall * 3600:,.0f} | {sent / wall:,.0f} | "
        f"{durations[len(durations) // 2]:.1f} | {calls} | {peak} | "
        f"{'✓' if ok else '✗ ' + ', '.join(wrong[:3])} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
