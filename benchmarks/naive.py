"""The naive baseline (issue 6): what a user writes with the official SDKs, one profile at a time.

Run by hand from the repository root, never in the test suite::

    python benchmarks/naive.py --profiles 500 --latency-ms 0,100
    python benchmarks/naive.py --latency-ms 1000 --segport-results /tmp/segport-bench-x/results.json --markdown

What it measures: for each plugin and each latency it generates profiles with the harness's own
``Dataset`` (same seed, same emails, names and segments as ``harness.py``), starts the plugin's
sandbox *in this process* with that per-call latency, exactly as the harness does, and runs the
per-person calls of each SDK's API reference in a plain loop, sequentially:

- **Mailchimp** (``mailchimp-marketing``): per profile ``lists.set_list_member(audience, md5(email),
  {email_address, status_if_new: "subscribed", merge_fields: {FNAME, LNAME}})``, then
  ``lists.update_list_member_tags(audience, md5(email), {"tags": [{name, status: "active"}, ...]})``:
  2 calls (1 when the member call is refused, e.g. an invalid address);
- **Campaign Monitor** (``createsend``): per profile ``Subscriber(auth).add(list_id, email, name,
  [{"Key": "Segments", "Value": segment}, ...], False, "Unchanged")``: 1 call. The ``Segments``
  MultiSelectMany field and its options are created through the SDK first, outside the timed loop
  (the sandbox, like Campaign Monitor, ignores values that are not options of the field).

The payload is what the harness's export sends: the same people, names (Mailchimp ``FNAME``/``LNAME``,
Campaign Monitor ``Name`` = first + last) and every segment as a marker. A refused profile is logged
and skipped, as a user's ``try``/``except`` would. The loop is ``N × calls × latency`` long, so it
times a sample (``--profiles``, default 1,000) and extrapolates: profiles/s = N ÷ wall, and the
projected time for 1,000,000 profiles = 1,000,000 ÷ profiles/s (per-profile cost does not depend
on N: every profile is its own independent call or two).

Why this is a fair "naive" baseline: it uses each SDK's per-person calls (one member upsert and one
tag call; one ``Subscriber.add``), written as the plain sequential loop a user writes. The
calls block (mailchimp-marketing documents ``async_req=True``, but its ``ApiClient`` ignores it), and
nothing is shared between them. Both SDKs also have bulk endpoints (Mailchimp ``batch_list_members``
and ``batches``, createsend ``Subscriber.import_subscribers``): using those, concurrently, with
chunking, retries and diffing, is what segport does, so they are not the naive way. The baseline is,
if anything, flattered: the sandbox adds its latency once per call, while on the internet each of
these calls also opens a new TCP + TLS connection (both SDKs reconnect on every call), which costs
extra round trips.

How the SDKs reach the sandbox (both are pointed at ``demo_connection()["api_base_url"]``):

- ``mailchimp_marketing.Client``: ``set_config({"api_key", "server"})``, then
  ``client.api_client.host = <api_base_url>`` (the SDK builds every URL as ``host + path``);
- ``createsend``: ``CreateSend.base_uri = <api_base_url>`` (every class resolves URLs through it),
  and, for the duration of the run, ``createsend.createsend.VerifiedHTTPSConnection`` is swapped
  for ``http.client.HTTPConnection``: the SDK hard-codes HTTPS and the sandbox serves plain HTTP on
  127.0.0.1. Nothing else in the SDK's request path changes. Both are restored afterwards.

Checks (✓ / ✗): so that a wrong loop does not look fast or slow for the wrong reason, after the loop
the sandbox must hold every valid profile (``summary()``), each marker on exactly the valid profiles
of its segment, and a sample of people read back through the API (name and markers); the calls it
answered must equal the calls the loop made, with never more than one in flight.

With ``--segport-results`` (the ``results.json`` of a ``harness.py`` run) each row also shows
segport's ``full`` export rate at the same plugin and latency, and the speed-up = segport
profiles/s ÷ naive profiles/s (goal ≥ 20×). Compare at a realistic latency and a large harness
run: at 0 ms both sides are CPU-bound, and at small N segport's fixed costs (process start, the
pre-flight calls) weigh heavily on its rate.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib
import json
import random
import sys
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

# `python benchmarks/naive.py` already puts benchmarks/ first on sys.path; this covers other launches.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import PROBES, SAMPLE, SEGMENTS, Dataset, Person, Probe, Row, format_markdown, format_text, log, machine

MILLION = 1_000_000
SEGMENT_FIELD = "Segments"  # the Campaign Monitor plugin's default segment_field
SDKS = {"mailchimp_marketing": "mailchimp-marketing", "createsend": "createsend"}  # import name -> distribution
COLUMNS = ["plugin", "latency", "profiles", "refused", "calls", "calls/profile", "in flight", "wall", "profiles/s",
           "ms/profile", "1M projected", "segport N", "segport profiles/s", "speed-up", "check"]  # fmt: skip
LEFT = {0}


# -- the naive loops ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one timed loop did, as counted by the loop itself."""

    calls: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)

    def refuse(self, i: int, exc: Exception) -> None:
        self.refused += 1
        if len(self.errors) < 5:
            self.errors.append(f"{Dataset.key(i)}: {type(exc).__name__}: {str(exc)[:160]}")


def sdk(module: str) -> Any:
    """Import an official SDK module (untyped), or exit with the ``pip install`` that is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        name = SDKS[module.partition(".")[0]]
        raise SystemExit(f"the {name} SDK is not installed: pip install {name} (see benchmarks/naive.py)") from None


def mailchimp_loop(sandbox: Any, data: Dataset) -> Outcome:
    """Per profile: ``set_list_member`` then ``update_list_member_tags``, as Mailchimp's docs show."""
    mailchimp, api_error = sdk("mailchimp_marketing"), sdk("mailchimp_marketing.api_client").ApiClientError
    connection, audience = sandbox.demo_connection(), sandbox.demo_export_options()["audience_id"]
    client = mailchimp.Client()
    client.set_config({"api_key": connection["api_key"], "server": connection["api_key"].rsplit("-", 1)[-1]})
    client.api_client.host = connection["api_base_url"]  # instead of https://<server>.api.mailchimp.com/3.0

    outcome = Outcome()
    for i in _progress(data.count):
        email = data.email(i)
        subscriber_hash = hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()
        member = {
            "email_address": email,
            "status_if_new": "subscribed",
            "merge_fields": {"FNAME": data.first_name(i), "LNAME": data.last_name(i)},
        }
        outcome.calls += 1
        try:
            client.lists.set_list_member(audience, subscriber_hash, member)
        except api_error as exc:
            outcome.refuse(i, exc)
            continue
        tags = [{"name": name, "status": "active"} for name in sorted(data.segments(i))]
        outcome.calls += 1
        client.lists.update_list_member_tags(audience, subscriber_hash, {"tags": tags})
    return outcome


@contextmanager
def createsend_at(base_uri: str) -> Iterator[None]:
    """Point the createsend SDK at ``base_uri`` over plain HTTP (it hard-codes HTTPS), then restore it."""
    createsend, transport = sdk("createsend"), sdk("createsend.createsend")
    saved = createsend.CreateSend.base_uri, transport.VerifiedHTTPSConnection
    createsend.CreateSend.base_uri, transport.VerifiedHTTPSConnection = base_uri, http.client.HTTPConnection
    try:
        yield
    finally:
        createsend.CreateSend.base_uri, transport.VerifiedHTTPSConnection = saved


def campaignmonitor_setup(sandbox: Any) -> None:
    """The ``Segments`` field with one option per segment: done once, by hand or like this, before any loop."""
    auth = {"api_key": sandbox.demo_connection()["api_key"]}
    sdk("createsend").List(auth, sandbox.demo_export_options()["list_id"]).create_custom_field(
        SEGMENT_FIELD, "MultiSelectMany", options=list(SEGMENTS)
    )


def campaignmonitor_loop(sandbox: Any, data: Dataset) -> Outcome:
    """Per profile: ``Subscriber.add`` with the segments as options of the field, as the SDK's README shows."""
    createsend = sdk("createsend")
    auth, list_id = {"api_key": sandbox.demo_connection()["api_key"]}, sandbox.demo_export_options()["list_id"]
    outcome = Outcome()
    for i in _progress(data.count):
        name = f"{data.first_name(i)} {data.last_name(i)}"
        custom_fields = [{"Key": SEGMENT_FIELD, "Value": segment} for segment in sorted(data.segments(i))]
        outcome.calls += 1
        try:
            createsend.Subscriber(auth).add(list_id, data.email(i), name, custom_fields, False, "Unchanged")
        except createsend.BadRequest as exc:
            outcome.refuse(i, exc)
    return outcome


@dataclass(frozen=True)
class Naive:
    """One plugin's naive loop: untimed setup (inside the SDK context), then the timed loop."""

    context: Callable[[Any], AbstractContextManager[None]]
    setup: Callable[[Any], None]
    loop: Callable[[Any, Dataset], Outcome]


@contextmanager
def _as_is(sandbox: Any) -> Iterator[None]:
    yield


NAIVE: dict[str, Naive] = {
    "mailchimp": Naive(_as_is, lambda sandbox: None, mailchimp_loop),
    "campaignmonitor": Naive(
        lambda sandbox: createsend_at(sandbox.demo_connection()["api_base_url"]),
        campaignmonitor_setup,
        campaignmonitor_loop,
    ),
}


def _progress(count: int) -> Iterator[int]:
    """``range(count)``, logging every 10 s so a long loop shows it is alive."""
    last = time.monotonic()
    for i in range(count):
        if time.monotonic() - last >= 10:
            log(f"  {i:,} of {count:,} profiles")
            last = time.monotonic()
        yield i


# -- one measurement ---------------------------------------------------------------------------------


@dataclass
class NaiveRow:
    """One line of the table: the naive loop for one plugin at one latency, and segport's rate beside it."""

    plugin: str
    latency_ms: int
    profiles: int
    refused: int
    calls: int
    peak_in_flight: int
    wall_s: float
    segport_profiles: int | None = None
    segport_rate: float | None = None
    segport_ok: bool | None = None
    ok: bool | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.profiles / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def projected_s(self) -> float | None:
        return MILLION / self.rate if self.rate > 0 else None

    @property
    def speedup(self) -> float | None:
        return self.segport_rate / self.rate if self.segport_rate and self.rate > 0 else None

    def cells(self) -> list[str]:
        projected, speedup = self.projected_s, self.speedup
        segport = "—"
        if self.segport_rate is not None:
            segport = f"{self.segport_rate:,.0f}" + ("" if self.segport_ok else " (✗)")
        return [
            self.plugin,
            f"{self.latency_ms} ms",
            f"{self.profiles:,}",
            f"{self.refused:,}",
            f"{self.calls:,}",
            f"{self.calls / self.profiles:.2f}" if self.profiles else "—",
            str(self.peak_in_flight),
            f"{self.wall_s:.2f} s",
            f"{self.rate:,.1f}",
            f"{1000 / self.rate:.2f}" if self.rate > 0 else "—",
            "—" if projected is None else duration(projected),
            "—" if self.segport_profiles is None else f"{self.segport_profiles:,}",
            segport,
            "—" if speedup is None else f"{speedup:,.1f}×",
            {True: "✓", False: "✗", None: ""}[self.ok],
        ]


def duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"


def measure(plugin: str, latency_ms: int, data: Dataset, seed: int) -> NaiveRow:
    """Start the plugin's sandbox with ``latency_ms``, run the naive loop over ``data``, check what landed."""
    from segport.sandboxing import find_sandbox

    factory = find_sandbox(plugin)
    if factory is None:
        raise SystemExit(f"destination {plugin!r} ships no sandbox")
    sandbox: Any = factory(latency_ms=latency_ms, seed=seed)
    naive = NAIVE[plugin]
    sandbox.start()
    try:
        probe = PROBES[plugin](sandbox)
        with naive.context(sandbox):
            naive.setup(sandbox)
            before, sandbox.max_in_flight = len(sandbox.requests_log), 0
            log(f"{plugin} @ {latency_ms} ms: naive SDK loop over {data.count:,} profiles")
            start = time.perf_counter()
            outcome = naive.loop(sandbox, data)
            wall = time.perf_counter() - start
        seen = len(sandbox.requests_log) - before
        row = NaiveRow(plugin, latency_ms, data.count, outcome.refused, seen, sandbox.max_in_flight, wall)
        row.problems = check(sandbox, probe, data, outcome, seen, latency_ms)
        row.ok = not row.problems
        return row
    finally:
        sandbox.stop()


def check(sandbox: Any, probe: Probe, data: Dataset, outcome: Outcome, seen: int, latency_ms: int) -> list[str]:
    """Compare what landed with what the generated data says must be there."""
    found = []
    if outcome.refused != data.rejects:  # only the planned rejects (invalid emails) may be refused
        found.append(f"{outcome.refused} profiles refused, expected {data.rejects} (invalid emails)")
        found += [f"refused {error}" for error in outcome.errors]
    if seen != outcome.calls:
        found.append(f"the loop made {outcome.calls} calls, the sandbox answered {seen}")
    if sandbox.max_in_flight > 1:
        found.append(f"{sandbox.max_in_flight} calls in flight at once: the loop is not sequential")
    summary = sandbox.summary()
    people, expected_people = probe.people(summary), data.count - data.rejects
    if people != expected_people:
        found.append(f"{people:,} people on the list, expected {expected_people:,}")
    markers = probe.markers(summary)
    found += [
        f"marker {k}: {markers.get(k)} people, expected {v}"
        for k, v in data.expected_markers().items()
        if markers.get(k) != v
    ]
    sandbox.set_faults(latency_ms=0)  # the read-back is no part of the measurement
    try:
        invalid = [i for i in range(data.count) if not data.valid(i)][:SAMPLE]
        for i in random.Random(data.count).sample(range(data.count), min(SAMPLE, data.count)) + invalid:
            person = probe.person(data.email(i))
            want = Person(probe.expected_name(data.first_name(i), data.last_name(i)), data.segments(i))
            if data.valid(i) and person != want:
                found.append(f"{data.key(i)}: found {person}, expected {want}")
            elif not data.valid(i) and person is not None:
                found.append(f"{data.key(i)} has an invalid email but is on the list")
    finally:
        sandbox.set_faults(latency_ms=latency_ms)
    return found[:10]


# -- segport's side ----------------------------------------------------------------------------------


def segport_rows(path: Path) -> dict[tuple[str, int], Row]:
    """The ``full`` rows of a harness ``results.json``, by (plugin, latency)."""
    known = {f.name for f in fields(Row)}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--segport-results {path}: {exc}") from None
    rows = [Row(**{k: v for k, v in item.items() if k in known}) for item in raw if isinstance(item, Mapping)]
    return {(r.plugin, r.latency_ms): r for r in rows if r.step == "full" and r.latency_ms is not None}


# -- output ------------------------------------------------------------------------------------------


def text_table(rows: Sequence[NaiveRow]) -> str:
    return format_text(COLUMNS, [r.cells() for r in rows], LEFT)


def markdown_table(rows: Sequence[NaiveRow]) -> str:
    return format_markdown(COLUMNS, [r.cells() for r in rows], LEFT)


def notes(rows: Sequence[NaiveRow], segport: Mapping[tuple[str, int], Row] | None) -> str:
    lines = [f"✗ {r.plugin} {r.latency_ms} ms naive: {p}" for r in rows for p in r.problems]
    for r in rows:
        found = None if segport is None else segport.get((r.plugin, r.latency_ms))
        if found is None and segport is not None:
            lines.append(f"no segport full export of {r.plugin} at {r.latency_ms} ms in --segport-results")
        elif found is not None and not found.ok:
            lines += [f"(✗) segport {r.plugin} {r.latency_ms} ms full (harness check): {p}" for p in found.problems]
    return "\n".join(lines)


def sdk_versions() -> list[tuple[str, str]]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return [(name, version(name)) for name in SDKS.values()]


def report(rows: Sequence[NaiveRow], segport: Mapping[tuple[str, int], Row] | None, args: argparse.Namespace) -> None:
    found = notes(rows, segport)
    if args.markdown:
        info = [*machine(), *sdk_versions()]
        if args.segport_results is not None:
            info.append(("segport results", str(args.segport_results)))
        quoted = ("command", "segport results")
        print("\n".join(f"- **{k}**: `{v}`" if k in quoted else f"- **{k}**: {v}" for k, v in info) + "\n")
        print(markdown_table(rows))
        if found:
            print("\n```\n" + found + "\n```")
    else:
        print(text_table(rows))
        if found:
            print("\n" + found)


# -- entry point -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/naive.py",
        description="Time the naive official-SDK loop (one profile at a time) against the sandboxes.",
    )
    parser.add_argument("--profiles", type=int, default=1000, help="profiles in the timed sample (default 1,000)")
    parser.add_argument(
        "--latency-ms",
        action="append",
        default=None,
        metavar="MS[,MS...]",
        help="per-call sandbox latency; repeatable or comma-separated (default 1000)",
    )
    parser.add_argument("--plugins", default="mailchimp,campaignmonitor", help="comma-separated destinations")
    parser.add_argument(
        "--segport-results", type=Path, default=None, metavar="PATH", help="a harness results.json to compare with"
    )
    parser.add_argument("--markdown", action="store_true", help="print Markdown for benchmarks/RESULTS.md")
    parser.add_argument("--seed", type=int, default=7, help="data and sandbox seed (default 7, as the harness)")
    args = parser.parse_args(argv)
    args.latencies = [int(v) for item in (args.latency_ms or ["1000"]) for v in item.split(",") if v.strip()]
    args.plugin_names = [p.strip() for p in args.plugins.split(",") if p.strip()]
    unknown = [p for p in args.plugin_names if p not in NAIVE]
    if unknown:
        parser.error(f"no naive loop for {', '.join(unknown)} (known: {', '.join(NAIVE)})")
    if args.profiles < 1:
        parser.error("--profiles must be at least 1")
    if any(v < 0 for v in args.latencies):
        parser.error("--latency-ms must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    segport = segport_rows(args.segport_results) if args.segport_results is not None else None
    log(f"generating {args.profiles:,} profiles")
    data = Dataset(args.profiles, args.seed)
    rows: list[NaiveRow] = []
    for plugin in args.plugin_names:
        for latency in args.latencies:
            row = measure(plugin, latency, data, args.seed)
            found = segport.get((plugin, latency)) if segport is not None else None
            if found is not None:
                row.segport_profiles, row.segport_rate, row.segport_ok = found.profiles, found.rate, found.ok
            rows.append(row)
    report(rows, segport, args)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
