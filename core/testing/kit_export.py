"""One export of kit people, as the resilience checks run it (standard library and segport only).

:class:`KitExport` builds a workspace of :func:`kit_people` with a connection to the double and an export
of the kit's two segments, then runs it in this process, every ``write_batch`` watched by a
:class:`WriteWatch`, or in a child process (:mod:`segport.testing.killed_run`) that kills itself with
SIGKILL, or stalls, at a chosen point. What landed is read from the double, never from segport's records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import requests

from ..contract import BatchResult, BatchWriter, Destination, DestinationSpec, Record, RunContext
from ..models import Run
from ..pipeline.dispatcher import RetryPolicy
from ..plugins import make_manager
from ..registry import Registry
from ..store.interface import OutcomeRow
from ..workspace import Workspace
from .double import FaultControl, PlatformDouble
from .files import write_keys, write_rows

__all__ = ["KIT_RETRY", "ChildRun", "KitExport", "KitPerson", "WriteWatch", "kit_people", "settle", "watched"]

# Retries as the engine makes them, only faster: Retry-After (capped at 5 * cap) is still a floor.
KIT_RETRY = RetryPolicy(attempts=8, base=0.05, cap=1.0)
EXPORT = "kit-resilience"
USER = "ada"


@dataclass(frozen=True)
class KitPerson:
    """One profile of a kit export and what the platform must hold for it: fields and markers."""

    key: str
    email: str
    fields: Mapping[str, str]
    markers: frozenset[str]


def kit_people(count: int, fields: Mapping[str, str], segments: tuple[str, str], *, tag: str = "r") -> list[KitPerson]:
    """Return ``count`` people ``kit.<tag><i>@segport-test.net`` spread over the two ``segments``.

    Even ones are in the first segment, odd ones in the second, every third one in the second as well;
    their fields are the sample fields numbered ``i``.
    """
    alpha, beta = segments
    people = []
    for i in range(count):
        markers = {alpha if i % 2 == 0 else beta} | ({beta} if i % 3 == 0 else set())
        values = {name: f"{value} {i}" for name, value in fields.items()}
        people.append(KitPerson(f"{tag}{i:05d}", f"kit.{tag}{i}@segport-test.net", values, frozenset(markers)))
    return people


Listener = Callable[[str, int, list[str]], None]


class WriteWatch:
    """Counts the records each ``write_batch`` carries and those it reports delivered; can act once.

    With ``act_at`` set, write number ``act_at`` waits until the writes before it are answered, runs
    ``action`` (e.g. revoke the credentials), then goes on; later writes wait for the action. A
    ``listener`` hears ``("send", n, keys)`` before write ``n`` and ``("answer", k, delivered keys)``
    when the ``k``-th write is answered.
    """

    def __init__(self, listener: Listener | None = None) -> None:
        self.sent: Counter[str] = Counter()
        self.delivered: set[str] = set()
        self.calls = 0
        self.answered = 0
        self.act_at = 0
        self.action: Callable[[], None] = lambda: None
        self.listener = listener
        self._acted = False
        self._cond = threading.Condition()

    def around(self, write: Callable[[Sequence[Record]], BatchResult], records: Sequence[Record]) -> BatchResult:
        """Call ``write(records)``, counting and acting as set."""
        keys = [r.key for r in records]
        with self._cond:
            self.calls += 1
            number = self.calls
            self.sent.update(keys)
            if self.act_at and number == self.act_at:
                self._cond.wait_for(lambda: self.answered >= number - 1, timeout=120)
                self.action()
                self._acted = True
                self._cond.notify_all()
            elif self.act_at and number > self.act_at:
                self._cond.wait_for(lambda: self._acted, timeout=120)
        if self.listener is not None:
            self.listener("send", number, keys)
        result: BatchResult | None = None
        try:
            result = write(records)
            return result
        finally:
            delivered = [o.key for o in result.outcomes if o.status.delivered] if result is not None else []
            with self._cond:
                self.answered += 1
                answer = self.answered
                self.delivered.update(delivered)
                self._cond.notify_all()
            if self.listener is not None:
                self.listener("answer", answer, delivered)


def watched(
    destination: type[Destination], watch: Callable[[], WriteWatch], batch_size: int | None = None
) -> type[Destination]:
    """Return ``destination`` subclassed so that every writer's ``write_batch`` goes through ``watch()``.

    The watch is the one current when the writer is made; with ``batch_size``, batches are smaller than
    the spec allows.
    """

    def spec(self: Destination) -> DestinationSpec:
        found = destination.spec(self)
        if batch_size is None or batch_size >= found.limits.batch_size:
            return found
        return dataclasses.replace(found, limits=dataclasses.replace(found.limits, batch_size=batch_size))

    def writer(
        self: Destination, session: requests.Session, config: Mapping[str, Any], context: RunContext
    ) -> BatchWriter:
        made = destination.writer(self, session, config, context)
        write, current = made.write_batch, watch()
        setattr(made, "write_batch", lambda records: current.around(write, records))  # noqa: B010 - a method
        return made

    subclass = type(destination.__name__, (destination,), {"spec": spec, "writer": writer})
    subclass.__module__, subclass.__qualname__ = destination.__module__, destination.__qualname__
    return subclass


@dataclass
class ChildRun:
    """What a child run did before it died: its exit code and the events it wrote, in order."""

    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    def sent(self) -> Counter[str]:
        """How many times each record was handed to ``write_batch``."""
        return Counter(key for e in self.events if e["event"] == "send" for key in e["keys"])

    def delivered(self) -> set[str]:
        """Return the records a ``write_batch`` that returned reported delivered."""
        return {key for e in self.events if e["event"] == "answer" for key in e["keys"]}

    def writes(self) -> int:
        """How many ``write_batch`` calls started."""
        return sum(e["event"] == "send" for e in self.events)


@dataclass
class KitExport:
    """A workspace in ``home`` exporting ``people`` to the double, through ``destination`` watched.

    :param config: connection settings over the double's own (e.g. a shorter read timeout).
    :param batch_size: records per batch when smaller than the destination's own.
    """

    destination: Destination
    platform: PlatformDouble
    home: Path
    people: list[KitPerson]
    segments: tuple[str, str]
    config: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    watch: WriteWatch = field(default_factory=WriteWatch)
    exports: int = 0

    def __post_init__(self) -> None:
        self.plugin = watched(type(self.destination), lambda: self.watch, self.batch_size)
        self.mapping = {name: f"attr_{i}" for i, name in enumerate(self.people[0].fields)}
        registry = Registry.from_plugins([self.plugin])
        self.ws = Workspace.create(self.home, USER, registry=registry, pm=make_manager(autoload=False), retry=KIT_RETRY)
        self.load(self.people)
        for name in self.segments:
            keys = write_keys(self.home / f"{name}.keys", [p.key for p in self.people if name in p.markers])
            self.ws.load_segment(name, keys)
        config = {**self.platform.connection(), **self.config}
        self.ws.add_connection("kit", self.destination.name, config, agree_privacy=True)
        self.name = self.add_export()

    def load(self, people: Iterable[KitPerson]) -> None:
        """Load (or reload, e.g. with changed fields) these people's profiles."""
        rows = ([p.key, p.email, *(p.fields[f] for f in self.mapping)] for p in people)
        self.ws.load_profiles(write_rows(self.home / "profiles.csv", ["id", "email", *self.mapping.values()], rows))

    def add_export(self) -> str:
        """Add a new export of the kit's segments (its sync state empty: it sends everyone); return its name."""
        self.exports += 1
        name = f"{EXPORT}-{self.exports}"
        options = self.platform.export_options()
        self.ws.add_export(
            name,
            connection="kit",
            segments=list(self.segments),
            email_field="email",
            mapping=self.mapping,
            options=options,
        )
        return name

    def close(self) -> None:
        """Close the workspace."""
        self.ws.close()

    @property
    def batch(self) -> int:
        """Records per batch of this export."""
        own = self.destination.spec().limits.batch_size
        return min(own, self.batch_size or own)

    def run(self, watch: WriteWatch | None = None) -> Run:
        """Run the export here with a fresh (or the given) watch; a failed run raises its error."""
        self.watch = watch or WriteWatch()
        return self.ws.run_export(self.name)

    def last_run(self) -> Run:
        """Return the export's latest run record."""
        return self.ws.list_runs(self.name, limit=1)[0]

    def outcomes(self, run: Run) -> list[OutcomeRow]:
        """Return the run's outcome rows (key, email, status, reason), by key."""
        return self.ws.store.outcomes(run.id)

    def run_in_child(self, point: str, *, kill_when: Callable[[ChildRun], bool] | None = None) -> ChildRun:
        """Run the export in a child process that dies at ``point``; return what it did.

        The child SIGKILLs itself at ``point`` (``answer:N``: when the Nth write is answered; ``commit:N``:
        once the Nth batch is committed) or, with ``stall:N``, stops committing after the Nth batch and is
        killed from here once ``kill_when(what it did so far)`` holds and it wrote no event for a second.
        """
        journal = self.home / f"child-{point.replace(':', '-')}.jsonl"
        err = self.home / "child.stderr"
        cls = type(self.destination)
        args = [str(self.home), self.name, f"{cls.__module__}:{cls.__qualname__}", str(journal), point]
        args.append(str(self.batch_size or 0))
        with err.open("wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-m", "segport.testing.killed_run", *args], stdout=subprocess.DEVNULL, stderr=stderr
            )
            try:
                if kill_when is not None:
                    _wait_quiet(journal, kill_when, child)
                    child.kill()
                child.wait(timeout=300)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        return ChildRun(child.returncode, _events(journal), err.read_text(encoding="utf-8", errors="replace"))


def settle(platform: PlatformDouble, timeout: float = 60.0) -> None:
    """Wait until the double has nothing in flight and received no call for half a second.

    A killed client's calls may still land, some read from their socket only after the kill.
    """
    control: FaultControl | None = platform.fault_control()
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        idle = control.wait_idle(max(0.0, deadline - time.monotonic())) if control else True
        now = len(control.requests_log) if control else len(platform.members())
        if idle and now == seen:
            return
        seen = now
        time.sleep(0.5)
    raise AssertionError(f"the double still answers calls {timeout:g} s after the client died")


def _events(journal: Path) -> list[dict[str, Any]]:
    """Return the child's events; a line cut by the kill is left out."""
    if not journal.exists():
        return []
    events = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _wait_quiet(journal: Path, ready: Callable[[ChildRun], bool], child: subprocess.Popen[bytes]) -> None:
    """Until ``ready`` holds for the child's events and none came for a second (at most 60 s)."""
    deadline = time.monotonic() + 60
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline and child.poll() is None:
        events = _events(journal)
        if len(events) != last:
            last, since = len(events), time.monotonic()
        elif ready(ChildRun(0, events, "")) and time.monotonic() - since >= 1.0:
            return
        time.sleep(0.05)


def journal_writer(path: str | os.PathLike[str]) -> Callable[[dict[str, Any]], None]:
    """Append one JSON line per event with a single write, so a SIGKILL leaves whole lines."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(event: dict[str, Any]) -> None:
        os.write(fd, (json.dumps(event) + "\n").encode("utf-8"))

    return write
