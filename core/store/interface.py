"""What the rest of segport may ask of the store: typed protocols and the rows they return.

:class:`Store` is the workspace's persistent state; :class:`Snapshot` is one run's consistent view
of it, with the run's scratch space (the selection, the addresses taken, the exits) as temporary
tables of its own connection. Both backends (:mod:`segport.store.sqlite`,
:mod:`segport.store.postgres`) implement them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Protocol, Sequence

from ..models import AuditEntry, Connection, Export, Role, Run, RunStatus, Segment, Share, User


class StateRow(NamedTuple):
    """What the destination acknowledged for one profile (a row of sync state)."""

    key: str
    email: str
    digest: bytes  # the record hash
    markers: str  # JSON list of segment names
    seq: int | None  # the profile version delivered (``profiles.seq``); None for an exit
    mapping: int  # fingerprint of the data matching it was sent with


class OutcomeRow(NamedTuple):
    """What happened to one profile in a run."""

    key: str
    email: str
    status: str
    reason: str | None


class Delivered(NamedTuple):
    """What was last delivered for a profile: its address, record hash and markers (JSON)."""

    key: str
    email: str
    digest: bytes
    markers: str


class StoredProfile(NamedTuple):
    """A profile as stored: its attributes (JSON) and version (the load that last changed it)."""

    key: str
    attrs: str
    seq: int


class Candidate(NamedTuple):
    """A selected profile whose delivered state may be out of date, with that state (None: never sent)."""

    key: str
    segs: int  # bitmask of the export's segments it is in
    attrs: str  # the profile, JSON
    seq: int
    email: str | None
    digest: bytes | None
    markers: str | None


class Holder(NamedTuple):
    """An unchanged selected profile delivered with an address, and the segments it is in."""

    key: str
    email: str
    digest: bytes
    markers: str
    segs: int

    @property
    def delivered(self) -> Delivered:
        return Delivered(self.key, self.email, self.digest, self.markers)


class ProfileRow(Protocol):
    """A profile as a loader reads it: its line in the file, key and attributes."""

    @property
    def line(self) -> int: ...

    @property
    def key(self) -> str: ...

    @property
    def attrs(self) -> dict[str, Any]: ...


class Loaded(NamedTuple):
    """The result of a profile load."""

    rows: int  # rows loaded
    profiles: int  # profiles in the workspace after the load
    seq: int  # this load's sequence number


class FilterCache(Protocol):
    """The store's filter-segment membership cache, as :mod:`segport.pipeline.selection` keeps it current."""

    def last_load(self) -> int:
        """The sequence number of the last profile load (0 before the first)."""

    def cached_seq(self, segment_id: int) -> int | None:
        """The load up to which the segment's cached membership is current (None: no cache)."""

    def changed_profiles(self, since: int | None) -> Iterator[StoredProfile]:
        """The profiles loaded after ``since`` (all of them when None)."""

    def clear_filter_cache(self, segment_id: int) -> None: ...

    def update_filter_cache(self, hits: Sequence[tuple[int, str]], misses: Sequence[tuple[int, str]]) -> None:
        """Add (segment id, profile key) ``hits`` to the cache, remove ``misses``."""

    def set_cached_seq(self, segment_ids: Iterable[int], seq: int) -> None: ...


class Snapshot(FilterCache, Protocol):
    """One run's view of the workspace: every read sees the same snapshot; its scratch space is its own.

    Close it when done (nothing it wrote outlives it).
    """

    # -- the selection ------------------------------------------------------------------------------
    def clear_selection(self) -> None: ...

    def select_static(self, segment_id: int, bit: int) -> None:
        """Add a static segment's members (those with a profile) under ``bit``."""

    def select_cached(self, segment_id: int, bit: int, upto: int) -> None:
        """Add a filter segment's cached members loaded up to ``upto`` under ``bit``."""

    def select_profiles(self, profiles: Sequence[StoredProfile], bit: int) -> None:
        """Add profiles under ``bit``."""

    def selected(self) -> int:
        """How many profiles the selection holds."""

    # -- the planner's scratch space ------------------------------------------------------------------
    def start_plan(self, markers: Callable[[int], str]) -> None:
        """Empty the planner's scratch space; record the markers (JSON) of each bitmask in the selection.

        Call it, once the selection is materialised, before the methods below.
        """

    def candidates(self, export_id: int, mapping: int, *, every: bool) -> Iterator[Candidate]:
        """Selected profiles whose delivered state may be out of date (``every``: all), in key order."""

    def has_sync_state(self, export_id: int) -> bool: ...

    def steady_holders(self, export_id: int, mapping: int, email: str) -> list[Holder]:
        """The selected, unchanged profiles delivered with ``email``, in key order."""

    def hold(self, email: str, segs: int) -> bool:
        """Take ``email`` for this run; False when a profile took it already."""

    def holder_segments(self, email: str) -> int | None:
        """The segment bitmask of the profile that took ``email`` in this run, if one did."""

    def spill_exits(self, rows: Sequence[Delivered]) -> None:
        """Keep exits (in order) until the selection is planned."""

    def exits(self) -> Iterator[Delivered]:
        """The exits kept, in the order they were spilled."""

    def left_selection(self, export_id: int) -> Iterator[Delivered]:
        """Profiles delivered with markers that are no longer selected, in key order."""

    def close(self) -> None: ...


class Store(FilterCache, Protocol):
    """All persistent state of a workspace. Methods take and return :mod:`segport.models` objects."""

    url: str  # where the store is, without a password (for messages and workers)

    # -- lifecycle and transactions -----------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema up to date (a workspace of an earlier release is upgraded in place)."""

    def schema_version(self) -> int:
        """How many schema revisions the database holds (0: an empty database)."""

    def close(self) -> None: ...

    def transaction(self) -> AbstractContextManager[Store]:
        """One write transaction: committed on success, rolled back on any exception."""

    def reader(self) -> Snapshot:
        """A snapshot of the workspace on its own connection, for a run's long reads (the caller closes it)."""

    # -- settings, audit, users -----------------------------------------------------------------------
    def get_setting(self, key: str) -> str | None: ...

    def set_setting(self, key: str, value: str | None) -> None: ...

    def audit(self, user: str, action: str, target: str, detail: dict[str, Any] | None = None) -> None: ...

    def audit_entries(self, limit: int = 100) -> list[AuditEntry]: ...

    def add_user(self, name: str, role: Role) -> User: ...

    def get_user(self, name: str) -> User: ...

    def list_users(self) -> list[User]: ...

    def remove_user(self, name: str) -> None: ...

    # -- connections ----------------------------------------------------------------------------------
    def add_connection(
        self,
        *,
        name: str,
        type: str,
        share: Share,
        config: dict[str, Any],
        secrets: bytes | None,
        profile_cap: int | None,
        user: str,
    ) -> Connection: ...

    def get_connection(self, name: str) -> Connection: ...

    def get_connection_by_id(self, connection_id: int) -> Connection: ...

    def list_connections(self) -> list[Connection]: ...

    def connection_secrets(self, connection_id: int) -> bytes | None: ...

    def update_connection_config(self, connection_id: int, config: dict[str, Any], secrets: bytes | None) -> None: ...

    def set_profile_cap(self, connection_id: int, cap: int | None) -> None: ...

    def remove_connection(self, connection_id: int) -> int:
        """Erase the connection (secrets included); its exports are detached and disabled. Returns their count."""

    # -- profiles and segments ------------------------------------------------------------------------
    def load_profiles(
        self,
        rows: Iterable[ProfileRow],
        *,
        replace: bool,
        source: str,
        on_chunk: Callable[[list[Any]], None] | None = None,
    ) -> Loaded:
        """Upsert profile rows; all-or-nothing (call it inside a transaction).

        Rows whose attributes change get this load's sequence number; identical rows keep theirs.
        ``replace`` also deletes the profiles the rows do not hold. ``on_chunk`` sees every chunk of
        rows once stored.
        """

    def get_profile(self, key: str) -> dict[str, Any]: ...

    def find_segment(self, name: str) -> Segment | None: ...

    def get_segment(self, name: str) -> Segment: ...

    def list_segments(self) -> list[Segment]: ...

    def save_segment(self, name: str, kind: str, expression: str | None, user: str) -> Segment: ...

    def replace_members(self, segment_id: int, keys: Iterable[str]) -> tuple[int, int]:
        """Replace a static segment's members; returns (members, keys matching no profile)."""

    def remove_segment(self, segment_id: int) -> None: ...

    def refresh_filter_caches(self, segments: Sequence[Segment]) -> None:
        """Bring stale filter-segment caches up to date; no write transaction when none is stale."""

    # -- exports and sync state ---------------------------------------------------------------------
    def add_export(self, export: Export) -> Export: ...

    def update_export(self, export: Export) -> Export: ...

    def get_export(self, name: str) -> Export: ...

    def list_exports(self) -> list[Export]: ...

    def remove_export(self, export_id: int) -> None: ...

    def reset_sync_state(self, export_id: int) -> None:
        """Forget what the export delivered: its next run sends everything."""

    def save_sync_state(self, export_id: int, rows: Sequence[StateRow]) -> None: ...

    # -- runs -------------------------------------------------------------------------------------------
    def start_run(self, export: Export, trigger: str, user: str, status: RunStatus = RunStatus.RUNNING) -> Run:
        """Record a new run; for a real run take the export's lock (stale locks are released)."""

    def run_ended(self, run_id: int) -> None:
        """This process is done with the run, whether or not its final record could be written."""

    def reap_stale_runs(self) -> None:
        """Mark runs whose process died as interrupted (their locks are released)."""

    def update_run(self, run: Run) -> None: ...

    def get_run(self, run_id: int) -> Run: ...

    def list_runs(self, export: str | None = None, limit: int = 50) -> list[Run]: ...

    def save_outcomes(self, run_id: int, rows: Sequence[OutcomeRow]) -> None: ...

    def outcomes(self, run_id: int, status: str | None = None) -> list[OutcomeRow]: ...
