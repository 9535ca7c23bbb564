"""Benchmark of the console's and the API's lists (issue 17, item 6): pages over a large workspace.

Run by hand, never in the test suite::

    python benchmarks/console_lists.py                      # SQLite, 1M profiles, 1,000 exports, 100,000 runs
    python benchmarks/console_lists.py --postgres           # the same on a throwaway PostgreSQL cluster
    python benchmarks/console_lists.py --profiles 100000 --explain   # smaller, with each query's plan

It seeds a workspace through the store's bulk paths: N profiles (the filter segments' caches kept
current during the load, as every load does), 20 segments (12 filters, 8 static lists), 10
connections (half shared with contributors), 1,000 exports, 100,000 runs spread over them and
200,000 audit entries. Then it times each list call, first page and deep pages, as an admin and as
a contributor (whose visibility rule applies before the page is cut): the median of ``--repeat``
calls through the services (``Workspace``), or, with ``--http URL``, through a running
``segport serve`` with a bearer token. The goal is 200 ms per call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from sqlalchemy import event, insert

from segport import Workspace
from segport.models import Export, Share
from segport.store.schema import audit, runs

GOAL_MS = 200.0
FILTERS = {
    "Everyone": "email is not empty",
    "France": "country = 'FR'",
    "Germany": "country = 'DE'",
    "Spain": "country = 'ES'",
    "Gold": "tier = 'gold'",
    "Silver": "tier = 'silver'",
    "Big spenders": "lifetime_value >= 4000",
    "Small spenders": "lifetime_value < 500",
    "Young": "age < 30",
    "Seniors": "age >= 65",
    "Named Ada": "first_name = 'Ada'",
    "No tier": "tier is empty",
}
STATIC = 8  # static segments, each one profile in STATIC_EVERY
STATIC_EVERY = 20
COUNTRIES = ("FR", "DE", "ES", "GB", "US", "IT", "NL", "BE")
TIERS = ("gold", "silver", "bronze", "", "")
FIRST = ("Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger")
STATUSES = ("succeeded",) * 16 + ("partial", "failed", "interrupted", "planned")
TRIGGERS = ("manual", "schedule", "schedule", "schedule", "refresh", "api")
USERS = ("ada", "carl", "dora", "eli", "fay")
ACTIONS = ("exports.run", "exports.edit", "exports.add", "profiles.load", "segments.define", "connections.test",
           "users.role", "denied")  # fmt: skip


class Row(NamedTuple):
    line: int
    key: str
    attrs: dict[str, Any]


def profiles(count: int) -> Iterator[Row]:
    for i in range(count):
        attrs = {
            "id": f"p{i:07d}",
            "email": f"p{i}@bench.segport-test.net",
            "first_name": FIRST[i % len(FIRST)],
            "country": COUNTRIES[i % len(COUNTRIES)],
            "tier": TIERS[(i // 7) % len(TIERS)],
            "lifetime_value": (i * 7919) % 5000,
            "age": 18 + (i * 31) % 70,
        }
        yield Row(i + 2, attrs["id"], attrs)


def stamp(base: datetime, seconds: float) -> str:
    return (base + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def seed(ws: Workspace, args: argparse.Namespace) -> dict[str, float]:
    """Fill the workspace through the store's bulk paths; return how long each part took."""
    store = ws.store
    took: dict[str, float] = {}
    started = time.perf_counter()
    for name in USERS[1:]:
        ws.add_user(name, "contributor" if name != "fay" else "viewer")
    with store.transaction():  # filters defined before the load: the load keeps their caches current
        for name, where in FILTERS.items():
            segment = store.save_segment(name, "filter", where, "ada")
            store.set_cached_seq([segment.id], 0)
    begin = time.perf_counter()
    with store.transaction():
        from segport.pipeline.selection import LoadEvaluator

        evaluator = LoadEvaluator(store, store.list_segments())
        loaded = store.load_profiles(profiles(args.profiles), replace=False, source="bench", on_chunk=evaluator)
        evaluator.finish(loaded.seq)
        store.set_profile_key_column("id")
    took["profiles"] = time.perf_counter() - begin
    begin = time.perf_counter()
    with store.transaction():
        for n in range(STATIC):
            segment = store.save_segment(f"List {n:02d}", "static", None, "ada")
            keys = (f"p{i:07d}" for i in range(n, args.profiles, STATIC_EVERY))
            store.replace_members(segment.id, keys)
    took["static segments"] = time.perf_counter() - begin
    begin = time.perf_counter()
    with store.transaction():
        connections = [
            store.add_connection(
                name=f"conn-{c:02d}",
                type="memory",
                share=Share.CONTRIBUTORS if c % 2 else Share.ADMINS,
                config={},
                secrets=None,
                profile_cap=None,
                user="ada",
            )
            for c in range(args.connections)
        ]
        exports = []
        for e in range(args.exports):
            conn = connections[e % len(connections)]
            export = Export(0, f"export-{e:04d}", conn.name, conn.id, [list(FILTERS)[e % len(FILTERS)]], "email",
                            {"FNAME": "first_name"}, {"audience_id": f"aud{e}"}, "0 3 * * *" if e % 3 == 0 else None,
                            e % 10 != 0, "carl", "", "")  # fmt: skip
            exports.append(store.add_export(export))
    took["connections, exports"] = time.perf_counter() - begin
    begin = time.perf_counter()
    base = datetime.now(timezone.utc) - timedelta(days=400)
    rows: list[dict[str, Any]] = []
    with store.transaction():
        for r in range(args.runs):
            export = exports[(r * 7) % len(exports)]
            status = STATUSES[r % len(STATUSES)]
            counts = {"created": r % 50, "updated": r % 13, "unchanged": 1000 - r % 50, "rejected": r % 3}
            rows.append({
                "export_id": export.id, "export": export.name, "status": status, "trigger": TRIGGERS[r % len(TRIGGERS)],
                "user": USERS[r % len(USERS)], "pid": 1, "host": "bench", "started_at": stamp(base, r * 300),
                "heartbeat_at": stamp(base, r * 300 + 20), "finished_at": stamp(base, r * 300 + 25),
                "counts": json.dumps(counts), "requests": 4, "retries": 0, "duration_s": 25.0,
                "plan": json.dumps({"selected": 1000, "requests": 4}),
            })  # fmt: skip
            if len(rows) == 5000:
                store.db.execute(insert(runs), rows)
                rows = []
        if rows:
            store.db.execute(insert(runs), rows)
    took["runs"] = time.perf_counter() - begin
    begin = time.perf_counter()
    rows = []
    with store.transaction():
        for a in range(args.audit):
            action = ACTIONS[a % len(ACTIONS)]
            rows.append({"at": stamp(base, a * 150), "user": USERS[a % len(USERS)], "action": action,
                         "target": f"export-{a % args.exports:04d}", "detail": '{"run":1}'})  # fmt: skip
            if len(rows) == 5000:
                store.db.execute(insert(audit), rows)
                rows = []
        if rows:
            store.db.execute(insert(audit), rows)
    took["audit"] = time.perf_counter() - begin
    if args.analyze or store.db.dialect.name == "postgresql":  # autovacuum's ANALYZE follows a bulk insert
        store.db.driver.execute("ANALYZE")
    took["total"] = time.perf_counter() - started
    return took


class Case(NamedTuple):
    name: str
    role: str
    call: Callable[[Workspace], Any]
    path: str  # the HTTP API's path and query for the same page


def cases(args: argparse.Namespace) -> list[Case]:
    deep_runs = min(90_000, max(0, args.runs - 50))
    deep_audit = min(90_000, max(0, args.audit - 50))
    since = (datetime.now(timezone.utc) - timedelta(days=30)).isoformat(timespec="seconds")
    found: list[Case] = []
    for role in ("admin", "contributor"):
        found += [
            Case("exports, first page", role, lambda w: w.exports_page(limit=50), "/exports?limit=50"),
            Case("exports, last page", role, lambda w: w.exports_page(limit=50, offset=950),
                 "/exports?limit=50&offset=950"),
            Case("exports of a connection", role, lambda w: w.exports_page(connection="conn-03"),
                 "/exports?connection=conn-03"),
            Case("exports, search", role, lambda w: w.exports_page(search="07"), "/exports?search=07"),
            Case("runs, first page", role, lambda w: w.runs_page(limit=50), "/runs?limit=50"),
            Case(f"runs, offset {deep_runs:,}", role, lambda w: w.runs_page(limit=50, offset=deep_runs),
                 f"/runs?limit=50&offset={deep_runs}"),
            Case("runs of an export", role, lambda w: w.runs_page(export="export-0007"), "/runs?export=export-0007"),
            Case("runs, failed", role, lambda w: w.runs_page(status="failed"), "/runs?status=failed"),
            Case("runs, failed, offset 4,000", role, lambda w: w.runs_page(status="failed", offset=4000),
                 "/runs?status=failed&offset=4000"),
            Case("runs by a user and trigger", role, lambda w: w.runs_page(user="dora", trigger="api"),
                 "/runs?user=dora&trigger=api"),
            Case("connections", role, lambda w: w.connections_page(), "/connections"),
            Case("segments with counts", role, lambda w: w.segments_page(), "/segments"),
            Case("users", role, lambda w: w.users_page(), "/users"),
        ]  # fmt: skip
    found += [
        Case("audit, first page", "admin", lambda w: w.audit_page(limit=50), "/audit?limit=50"),
        Case(f"audit, offset {deep_audit:,}", "admin", lambda w: w.audit_page(limit=50, offset=deep_audit),
             f"/audit?limit=50&offset={deep_audit}"),
        Case("audit, one action family", "admin", lambda w: w.audit_page(action="connections"),
             "/audit?action=connections"),
        Case("audit, a user's since 30 days", "admin", lambda w: w.audit_page(user="eli", since=since),
             f"/audit?user=eli&since={since}"),
        Case("audit of a target", "admin", lambda w: w.audit_page(target="export-0042"), "/audit?target=export-0042"),
    ]  # fmt: skip
    return found


def timed(call: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    result = None
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - begin) * 1000)
    return times, result


def explain(ws: Workspace, call: Callable[[Workspace], Any]) -> list[str]:
    """Return each SELECT the call runs, with its plan (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN)."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and not many:
            seen.append((statement, parameters))

    event.listen(ws.store.engine, "before_cursor_execute", capture)
    try:
        call(ws)
    finally:
        event.remove(ws.store.engine, "before_cursor_execute", capture)
    lines = []
    driver = ws.store.db.driver
    for statement, parameters in seen:
        if ws.store.db.dialect.name == "postgresql":
            plan = [row[0] for row in driver.execute("EXPLAIN " + statement, parameters).fetchall()]
        else:
            plan = [row[3] for row in driver.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()]
        lines.append(" ".join(statement.split())[:300])
        lines += [f"    {step}" for step in plan]
    return lines


def http_call(base: str, token: str, path: str) -> Callable[[], Any]:
    def call() -> Any:
        request = urllib.request.Request(base.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--exports", type=int, default=1_000)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per case (the median is reported)")
    parser.add_argument("--postgres", action="store_true", help="the PostgreSQL store instead of SQLite")
    parser.add_argument("--workdir", type=Path, help="keep the workspace here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="time the workspace in --workdir without seeding it")
    parser.add_argument("--explain", action="store_true", help="print each query's plan after the table")
    parser.add_argument("--analyze", action="store_true",
                        help="ANALYZE the SQLite database after seeding (a workspace never does: default off)")
    parser.add_argument("--http", metavar="URL", help="also time the API of a running 'segport serve' (/api/v1)")
    parser.add_argument("--token-admin", default=os.environ.get("BENCH_TOKEN_ADMIN"), help="bearer token of ada")
    parser.add_argument("--token-contributor", default=os.environ.get("BENCH_TOKEN_CONTRIBUTOR"),
                        help="bearer token of carl")  # fmt: skip
    parser.add_argument("--database-url", help="the database of --reuse (PostgreSQL)")
    args = parser.parse_args(argv)
    root = args.workdir or Path(tempfile.mkdtemp(prefix="segport-bench-lists-"))
    cluster = None
    url = args.database_url
    if args.postgres and not url:
        from segport.testing.postgres import PostgresCluster

        cluster = PostgresCluster.start()
        url = cluster.create_database()
    try:
        home = root / "ws"
        if args.reuse:
            ws = Workspace.open(home, "ada", database_url=url)
            took: dict[str, float] = {}
        else:
            if home.exists():
                shutil.rmtree(home)
            ws = Workspace.create(home, "ada", database_url=url)
            took = seed(ws, args)
        store_name = "PostgreSQL" if url else "SQLite"
        print(f"## {store_name}: {args.profiles:,} profiles, {args.exports:,} exports, {args.runs:,} runs, "
              f"{args.audit:,} audit entries, {len(FILTERS) + STATIC} segments")  # fmt: skip
        print(f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}")
        print(f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`")
        if took:
            print("- seeding: " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()))
        print()
        print(f"| store | list call | as | via | items | total | first ms | median ms | max ms | ≤ {GOAL_MS:.0f} ms |")
        print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
        actors = {"admin": ws, "contributor": Workspace.open(home, "carl", database_url=url)}
        tokens = {"admin": args.token_admin, "contributor": args.token_contributor}
        misses = 0
        plans: list[str] = []
        for case in cases(args):
            actor = actors[case.role]
            begin = time.perf_counter()
            case.call(actor)
            first = (time.perf_counter() - begin) * 1000
            times, page = timed(lambda case=case, actor=actor: case.call(actor), args.repeat)
            median = statistics.median(times)
            ok = median <= GOAL_MS
            misses += not ok
            print(f"| {store_name} | {case.name} | {case.role} | service | {len(page.items)} | {page.total:,} | "
                  f"{first:.1f} | {median:.1f} | {max(times):.1f} | {'✓' if ok else '✗'} |", flush=True)  # fmt: skip
            if args.http and tokens[case.role]:
                call = http_call(args.http + "/api/v1", tokens[case.role], case.path)
                begin = time.perf_counter()
                call()
                first = (time.perf_counter() - begin) * 1000
                times, answer = timed(call, args.repeat)
                median = statistics.median(times)
                ok = median <= GOAL_MS
                misses += not ok
                items = answer.get("items", []) if isinstance(answer, dict) else answer
                total = answer.get("total", "—") if isinstance(answer, dict) else "—"
                mark = "✓" if ok else "✗"
                print(f"| {store_name} | {case.name} | {case.role} | HTTP | {len(items)} | {total:,} | "
                      f"{first:.1f} | {median:.1f} | {max(times):.1f} | {mark} |", flush=True)  # fmt: skip
            if args.explain:
                plans += [f"### {case.name} ({case.role})", *explain(actor, case.call)]
        for actor in actors.values():
            actor.close()
        if plans:
            print()
            print("\n".join(plans))
        return 1 if misses else 0
    finally:
        if cluster is not None:
            cluster.stop()
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
