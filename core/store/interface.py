"""What the rest of segport may ask of the store: typed protocols and the rows they return.

:class:`Store` is the workspace's persistent state; :class:`Snapshot` is one run's consistent view
of it, with the run's scratch space (the selection, the addresses taken, the exits) as temporary
tables of its own connection. Both backends (:mod:`segport.store.sqlite`,
:mod:`segport.store.postgres`) implement them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence

from ..models import AuditEntry, Connection, Export, ExportSummary, Page, Role, Run, RunStatus, Segment, Share, User
from .credentials import Credentials


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


RejectKey = tuple[str, str, str, "str | None"]
"""One reject line as a person's: profile key, address, status, reason."""


class RejectRow(NamedTuple):
    """One reject of a run, as ``segport runs rejects`` shows it."""

    key: str
    email: str
    status: str  # rejected, failed or skipped
    reason: str | None
    reported_in: int  # the run whose reject file holds the line: this run, or an earlier one
    reporter_kept: bool  # whether that run is still in the history (False: pruned, its file with it)


class Pruned(NamedTuple):
    """What a prune of the run history removed (or, in a dry run, would remove)."""

    run_ids: list[int]
    outcomes: int


# The record hash a sync state row holds once its record failed for good: it matches no record,
# so the next run sends the profile again in full (fields and every marker), whatever mode it uses.
RESEND_DIGEST = b""


class Delivered(NamedTuple):
    """What was last delivered for a profile: its address, record hash and markers (JSON)."""

    key: str
    email: str
    digest: bytes
    markers: str


class DeliveredProfile(NamedTuple):
    """A delivered profile not changed since: its record hash and current attributes."""

    key: str
    email: str
    digest: bytes
    attrs: dict[str, Any]


class DeliveredPerson(NamedTuple):
    """A row of an export's sync state with the current attributes of its profile (JSON; None: removed)."""

    key: str
    email: str
    digest: bytes
    markers: str
    seq: int | None
    mapping: int | None
    attrs: str | None


class LedgerEntry(NamedTuple):
    """What the sync ledger holds for one address of an audience."""

    email: str
    status: str  # the last status the platform reported ("archived" once archived)
    archived_from: str | None  # the status just before segport archived them itself (None: it did not)


class LedgerUpdate(NamedTuple):
    """One report for the sync ledger: a platform status, or an archive by segport."""

    email: str
    status: str | None  # the status the platform reported (with ``archived``: the one just before; None: unknown)
    archived: bool = False  # segport archived the person itself


class StoredProfile(NamedTuple):
    """A profile as stored: its attributes (JSON) and version (the load that last changed it)."""

    key: str
    attrs: str
    seq: int


Candidate = tuple[str, int, str, int, "str | None", "bytes | None", "str | None"]
"""A selected profile whose delivered state may be out of date, as the driver's row (no wrapper:
the planner unpacks a million of them): key, segment bitmask, attributes (JSON), profile version,
then the delivered email, record hash and markers (JSON), all None when never sent."""


class Holder(NamedTuple):
    """An unchanged selected profile delivered with an address, and the segments it is in."""

    key: str
    email: str
    digest: bytes
    markers: str
    segs: int

    @property
    def delivered(self) -> Delivered:
        """The profile's delivered state, without its segments."""
        return Delivered(self.key, self.email, self.digest, self.markers)


class ProfileRow(Protocol):
    """A profile as a loader reads it: its line in the file, key and attributes."""

    @property
    def line(self) -> int:
        """The row's line in the file."""

    @property
    def key(self) -> str:
        """The profile's key."""

    @property
    def attrs(self) -> dict[str, Any]:
        """The profile's attributes."""


class Loaded(NamedTuple):
    """The result of a profile load."""

    rows: int  # rows loaded
    profiles: int  # profiles in the workspace after the load
    seq: int  # this load's sequence number
    added: int = 0  # profiles the load created
    updated: int = 0  # existing profiles whose attributes it changed
    removed: int = 0  # profiles ``replace`` deleted


class FilterCache(Protocol):
    """The store's filter-segment membership cache, as :mod:`segport.pipeline.selection` keeps it current."""

    def last_load(self) -> int:
        """Return the sequence number of the last profile load (0 before the first)."""

    def cached_seq(self, segment_id: int) -> int | None:
        """Return the load up to which the segment's cached membership is current (None: no cache)."""

    def changed_profiles(self, since: int | None) -> Iterator[StoredProfile]:
        """Return the profiles loaded after ``since`` (all of them when None)."""

    def clear_filter_cache(self, segment_id: int) -> None:
        """Remove every cached member of the segment (before its cache is rebuilt)."""

    def update_filter_cache(self, hits: Sequence[tuple[int, str]], misses: Sequence[tuple[int, str]]) -> None:
        """Add (segment id, profile key) ``hits`` to the cache, remove ``misses``."""

    def set_cached_seq(self, segment_ids: Iterable[int], seq: int) -> None:
        """Mark the segments' cached membership current up to load ``seq``."""


class Snapshot(FilterCache, Protocol):
    """One run's view of the workspace: every read sees the same snapshot; its scratch space is its own.

    Close it when done (nothing it wrote outlives it).
    """

    # -- the selection ------------------------------------------------------------------------------
    def clear_selection(self) -> None:
        """Empty the selection."""

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
        """Return selected profiles whose delivered state may be out of date (``every``: all), in key order."""

    def has_sync_state(self, export_id: int) -> bool:
        """Return whether the export has any sync state (False: it never delivered, or was reset)."""

    def steady_holders(self, export_id: int, mapping: int, email: str) -> list[Holder]:
        """Return the selected, unchanged profiles delivered with ``email``, in key order."""

    def hold(self, email: str, segs: int) -> bool:
        """Take ``email`` for this run; False when a profile took it already."""

    def holder_segments(self, email: str) -> int | None:
        """Return the segment bitmask of the profile that took ``email`` in this run (None: none did)."""

    def spill_exits(self, rows: Sequence[Delivered]) -> None:
        """Keep exits (in order) until the selection is planned."""

    def exits(self) -> Iterator[Delivered]:
        """Return the exits kept, in the order they were spilled."""

    def left_selection(self, export_id: int) -> Iterator[Delivered]:
        """Profiles delivered with markers that are no longer selected, in key order."""

    def close(self) -> None:
        """End the snapshot and close its connection; its scratch space goes with it."""


class Store(FilterCache, Credentials, Protocol):
    """All persistent state of a workspace. Methods take and return :mod:`segport.models` objects."""

    url: str  # where the store is, without a password (for messages and workers)
    audit_client: str | None  # the client address every audit entry records (None: the local CLI)

    # -- lifecycle and transactions -----------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema up to date (a workspace of an earlier release is upgraded in place)."""

    def schema_version(self) -> int:
        """How many schema revisions the database holds (0: an empty database)."""

    def close(self) -> None:
        """Close the store's connection."""

    def transaction(self) -> AbstractContextManager[Store]:
        """One write transaction: committed on success, rolled back on any exception."""

    def reader(self) -> Snapshot:
        """Return a snapshot of the workspace on its own connection, for a run's long reads (the caller closes it)."""

    # -- settings, audit, users -----------------------------------------------------------------------
    def get_setting(self, key: str) -> str | None:
        """Return a workspace setting's value (None: not set)."""

    def set_setting(self, key: str, value: str | None) -> None:
        """Set a workspace setting (``value`` None: remove it)."""

    def take_setting(self, key: str) -> str | None:
        """Remove a workspace setting and return its value (None: not set); of concurrent takers, one gets it."""

    def settings_with_prefix(self, prefix: str) -> dict[str, str]:
        """Return the workspace settings whose key starts with ``prefix``: {key: value}."""

    def audit(
        self, user: str, action: str, target: str, detail: dict[str, Any] | None = None, *, client: str | None = None
    ) -> None:
        """Record ``user``'s ``action`` on ``target`` in the audit log, with ``detail`` (JSON-ready).

        ``client``: the client address (default :attr:`audit_client`).
        """

    def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        """Return the newest ``limit`` audit log entries, newest first."""

    def add_user(self, name: str, role: Role) -> User:
        """Add a user with ``role``; raise AlreadyExists if the name is taken."""

    def get_user(self, name: str) -> User:
        """Return the user named ``name``; raise NotFound if there is none."""

    def list_users(self) -> list[User]:
        """Return every user, by name."""

    def remove_user(self, name: str) -> None:
        """Delete the user with their API tokens, web sessions and invites.

        What they did (exports they own, runs, audit entries) stays as it was.
        """

    def set_user_role(self, name: str, role: Role) -> None:
        """Give the user ``role`` (an unknown name changes nothing)."""

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
    ) -> Connection:
        """Add a connection (``secrets`` already encrypted); ``user`` agrees to its privacy terms.

        Raise AlreadyExists if the name is taken.
        """

    def get_connection(self, name: str) -> Connection:
        """Return the connection named ``name``; raise NotFound if there is none."""

    def get_connection_by_id(self, connection_id: int) -> Connection:
        """Return the connection with id ``connection_id``; raise NotFound if there is none."""

    def list_connections(self) -> list[Connection]:
        """Return every connection, by name."""

    def connection_secrets(self, connection_id: int) -> bytes | None:
        """Return the connection's encrypted secrets (None: it has none)."""

    def update_connection_config(self, connection_id: int, config: dict[str, Any], secrets: bytes | None) -> None:
        """Replace the connection's configuration and encrypted secrets."""

    def update_connection(self, connection_id: int, *, name: str, share: Share) -> None:
        """Rename the connection and set its sharing; its exports follow the new name.

        Raise AlreadyExists if another connection has the name.
        """

    def checked_account(self, connection_id: int) -> str | None:
        """Return the account the credentials reached at their last successful check (None: never checked)."""

    def set_checked_account(self, connection_id: int, account: str) -> None:
        """Remember the account the connection's credentials reached at a successful check."""

    def set_profile_cap(self, connection_id: int, cap: int | None) -> None:
        """Set (None: clear) the most profiles the connection's exports may select."""

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

    def profile_count(self) -> int:
        """Return how many profiles the workspace holds."""

    def profile_key_column(self) -> str | None:
        """Return the column/field the workspace's profiles are keyed by (None: not recorded yet)."""

    def set_profile_key_column(self, column: str) -> None:
        """Record the column/field the workspace's profiles are keyed by."""

    def first_profiles(self, limit: int, offset: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """Return ``(key, attributes)`` of the profiles ``offset`` to ``offset + limit`` by key."""

    def stream_profiles(self) -> Iterator[tuple[str, str]]:
        """Return ``(key, attributes as JSON text)`` of every profile in key order, read as they come."""

    def existing_profile_keys(self, keys: Iterable[str]) -> list[str]:
        """Return which of ``keys`` have a profile (each once, sorted)."""

    def remove_profiles(self, keys: Iterable[str]) -> int:
        """Delete the profiles of ``keys`` with their segment memberships; return how many existed."""

    def has_attribute(self, name: str) -> bool:
        """Return whether some profile has the attribute ``name`` (stops at the first that does)."""

    def attribute_names(self) -> list[str]:
        """Return the attribute names of the first profiles by key (10,000), sorted (names to suggest)."""

    def get_profile(self, key: str) -> dict[str, Any]:
        """Return a profile's attributes; raise NotFound for an unknown key."""

    def find_segment(self, name: str) -> Segment | None:
        """Return the segment named ``name`` (None: there is none)."""

    def get_segment(self, name: str) -> Segment:
        """Return the segment named ``name``; raise NotFound if there is none."""

    def list_segments(self) -> list[Segment]:
        """Return every segment, by name."""

    def save_segment(self, name: str, kind: str, expression: str | None, user: str) -> Segment:
        """Create a segment, or change the expression of one of the same kind; return it as stored.

        A changed expression voids the segment's cached membership. Raise AlreadyExists if a
        segment of another kind has the name.
        """

    def replace_members(self, segment_id: int, keys: Iterable[str]) -> tuple[int, int]:
        """Replace a static segment's members; returns (members, keys matching no profile)."""

    def remove_segment(self, segment_id: int) -> None:
        """Delete the segment, with its members and cached membership."""

    def refresh_filter_caches(self, segments: Sequence[Segment]) -> None:
        """Bring stale filter-segment caches up to date; no write transaction when none is stale."""

    # -- exports and sync state ---------------------------------------------------------------------
    def add_export(self, export: Export) -> Export:
        """Add an export and return it as stored; raise AlreadyExists if the name is taken."""

    def update_export(self, export: Export) -> Export:
        """Save the export's editable fields (segments, email field, mapping, options, schedule, enabled)."""

    def move_export(self, export_id: int, connection_id: int, connection: str) -> None:
        """Attach the export to another connection (its sync state stays)."""

    def get_export(self, name: str) -> Export:
        """Return the export named ``name``; raise NotFound if there is none."""

    def list_exports(self) -> list[Export]:
        """Return every export, by name."""

    def remove_export(self, export_id: int) -> None:
        """Delete the export with its sync state (its runs stay)."""

    def reset_sync_state(self, export_id: int) -> None:
        """Forget what the export delivered: its next run sends everything."""

    def save_sync_state(self, export_id: int, rows: Sequence[StateRow]) -> None:
        """Record what the destination acknowledged (replacing what was recorded for those profiles)."""

    def delivered_profiles(self, export_id: int, after: str = "", limit: int = 5000) -> list[DeliveredProfile]:
        """Return, by key after ``after``, the delivered profiles of an export that were not changed since."""

    def rehash_sync_state(self, export_id: int, rows: Sequence[tuple[str, bytes]], mapping: int) -> None:
        """Set the record hash (``rows``: key, hash) and data matching fingerprint of delivered profiles."""

    def delivered_people(self, export_id: int) -> Iterator[DeliveredPerson]:
        """Yield each profile the export delivered, in key order, with its current attributes."""

    def set_verify_every(self, export_id: int, every: int | None) -> None:
        """Make every ``every``-th scheduled run of the export verify and repair first (None: never)."""

    def scheduled_plans(self, export_id: int, limit: int) -> list[dict[str, Any]]:
        """Return the plans of the export's newest ``limit`` scheduled runs, newest first ({} for none)."""

    # -- the sync ledger (per connection, audience and address) ---------------------------------------
    def ledger_entries(self, connection_id: int, audience: str, emails: Sequence[str]) -> dict[str, LedgerEntry]:
        """Return what the ledger holds for ``emails`` (absent addresses: never reported)."""

    def archived_by_segport(self, connection_id: int, audience: str) -> dict[str, str]:
        """Return address -> status before, for people segport archived itself and has not seen since."""

    def save_ledger(self, connection_id: int, audience: str, updates: Sequence[LedgerUpdate]) -> None:
        """Record what the platform reported (an archive by segport keeps the status just before)."""

    def copy_ledger(self, source_id: int, target_id: int, audience: str) -> int:
        """Copy the ledger of an audience from one connection to another, keeping what the target holds."""

    def forget_connection_state(self, connection_id: int) -> None:
        """Forget what the connection's exports delivered and its ledger: the next runs send everything."""

    def mark_resend(self, export_id: int, keys: Sequence[str]) -> None:
        """Mark the profiles' sync state (if any) so the export's next run sends them again in full."""

    # -- runs -------------------------------------------------------------------------------------------
    def start_run(self, export: Export, trigger: str, user: str, status: RunStatus = RunStatus.RUNNING) -> Run:
        """Record a new run; for a real run take the export's lock (stale locks are released)."""

    def run_ended(self, run_id: int) -> None:
        """Note that this process is done with the run, whether or not its final record could be written."""

    def reap_stale_runs(self) -> None:
        """Mark runs whose process died as interrupted (their locks are released)."""

    def heartbeat(self, run_id: int, every: float | None = None) -> AbstractContextManager[None]:
        """Beat the running run's heartbeat every ``every`` seconds while the block runs (its own connection)."""

    def update_run(self, run: Run) -> None:
        """Record the run's progress or end (once per committed batch)."""

    def get_run(self, run_id: int) -> Run:
        """Return the run with id ``run_id``; raise NotFound if there is none."""

    def list_runs(self, export: str | None = None, limit: int = 50) -> list[Run]:
        """Return the newest ``limit`` runs (of ``export`` only, when given), newest first."""

    def save_outcomes(
        self, run_id: int, rows: Sequence[OutcomeRow], reported_in: Mapping[str, int] | None = None
    ) -> None:
        """Record what happened to each profile of a batch of the run.

        ``reported_in``: profile key -> the earlier run whose reject file holds the reject's line.
        """

    def outcomes(self, run_id: int, status: str | None = None) -> list[OutcomeRow]:
        """Return the run's outcomes (only those with ``status``, when given), in profile key order."""

    # -- the reject lines and the history's upkeep ------------------------------------------------------
    def reported_rejects(self, export_id: int, keys: Sequence[str]) -> dict[RejectKey, int]:
        """Return the reject lines of ``keys`` the export's runs wrote: (key, email, status, reason) -> run id."""

    def save_reject_lines(self, export_id: int, run_id: int, rows: Sequence[OutcomeRow]) -> None:
        """Record the lines the run wrote to its reject file."""

    def run_rejects(self, run_id: int, limit: int | None = None) -> tuple[int, list[RejectRow]]:
        """Return how many rejects the run has, and the first ``limit`` (all when None) in profile key order."""

    def prune_runs(self, before: str, *, dry_run: bool = False) -> Pruned:
        """Delete the runs started before ``before`` (ISO 8601, UTC) with their outcomes and reject lines.

        A running run is never deleted; nor is anything else (sync state, ledger, exports).
        """

    # -- pages of the lists (each with the total it was cut from) ----------------------------------------
    def export_page(
        self,
        *,
        limit: int,
        offset: int = 0,
        connection: str | None = None,
        enabled: bool | None = None,
        search: str | None = None,
        shared_only: bool = False,
    ) -> Page[ExportSummary]:
        """Return exports by name with their last run (dry runs aside), in one query for the page.

        ``connection``: attached to the connection of that name; ``search``: the name holds it (any
        case); ``shared_only``: attached to a connection shared with contributors.
        """

    def run_page(
        self,
        *,
        limit: int,
        offset: int = 0,
        export: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        user: str | None = None,
        shared_only: bool = False,
    ) -> Page[Run]:
        """Return runs newest first (``shared_only``: of exports attached to a connection shared with contributors)."""

    def audit_page(
        self,
        *,
        limit: int,
        offset: int = 0,
        user: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: str | None = None,
    ) -> Page[AuditEntry]:
        """Return audit entries newest first: by user, action (or family: ``exports``), target, since a time."""

    def connection_page(self, *, limit: int, offset: int = 0, shared_only: bool = False) -> Page[Connection]:
        """Return connections by name (``shared_only``: those shared with contributors)."""

    def user_page(self, *, limit: int, offset: int = 0, role: Role | None = None) -> Page[User]:
        """Return users by name (``role``: with that role only)."""

    def segment_page(self, *, limit: int, offset: int = 0, search: str | None = None) -> Page[Segment]:
        """Return segments by name (``search``: whose name holds it, any case)."""

    def member_count(self, segment: Segment) -> int | None:
        """Count a segment's members in SQL (None: a filter segment whose cache is behind the last load)."""

    def catalog_version(self) -> int:
        """Return the catalog's version, renewed by every write that can change a segment's members."""

    def counted_members(self, segment_ids: Sequence[int], version: int) -> dict[int, int]:
        """Return the member counts recorded at catalog ``version`` for those of ``segment_ids`` that have one."""

    def record_member_counts(self, counts: dict[int, int], version: int) -> None:
        """Record member counts taken at catalog ``version`` (never served once another version is current)."""
