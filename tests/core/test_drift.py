"""Drift in the workspace: a destination that cannot read members back, the verify-every setting, values."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pytest
import requests

from segport import BatchWriter, InputError, MemberState, PluginError, RunContext, Workspace
from segport.errors import AuthError, ExitStatus, PlatformUnreachable, UnknownAudienceError
from segport.pipeline.dispatcher import RetryPolicy
from segport.pipeline.verify import same_value
from segport.plugins import make_manager
from segport.registry import Registry
from segport.testing.fakes import MemoryPlatform, MemoryWriter, memory_destination

FAST_RETRY = RetryPolicy(attempts=2, base=0.001, cap=0.01)


def test_a_destination_without_read_members_cannot_be_verified(
    ws: Workspace, memory_export: Callable[[Workspace, int], None]
) -> None:
    memory_export(ws, 3)
    ws.run_export("all")
    with pytest.raises(PluginError, match="destination memory cannot read its members back"):
        ws.drift.verify(name="all")
    with pytest.raises(PluginError, match="cannot read its members back"):
        ws.drift.repair(name="all")
    assert [r.plan and r.plan.get("repair") for r in ws.list_runs("all")] == [None]  # no repair run recorded


def test_verify_every_is_set_audited_and_cleared(
    ws: Workspace, memory_export: Callable[[Workspace, int], None]
) -> None:
    memory_export(ws, 3)
    assert ws.drift.set_verify_every(name="all", every=5).verify_every == 5
    assert ws.get_export("all").verify_every == 5
    assert ws.drift.set_verify_every(name="all", every=0).verify_every is None
    with pytest.raises(InputError):
        ws.drift.set_verify_every(name="all", every=-1)
    details = [e.detail for e in ws.audit_entries() if e.action == "exports.edit"]
    assert {"verify_every": {"old": None, "new": 5}} in details and {"verify_every": {"old": 5, "new": None}} in details


def test_a_scheduled_run_without_verify_every_never_verifies(
    ws: Workspace, memory_export: Callable[[Workspace, int], None]
) -> None:
    memory_export(ws, 3)
    assert ws.drift.scheduled_repair("all") is None
    ws.drift.set_verify_every(name="all", every=1)
    found = ws.drift.scheduled_repair("all")  # the memory destination cannot verify: the scheduled run says so
    assert found is not None and found.error is not None and "cannot read its members back" in found.error


@pytest.mark.parametrize(
    ("delivered", "platform", "same"),
    [
        ("Ada", "Ada", True),
        ("Ada", "Adaline", False),
        (42, "42", True),
        (1.5, "1.50", True),
        ("", None, True),
        ("x", "", False),
        (" Ada ", "Ada", True),
    ],
)
def test_field_values_compare_as_the_platforms_echo_them(delivered: object, platform: object, same: bool) -> None:
    assert same_value(delivered, platform) is same


class ReadingWriter(MemoryWriter):
    """The memory writer with the optional read_members: the platform's members as they are."""

    unreachable = False  # the platform does not answer (every pre-flight call fails as a network failure would)
    prepared = 0

    def prepare(self) -> None:
        if ReadingWriter.unreachable:
            raise PlatformUnreachable("cannot reach the memory platform (connection refused): check the network")
        ReadingWriter.prepared += 1
        super().prepare()

    def read_members(self, emails: Sequence[str]) -> Mapping[str, MemberState]:
        found = {}
        with self.platform.lock:
            for email in emails:
                member = self.platform.members.get(email)
                if member is not None:
                    found[email] = MemberState(
                        member.status,
                        member.status == "subscribed",
                        {name: member.fields.get(name, "") for name in self.context.mapped_fields},
                        frozenset(s for s in self.context.segments if self.prefix + s in member.markers),
                    )
        return found


@pytest.fixture
def reading_ws(home: Path, platform: MemoryPlatform, database_url: str | None, tmp_path: Path) -> Iterator[Workspace]:
    base = memory_destination(platform, batch_size=2, max_concurrency=2)

    class Reading(base):  # type: ignore[valid-type,misc]
        def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
            return ReadingWriter(session, config, context, platform)

    registry = Registry.from_plugins([Reading])
    workspace = Workspace.create(
        home, "ada", database_url=database_url, registry=registry, pm=make_manager(autoload=False), retry=FAST_RETRY
    )
    rows = ["id,email,first_name"] + [f"p{i},user{i}@example.com,First{i}" for i in range(5)]
    (tmp_path / "profiles.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    workspace.load_profiles(tmp_path / "profiles.csv")
    workspace.define_segment("All", "email is not empty")
    workspace.add_connection("mem", "memory", {"api_key": "memory-key-0001"}, agree_privacy=True)
    workspace.add_export(
        "all", connection="mem", segments=["All"], email_field="email", mapping={"FNAME": "first_name"},
        options={"audience_id": "aud1"},
    )  # fmt: skip
    workspace.run_export("all")
    yield workspace
    workspace.close()


def test_verify_finds_each_kind_of_drift_and_repair_sends_only_it(
    reading_ws: Workspace, platform: MemoryPlatform, tmp_path: Path
) -> None:
    ws, members = reading_ws, platform.members
    members["user0@example.com"].markers.discard("All")
    members["user0@example.com"].fields["FNAME"] = "Edited"
    members["user1@example.com"].status = "unsubscribed"
    members["user1@example.com"].markers.discard("All")
    del members["user2@example.com"]
    rows = ["id,email,first_name"] + [
        f"p{i},user{i}@example.com,{'Changed' if i == 3 else f'First{i}'}" for i in range(5)
    ]
    (tmp_path / "profiles.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    ws.load_profiles(tmp_path / "profiles.csv")  # p3 changed in the workspace, not sent yet: pending

    report = ws.drift.verify(name="all")
    assert report.checked == 5 and report.pending == 1 and report.in_sync == 1  # p4 in sync; p3 not compared
    assert [(p.email, p.markers_missing, dict(p.fields)) for p in report.drifted] == [
        ("user0@example.com", frozenset({"All"}), {"FNAME": ("First0", "Edited")})
    ]
    assert [(p.email, p.status) for p in report.status_changes] == [("user1@example.com", "unsubscribed")]
    assert [p.email for p in report.missing] == ["user2@example.com"]

    platform.calls.clear()
    _, run = ws.drift.repair(name="all")
    assert run.plan is not None and run.plan["repair"] == 1 and run.counts["updated"] == 1
    assert [r.email for call in platform.calls for r in call] == ["user0@example.com"]
    sent = platform.calls[0][0]
    assert sent.add == frozenset({"All"}) and sent.upsert and sent.fields == {"FNAME": "First0"} and not sent.new
    assert members["user0@example.com"].fields["FNAME"] == "First0" and "All" in members["user0@example.com"].markers
    assert "user2@example.com" not in members and members["user1@example.com"].status == "unsubscribed"
    after = ws.drift.verify(name="all")
    assert not after.drifted and after.pending == 1
    assert ws.run_export("all").counts["updated"] == 1  # the delta run sends only p3's change


def test_an_exit_is_compared_on_its_markers_only(reading_ws: Workspace, platform: MemoryPlatform) -> None:
    ws = reading_ws
    ws.define_segment("All", "email != 'user0@example.com'")
    ws.run_export("all")  # user0 exits: its marker is removed, the person stays
    platform.members["user0@example.com"].fields["FNAME"] = "Edited at the platform"
    assert not ws.drift.verify(name="all").found  # not segport's to put back any more
    platform.members["user0@example.com"].markers.add("All")
    report = ws.drift.verify(name="all")
    assert [(p.email, p.markers_extra, dict(p.fields)) for p in report.drifted] == [
        ("user0@example.com", frozenset({"All"}), {})
    ]
    ws.drift.repair(name="all")
    assert "All" not in platform.members["user0@example.com"].markers
    assert platform.members["user0@example.com"].fields["FNAME"] == "Edited at the platform"


def test_verify_runs_the_run_pre_flight_even_when_nobody_was_delivered(
    reading_ws: Workspace, platform: MemoryPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = reading_ws
    ws.define_segment("Nobody", "email = 'nobody@example.com'")
    ws.add_export(
        "later", connection="mem", segments=["Nobody"], email_field="email", mapping={},
        options={"audience_id": "aud1"},
    )  # fmt: skip
    before = ReadingWriter.prepared
    report = ws.drift.verify(name="later")
    assert report.checked == 0 and not report.found and ReadingWriter.prepared == before + 1
    platform.valid_keys = {"another-key"}
    with pytest.raises(AuthError) as refused:
        ws.drift.verify(name="later")
    assert refused.value.exit_status == ExitStatus.AUTH_ERROR
    platform.valid_keys, platform.audiences = None, {"aud2"}
    with pytest.raises(UnknownAudienceError, match="audience 'aud1' does not exist"):
        ws.drift.verify(name="later")
    platform.audiences = {"aud1"}
    monkeypatch.setattr(ReadingWriter, "unreachable", True)
    with pytest.raises(PlatformUnreachable) as down:
        ws.drift.verify(name="later")
    assert down.value.exit_status == ExitStatus.UNREACHABLE
