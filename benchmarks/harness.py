"""segport benchmark harness (issue 6): full and delta exports against the local sandboxes.

Run by hand, never in the test suite::

    python benchmarks/harness.py --profiles 20000 --latency-ms 0 --latency-ms 100

For each plugin and each latency it generates N synthetic profiles and three segments (two filters,
one static), starts the plugin's sandbox *in this process* (in threads) with that per-call latency,
then drives the ``segport`` CLI *as a subprocess* (``python -m segport`` with SEGPORT_HOME and
SEGPORT_USER), so the wall time, CPU time and peak RSS it reports are the engine's alone:

    profiles load -> exports run --dry-run -> exports run (full) -> change 1 % of the profiles
    -> exports run --dry-run (delta) -> exports run (delta)

After each run the sandbox is checked against what the generated data says must be there (members
or subscribers = selected profiles minus rejects, members per segment marker, a sample of people
fetched one by one), so a fast but wrong run shows a ✗. See ``benchmarks/README.md``.

Peak RSS: each measured command is started by a tiny launcher process (``python -c``) that
``posix_spawn``s it and reads its rusage with ``os.wait4``. Going through the launcher matters:
Linux folds the *parent's* RSS high-water mark into a child's ``ru_maxrss`` at ``exec`` time, so a
direct ``wait4`` from this (large, sandbox-holding) process would report this process's memory.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from array import array
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import Request, urlopen

USER = "bench"
EXPORT = "bench"
CONNECTION = "bench"
DOMAIN = "segport-bench.net"
INVALID_EVERY = 1000  # one profile in a thousand has an unsendable email: a planned reject
CUSTOMERS, VIP, NEWSLETTER = "Customers", "VIP", "Newsletter"
SEGMENTS = (CUSTOMERS, VIP, NEWSLETTER)
FILTERS = {CUSTOMERS: "email is not empty", VIP: "lifetime_value >= 4000"}
VIP_FROM = 4000
RENAMED = "Renamed"
SAMPLE = 25  # people fetched one by one from the sandbox after each run, per kind of change
FIRST = ("Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger",
         "Radia", "Guido", "Hedy", "Tim", "Katherine", "John", "Sophie", "Donald", "Joan", "Niklaus")  # fmt: skip
LAST = ("Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen",
        "Dijkstra", "Perlman", "Rossum", "Lamarr", "Berners", "Johnson", "Backus", "Wilson", "Knuth",
        "Clarke", "Wirth")  # fmt: skip
CITIES = (("Paris", "FR"), ("Lyon", "FR"), ("Berlin", "DE"), ("Hamburg", "DE"), ("London", "GB"),
          ("Madrid", "ES"), ("Boston", "US"), ("Austin", "US"), ("Toronto", "CA"), ("Dublin", "IE"))  # fmt: skip
HEADER = "id,email,first_name,last_name,city,country,lifetime_value\n"

# Spawns the measured command and reports its own rusage; see the module docstring for why.
LAUNCHER = """
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(out, "w") as f:
    json.dump({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
               "exit": os.waitstatus_to_exitcode(status)}, f)
"""


# -- synthetic data ----------------------------------------------------------------------------------


class Dataset:
    """N generated profiles, compactly held so expectations can be recomputed after each change."""

    def __init__(self, count: int, seed: int) -> None:
        rng = random.Random(seed)
        self.count = count
        self.first = bytearray(rng.randrange(len(FIRST)) for _ in range(count))
        self.last = bytearray(rng.randrange(len(LAST)) for _ in range(count))
        self.city = bytearray(rng.randrange(len(CITIES)) for _ in range(count))
        self.ltv = array("H", (rng.randrange(5001) for _ in range(count)))
        picked = rng.sample(range(count), count // 100)  # the delta: 1 % of the profiles
        half = len(picked) // 2
        self.to_rename = sorted(picked[:half])
        self.to_toggle = sorted(picked[half:])
        self.delta_applied = False
        self._renamed: set[int] = set()
        self._toggled: set[int] = set()

    @staticmethod
    def key(i: int) -> str:
        return f"p{i:08d}"

    @staticmethod
    def valid(i: int) -> bool:
        return i % INVALID_EVERY != INVALID_EVERY - 1

    def email(self, i: int) -> str:
        local = f"{FIRST[self.first[i]]}.{LAST[self.last[i]]}{i}".lower()
        return f"{local}@{DOMAIN}" if self.valid(i) else f"{local}.at.{DOMAIN}"

    def first_name(self, i: int) -> str:
        return RENAMED if i in self._renamed else FIRST[self.first[i]]

    def last_name(self, i: int) -> str:
        return LAST[self.last[i]]

    def in_newsletter(self, i: int) -> bool:
        return (i % 3 == 0) != (i in self._toggled)

    def segments(self, i: int) -> frozenset[str]:
        names = {CUSTOMERS}
        if self.ltv[i] >= VIP_FROM:
            names.add(VIP)
        if self.in_newsletter(i):
            names.add(NEWSLETTER)
        return frozenset(names)

    def row(self, i: int) -> str:
        city, country = CITIES[self.city[i]]
        return (
            f"{self.key(i)},{self.email(i)},{self.first_name(i)},{self.last_name(i)},{city},{country},{self.ltv[i]}\n"
        )

    def write_profiles(self, path: Path, indices: Iterator[int] | None = None) -> None:
        with path.open("w", encoding="utf-8") as out:
            out.write(HEADER)
            out.writelines(self.row(i) for i in (indices if indices is not None else range(self.count)))

    def write_newsletter(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as out:
            out.writelines(self.key(i) + "\n" for i in range(self.count) if self.in_newsletter(i))

    def apply_delta(self) -> None:
        self._renamed, self._toggled, self.delta_applied = set(self.to_rename), set(self.to_toggle), True

    def reset_delta(self) -> None:
        self._renamed, self._toggled, self.delta_applied = set(), set(), False

    @property
    def rejects(self) -> int:
        return self.count // INVALID_EVERY

    def expected_markers(self) -> dict[str, int]:
        """Valid profiles per segment: what must carry each marker at the destination."""
        counts = dict.fromkeys(SEGMENTS, 0)
        for i in range(self.count):
            if self.valid(i):
                for name in self.segments(i):
                    counts[name] += 1
        return counts


# -- running the CLI ---------------------------------------------------------------------------------


@dataclass
class Measured:
    """One measured CLI process: its wall time, CPU time (user + system) and peak RSS."""

    wall_s: float
    cpu_s: float
    maxrss_kb: int
    exit: int
    stdout: str
    stderr: str

    def record(self) -> dict[str, Any]:
        """The JSON document the command printed, or {} when it printed none (it failed)."""
        try:
            found = json.loads(self.stdout)
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}


class Cli:
    """``python -m segport`` against one workspace."""

    def __init__(self, home: Path, scratch: Path) -> None:
        self.home = home
        self.scratch = scratch
        self.env = {**os.environ, "SEGPORT_HOME": str(home), "SEGPORT_USER": USER}
        self.env.pop("SEGPORT_SECRET_KEY", None)  # the workspace's own secret.key, copied with it

    def argv(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, "-m", "segport", *args]

    def run(self, *args: str) -> str:
        """An unmeasured setup command; raises with its stderr when it fails."""
        done = subprocess.run(self.argv(args), env=self.env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"segport {shlex.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def measure(self, *args: str) -> Measured:
        """Run a command through the launcher; never raises on its exit code."""
        report, out, err = (self.scratch / name for name in ("rusage.json", "stdout.txt", "stderr.txt"))
        with out.open("w") as stdout, err.open("w") as stderr:
            subprocess.run(
                [sys.executable, "-c", LAUNCHER, str(report), *self.argv(args)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                check=False,
            )
        usage = json.loads(report.read_text())
        return Measured(
            usage["wall_s"], usage["cpu_s"], usage["maxrss_kb"], usage["exit"], out.read_text(), err.read_text()
        )


# -- talking to a sandbox ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    name: str
    markers: frozenset[str]


class Probe(ABC):
    """Plugin-specific reading of a sandbox: people on the list, markers, one person."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.connection: dict[str, Any] = sandbox.demo_connection()
        self.options: dict[str, Any] = sandbox.demo_export_options()

    @abstractmethod
    def people(self, summary: Mapping[str, Any]) -> int:
        """People on the list, whatever their status, from the sandbox's ``summary()``."""

    @abstractmethod
    def markers(self, summary: Mapping[str, Any]) -> dict[str, int]:
        """People per segment marker (Mailchimp tag, Campaign Monitor option), from ``summary()``."""

    @abstractmethod
    def expected_name(self, first: str, last: str) -> str:
        """The name field the sandbox must hold, given the plugin's ``demo_mapping()``."""

    @abstractmethod
    def person(self, email: str) -> Person | None:
        """One person read back through the sandbox's API, or None when not on the list."""

    @abstractmethod
    def is_batch_call(self, method: str, path: str) -> bool:
        """Whether a logged request was made by ``write_batch`` (not by the pre-flight ``prepare``)."""

    def _get(self, url: str, authorization: str) -> Any:
        try:
            with urlopen(Request(url, headers={"Authorization": authorization}), timeout=30) as answer:
                return json.loads(answer.read())
        except HTTPError as exc:
            if exc.code in (400, 404):  # not on the list (Campaign Monitor answers 400 code 203)
                return None
            raise


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class MailchimpProbe(Probe):
    def people(self, summary: Mapping[str, Any]) -> int:
        return sum(summary.get("members", {}).values())

    def markers(self, summary: Mapping[str, Any]) -> dict[str, int]:
        return dict(summary.get("tags", {}))

    def expected_name(self, first: str, last: str) -> str:
        return first  # FNAME=first_name

    def person(self, email: str) -> Person | None:
        digest = hashlib.md5(email.encode(), usedforsecurity=False).hexdigest()
        url = f"{self.connection['api_base_url']}/lists/{self.options['audience_id']}/members/{digest}"
        member = self._get(url, _basic("bench", self.connection["api_key"]))
        if member is None:
            return None
        return Person(member["merge_fields"].get("FNAME", ""), frozenset(t["name"] for t in member.get("tags", [])))

    def is_batch_call(self, method: str, path: str) -> bool:
        audience = f"/3.0/lists/{self.options['audience_id']}"
        if path.startswith(("/3.0/batches", "/batch-results/")):  # a /batches job: submit, polls, results
            return True
        if method == "POST":  # batch subscribe, or a tag's members added/removed
            return path == audience or (path.startswith(audience + "/segments/") and path.count("/") == 5)
        return method in ("PUT", "DELETE") and path.startswith(audience + "/members/")  # update, archive


class CampaignMonitorProbe(Probe):
    def people(self, summary: Mapping[str, Any]) -> int:
        return sum(summary.get("subscribers", {}).values())

    def markers(self, summary: Mapping[str, Any]) -> dict[str, int]:
        return dict(summary.get("segments field options", {}))

    def expected_name(self, first: str, last: str) -> str:
        return f"{first} {last}"  # Name=first_name+last_name

    def person(self, email: str) -> Person | None:
        url = f"{self.connection['api_base_url']}/subscribers/{self.options['list_id']}.json?email={quote(email)}"
        sub = self._get(url, _basic(self.connection["api_key"], "x"))
        if sub is None:
            return None
        found = frozenset(str(f["Value"]) for f in sub.get("CustomFields", []) if f.get("Key") == "Segments")
        return Person(str(sub.get("Name", "")), found)

    def is_batch_call(self, method: str, path: str) -> bool:
        return method == "POST" and path.endswith("/import.json")


PROBES: dict[str, Callable[[Any], Probe]] = {"mailchimp": MailchimpProbe, "campaignmonitor": CampaignMonitorProbe}


# -- results -----------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table."""

    plugin: str
    latency_ms: int | None
    step: str
    profiles: int
    wall_s: float
    cpu_s: float
    maxrss_kb: int
    sent: int | None = None
    calls: int | None = None
    plan_calls: int | None = None
    retries: int | None = None
    concurrency: int | None = None
    peak_in_flight: int | None = None
    bound_s: float | None = None
    ok: bool | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.profiles / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def share(self) -> float | None:
        if not self.bound_s or self.wall_s <= 0:
            return None
        return self.bound_s / self.wall_s

    def cells(self) -> list[str]:
        def num(value: int | None) -> str:
            return "—" if value is None else f"{value:,}"

        share = self.share
        return [
            self.plugin,
            "—" if self.latency_ms is None else f"{self.latency_ms} ms",
            self.step,
            f"{self.profiles:,}",
            num(self.sent),
            num(self.calls),
            num(self.plan_calls),
            num(self.retries),
            num(self.peak_in_flight) + ("" if self.concurrency is None else f"/{self.concurrency}"),
            f"{self.wall_s:.2f} s",
            f"{self.rate:,.0f}",
            "—" if self.bound_s is None else f"{self.bound_s:.2f} s",
            "—" if share is None else f"{share:.0%}",
            f"{self.maxrss_kb / 1024:.0f} MB",
            f"{self.cpu_s:.2f} s",
            {True: "✓", False: "✗", None: ""}[self.ok],
        ]


COLUMNS = ["plugin", "latency", "step", "profiles", "sent", "calls", "plan calls", "retries", "in flight",
           "wall", "profiles/s", "bound", "% of bound", "peak RSS", "CPU", "check"]  # fmt: skip


def text_table(rows: Sequence[Row]) -> str:
    return format_text(COLUMNS, [r.cells() for r in rows], left={0, 2})


def markdown_table(rows: Sequence[Row]) -> str:
    return format_markdown(COLUMNS, [r.cells() for r in rows], left={0, 2})


def format_text(columns: Sequence[str], lines: Sequence[Sequence[str]], left: set[int]) -> str:
    """An aligned plain-text table: columns in ``left`` flush left, the others flush right."""
    table = [list(columns), *(list(line) for line in lines)]
    widths = [max(len(line[c]) for line in table) for c in range(len(columns))]

    def fmt(line: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if c in left else cell.rjust(w) for c, (cell, w) in enumerate(zip(line, widths, strict=True))
        )

    return "\n".join([fmt(table[0]), fmt(["-" * w for w in widths]), *(fmt(line) for line in table[1:])])


def format_markdown(columns: Sequence[str], lines: Sequence[Sequence[str]], left: set[int]) -> str:
    """A Markdown table: columns in ``left`` aligned left, the others right."""
    align = ["---" if c in left else "---:" for c in range(len(columns))]
    return "\n".join("| " + " | ".join(line) + " |" for line in [list(columns), align, *lines])


def problems_text(rows: Sequence[Row]) -> str:
    found = [f"✗ {r.plugin} {r.latency_ms} ms {r.step}: {p}" for r in rows for p in r.problems]
    return "\n".join(found)


def machine() -> list[tuple[str, str]]:
    def first_line(path: str, prefix: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    mem_kb = first_line("/proc/meminfo", "MemTotal").split()[0]
    try:
        version = metadata.version("segport")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return [
        ("CPUs (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU model", first_line("/proc/cpuinfo", "model name")),
        ("memory", f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else mem_kb),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("segport", version),
        ("command", shlex.join(sys.orig_argv)),
    ]


# -- the benchmark -----------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def prepare_base(data: Dataset, root: Path) -> tuple[Path, Row]:
    """A workspace with the profiles (load measured) and the three segments."""
    home, scratch = root / "base", root / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    cli = Cli(home, scratch)
    cli.run("init", "--admin", USER)
    profiles = root / "profiles.csv"
    log(f"writing {data.count:,} profiles to {profiles}")
    data.write_profiles(profiles)
    log("profiles load (measured)")
    load = cli.measure("profiles", "load", str(profiles), "--key", "id", "--json")
    row = Row("—", None, "profiles load", data.count, load.wall_s, load.cpu_s, load.maxrss_kb)
    loaded = load.record().get("loaded")
    row.ok = loaded == data.count
    if not row.ok:
        row.problems.append(f"loaded {loaded} of {data.count:,} (exit {load.exit}: {load.stderr.strip()[:200]})")
    for name, where in FILTERS.items():
        cli.run("segments", "define", name, "--where", where)
    newsletter = root / "newsletter.txt"
    data.write_newsletter(newsletter)
    cli.run("segments", "load", NEWSLETTER, str(newsletter))
    return home, row


class Leg:
    """One plugin at one latency: its own sandbox and a copy of the base workspace."""

    def __init__(self, plugin: str, latency_ms: int, data: Dataset, base: Path, root: Path, seed: int) -> None:
        from segport.registry import default_registry
        from segport.sandboxing import find_sandbox

        destination = default_registry().get(plugin)
        factory = find_sandbox(plugin)
        if factory is None:
            raise SystemExit(f"destination {plugin!r} ships no sandbox")
        sandbox = factory(latency_ms=latency_ms, seed=seed)
        self.plugin, self.latency_ms, self.data = plugin, latency_ms, data
        self.limits = destination.spec().limits
        self.sandbox: Any = sandbox
        self.root = root / f"{plugin}-{latency_ms}ms"
        shutil.copytree(base, self.root / "workspace")
        (self.root / "scratch").mkdir()
        self.cli = Cli(self.root / "workspace", self.root / "scratch")
        self.probe: Probe | None = None

    def run(self) -> list[Row]:
        self.sandbox.start()
        try:
            self.probe = PROBES[self.plugin](self.sandbox)
            self._setup_export()
            rows = [self._dry_run("dry-run (full)")]
            rows.append(self._export("full", rows[-1].plan_calls))
            self._change_one_percent()
            rows.append(self._dry_run("dry-run (delta)"))
            rows.append(self._export("delta", rows[-1].plan_calls))
            return rows
        finally:
            self.sandbox.stop()
            self.data.reset_delta()

    def _setup_export(self) -> None:
        assert self.probe is not None
        self.cli.run(
            "connections", "add", CONNECTION, "--type", self.plugin, "--agree-privacy",
            "--config", json.dumps(self.probe.connection),
        )  # fmt: skip
        args = ["exports", "add", EXPORT, "--connection", CONNECTION, "--email", "email"]
        for name in SEGMENTS:
            args += ["--segment", name]
        for dest, source in self.sandbox.demo_mapping().items():
            args += ["--map", f"{dest}={source}"]
        for key, value in self.probe.options.items():
            args += ["--option", f"{key}={json.dumps(value)}"]
        self.cli.run(*args)

    def _row(self, step: str, measured: Measured, profiles: int) -> Row:
        return Row(self.plugin, self.latency_ms, step, profiles, measured.wall_s, measured.cpu_s, measured.maxrss_kb)

    def _dry_run(self, step: str) -> Row:
        log(f"{self.plugin} @ {self.latency_ms} ms: {step}")
        measured = self.cli.measure("exports", "run", EXPORT, "--dry-run", "--json")
        plan = measured.record().get("plan") or {}
        row = self._row(step, measured, int(plan.get("selected", 0)))
        row.plan_calls = plan.get("requests")
        row.problems += self._check_plan(plan, delta=self.data.delta_applied)
        if measured.exit != 0:
            row.problems.append(f"exit {measured.exit}: {measured.stderr.strip()[:200]}")
        row.ok = not row.problems
        return row

    def _check_plan(self, plan: Mapping[str, Any], *, delta: bool) -> list[str]:
        data, found = self.data, []
        expect = {"selected": data.count, "rejects": data.rejects, "duplicates": 0}
        if delta:
            expect["upserts"] = sum(1 for i in data.to_rename if data.valid(i))
            expect["new"] = 0
            toggles = sum(1 for i in data.to_toggle if data.valid(i))
            if plan.get("marker_adds", 0) + plan.get("marker_removes", 0) != toggles:
                found.append(f"plan marker changes {plan.get('marker_adds')}+{plan.get('marker_removes')} != {toggles}")
        else:
            expect["new"] = expect["upserts"] = data.count - data.rejects
        found += [f"plan {k} {plan.get(k)} != {v}" for k, v in expect.items() if plan.get(k) != v]
        return found

    def _export(self, step: str, plan_calls: int | None) -> Row:
        assert self.probe is not None
        log(f"{self.plugin} @ {self.latency_ms} ms: {step} export")
        before = len(self.sandbox.requests_log)
        self.sandbox.max_in_flight = 0
        measured = self.cli.measure("exports", "run", EXPORT, "--json")
        record = measured.record()
        counts, plan = record.get("counts") or {}, record.get("plan") or {}
        row = self._row(step, measured, int(plan.get("selected", 0)))
        seen = self.sandbox.requests_log[before:]  # (method, path) of every API call the sandbox answered
        row.calls = len(seen)
        batch_calls = sum(1 for method, path in seen if self.probe.is_batch_call(method, path))
        row.plan_calls, row.retries = plan_calls, record.get("retries")
        row.concurrency, row.peak_in_flight = self.limits.max_concurrency, self.sandbox.max_in_flight
        skipped = int(plan.get("rejects", 0)) + int(plan.get("duplicates", 0)) + int(counts.get("unchanged", 0))
        row.sent = sum(int(v) for v in counts.values()) - skipped
        if plan_calls is not None and self.latency_ms > 0:
            row.bound_s = plan_calls / self.limits.max_concurrency * self.latency_ms / 1000
        if measured.exit != 0 or record.get("status") != "succeeded":
            row.problems.append(f"exit {measured.exit}, status {record.get('status')}: {measured.stderr.strip()[:200]}")
        if counts.get("failed"):
            row.problems.append(f"{counts['failed']} records failed")
        if counts.get("rejected") != self.data.rejects:
            row.problems.append(f"{counts.get('rejected')} rejected, expected {self.data.rejects} (invalid emails)")
        if record.get("requests") != row.calls:
            row.problems.append(f"run record says {record.get('requests')} requests, the sandbox saw {row.calls}")
        if plan_calls is not None and batch_calls < plan_calls:
            row.problems.append(f"the dry run planned at least {plan_calls} batch calls, the run made {batch_calls}")
        row.problems += self._check_sandbox()
        row.ok = not row.problems
        return row

    def _change_one_percent(self) -> None:
        """Half of the 1 %: a new first name; the other half: in or out of the static segment."""
        log(f"{self.plugin} @ {self.latency_ms} ms: changing 1 % of the profiles")
        data = self.data
        data.apply_delta()
        changes, newsletter = self.root / "changes.csv", self.root / "newsletter.txt"
        data.write_profiles(changes, iter(data.to_rename))
        data.write_newsletter(newsletter)
        self.cli.run("profiles", "load", str(changes), "--key", "id")
        self.cli.run("segments", "load", NEWSLETTER, str(newsletter))

    def _check_sandbox(self) -> list[str]:
        """Compare what landed with what the generated data says must be there."""
        assert self.probe is not None
        data, probe, found = self.data, self.probe, []
        summary = self.sandbox.summary()
        people, expected_people = probe.people(summary), data.count - data.rejects
        if people != expected_people:
            found.append(f"{people:,} people on the list, expected {expected_people:,}")
        markers, expected = probe.markers(summary), data.expected_markers()
        found += [
            f"marker {k}: {markers.get(k)} people, expected {v}" for k, v in expected.items() if markers.get(k) != v
        ]
        self.sandbox.set_faults(latency_ms=0)  # the checks below are no part of the measurement
        try:
            found += self._check_sample(probe)
        finally:
            self.sandbox.set_faults(latency_ms=self.latency_ms)
        return found

    def _check_sample(self, probe: Probe) -> list[str]:
        data = self.data
        rng = random.Random(data.count)
        chosen = (
            data.to_rename[:SAMPLE] + data.to_toggle[:SAMPLE] + rng.sample(range(data.count), min(SAMPLE, data.count))
        )
        found = []
        for i in chosen:
            person = probe.person(data.email(i))
            if not data.valid(i):
                if person is not None:
                    found.append(f"{data.key(i)} has an invalid email but is on the list")
                continue
            want = Person(probe.expected_name(data.first_name(i), data.last_name(i)), data.segments(i))
            if person != want:
                found.append(f"{data.key(i)}: found {person}, expected {want}")
        return found[:5]


# -- entry point -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/harness.py", description="Benchmark full and delta exports against the sandboxes."
    )
    parser.add_argument("--profiles", type=int, default=1_000_000, help="profiles to generate (default 1,000,000)")
    parser.add_argument(
        "--latency-ms",
        action="append",
        default=None,
        metavar="MS[,MS...]",
        help="per-call sandbox latency; repeatable or comma-separated (default 1000)",
    )
    parser.add_argument("--plugins", default="mailchimp,campaignmonitor", help="comma-separated destinations")
    parser.add_argument("--workdir", type=Path, default=None, help="where to work (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (a --workdir is always kept)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown for benchmarks/RESULTS.md")
    parser.add_argument("--seed", type=int, default=7, help="data and sandbox seed (default 7)")
    args = parser.parse_args(argv)
    args.latencies = [int(v) for item in (args.latency_ms or ["1000"]) for v in item.split(",") if v.strip()]
    args.plugin_names = [p.strip() for p in args.plugins.split(",") if p.strip()]
    unknown = [p for p in args.plugin_names if p not in PROBES]
    if unknown:
        parser.error(f"no sandbox checks for {', '.join(unknown)} (known: {', '.join(PROBES)})")
    if args.profiles < 1000:
        parser.error("--profiles must be at least 1000")
    if any(v < 0 for v in args.latencies):
        parser.error("--latency-ms must not be negative")
    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir {args.workdir} is not empty: give a new or empty folder")
    return args


def report(rows: Sequence[Row], args: argparse.Namespace, started: float) -> None:
    problems = problems_text(rows)
    if args.markdown:
        print("\n".join(f"- **{k}**: `{v}`" if k == "command" else f"- **{k}**: {v}" for k, v in machine()))
        print(f"- **harness wall time**: {time.monotonic() - started:.0f} s\n")
        print(markdown_table(rows))
        if problems:
            print("\n```\n" + problems + "\n```")
    else:
        print(text_table(rows))
        if problems:
            print("\n" + problems)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="segport-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    log(f"working in {root}")
    rows: list[Row] = []
    try:
        log(f"generating {args.profiles:,} profiles")
        data = Dataset(args.profiles, args.seed)
        base, load_row = prepare_base(data, root)
        rows.append(load_row)
        for plugin in args.plugin_names:
            for latency in args.latencies:
                rows += Leg(plugin, latency, data, base, root, args.seed).run()
        (root / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root} (results.json holds every number)")
    report(rows, args, started)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
