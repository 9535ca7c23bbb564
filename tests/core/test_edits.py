"""Edits that keep the sync state (issue 16), on the workspace API against the memory destination.

Both stores; the CLI and the real platforms' sandboxes are in test_e2e_edits.py.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from segport import ConfigError, PermissionDenied, Workspace
from segport.services.changes import HIDDEN, describe, diff
from segport.testing.fakes import MemoryPlatform

MemoryExport = Callable[[Workspace, int], None]


def sent(platform: MemoryPlatform) -> int:
    return sum(len(call) for call in platform.calls)


def test_a_rotated_key_keeps_the_sync_state(
    ws: Workspace, platform: MemoryPlatform, memory_export: MemoryExport
) -> None:
    memory_export(ws, 30)
    assert ws.run_export("all").counts["created"] == 30
    platform.valid_keys = {"memory-key-0002"}  # rotated at the platform: the old key is refused
    edited = ws.edit_connection("mem", config={"api_key": "memory-key-0002"})
    assert edited.changes == {"config.api_key": {"old": HIDDEN, "new": HIDDEN}}
    assert edited.account == "demo" and any("at their last check (demo)" in note for note in edited.notes)
    before = sent(platform)
    run = ws.run_export("all")
    assert run.counts["unchanged"] == 30 and sent(platform) == before
    entry = next(e for e in ws.audit_entries() if e.action == "connections.edit")
    assert "memory-key" not in str(entry.to_dict())


def test_new_credentials_must_work_unless_not_checked(
    ws: Workspace, platform: MemoryPlatform, memory_export: MemoryExport
) -> None:
    memory_export(ws, 3)
    platform.valid_keys = {"memory-key-0001"}
    with pytest.raises(Exception, match="refused the API key"):
        ws.edit_connection("mem", config={"api_key": "memory-key-0009"})
    edited = ws.edit_connection("mem", config={"api_key": "memory-key-0009"}, check=False)
    assert edited.account is None and any("--no-check" in note for note in edited.notes)


def test_credentials_of_another_account_are_refused_unless_forced(
    ws: Workspace, platform: MemoryPlatform, memory_export: MemoryExport
) -> None:
    memory_export(ws, 10)
    ws.run_export("all")
    with pytest.raises(ConfigError, match=r"reach other, not demo.*--force"):
        ws.edit_connection("mem", config={"api_key": "memory-key-0002", "account": "other"})
    assert ws.run_export("all").counts["unchanged"] == 10  # nothing was changed
    edited = ws.edit_connection("mem", config={"api_key": "memory-key-0002", "account": "other"}, force=True)
    assert any("another account" in note for note in edited.notes)
    before = sent(platform)
    ws.run_export("all")
    assert sent(platform) == before + 10  # another account: everything is sent there


def test_rename_and_share_follow_into_the_exports(ws: Workspace, memory_export: MemoryExport, act_as: Any) -> None:
    memory_export(ws, 5)
    ws.run_export("all")
    edited = ws.edit_connection("mem", rename="Memory", share="contributors")
    assert edited.connection.name == "Memory" and ws.get_export("all").connection == "Memory"
    assert act_as("carl").run_export("all").counts["unchanged"] == 5
    with pytest.raises(PermissionDenied):
        act_as("carl").edit_connection("Memory", share="admins")
    ws.add_connection("other", "memory", {"api_key": "memory-key-0003"}, agree_privacy=True)
    with pytest.raises(Exception, match="exists already"):
        ws.edit_connection("Memory", rename="other")
    assert ws.edit_connection("Memory", share="contributors").changes == {}


def test_unmap_keeps_what_was_delivered(ws: Workspace, platform: MemoryPlatform, memory_export: MemoryExport) -> None:
    memory_export(ws, 20)
    ws.edit_export("all", mapping={"LNAME": "first_name"})
    ws.run_export("all")
    edited = ws.change_export("all", unmap=["LNAME"])
    assert edited.sync_state == "kept" and edited.export.mapping == {"FNAME": "first_name"}
    assert edited.changes == {"mapping.LNAME": {"old": "first_name", "new": None}}
    before = sent(platform)
    assert ws.run_export("all").counts["unchanged"] == 20 and sent(platform) == before
    with pytest.raises(ConfigError, match="maps no field 'LNAME'"):
        ws.change_export("all", unmap=["LNAME"])
    with pytest.raises(ConfigError, match="both mapped and unmapped"):
        ws.change_export("all", unmap=["FNAME"], mapping={"FNAME": "email"})


def test_a_mapping_change_still_sends_the_change(
    ws: Workspace, platform: MemoryPlatform, memory_export: MemoryExport
) -> None:
    memory_export(ws, 8)
    ws.run_export("all")
    assert ws.change_export("all", mapping={"LNAME": "first_name"}).sync_state == "kept"
    assert ws.run_export("all").counts["updated"] == 8  # a field added: everyone gets it


def test_moving_to_a_connection_of_the_same_account(
    ws: Workspace, platform: MemoryPlatform, memory_export: MemoryExport
) -> None:
    memory_export(ws, 12)
    ws.run_export("all")
    ws.add_connection("team", "memory", {"api_key": "memory-key-0002"}, agree_privacy=True)
    moved = ws.change_export("all", connection="team")
    assert moved.sync_state == "kept" and moved.export.connection == "team"
    before = sent(platform)
    assert ws.run_export("all").counts["unchanged"] == 12 and sent(platform) == before
    ws.add_connection("elsewhere", "memory", {"api_key": "memory-key-0003", "account": "b"}, agree_privacy=True)
    with pytest.raises(ConfigError, match=r"loses its sync state.*--force"):
        ws.change_export("all", connection="elsewhere")
    assert ws.change_export("all", connection="elsewhere", force=True).sync_state == "reset"
    ws.run_export("all")
    assert sent(platform) == before + 12


def test_a_move_by_a_contributor_needs_both_connections_shared(
    ws: Workspace, memory_export: MemoryExport, act_as: Any
) -> None:
    memory_export(ws, 2)
    ws.edit_connection("mem", share="contributors")
    ws.add_connection("private", "memory", {"api_key": "memory-key-0002"}, agree_privacy=True)
    with pytest.raises(PermissionDenied):
        act_as("carl").change_export("all", connection="private")


def test_markers_equal_but_for_case_are_refused(ws: Workspace, memory_export: MemoryExport) -> None:
    memory_export(ws, 10)
    ws.define_segment("all", "email is not empty")  # 'All' is exported by 'all' already
    options = {"audience_id": "aud1"}
    common: dict[str, Any] = {"connection": "mem", "email_field": "email", "options": options}
    with pytest.raises(ConfigError) as refused:
        ws.add_export("lower", segments=["all"], **common)
    message = str(refused.value)
    assert "'lower'" in message and "'all'" in message and "'All'" in message
    with pytest.raises(ConfigError, match="segments 'All' and 'all' of export 'both'"):
        ws.add_export("both", segments=["All", "all"], **common)
    assert ws.add_export("same", segments=["All"], **common).segments == ["All"]  # one segment, one marker
    assert ws.add_export("forced", segments=["all"], force=True, **common).name == "forced"
    ws.add_export("elsewhere", segments=["all"], connection="mem", email_field="email", options={"audience_id": "aud2"})
    with pytest.raises(ConfigError, match="'elsewhere'"):
        ws.change_export("elsewhere", options={"audience_id": "aud1"})


def test_users_role_and_the_last_admin(ws: Workspace, act_as: Any) -> None:
    assert ws.set_user_role("carl", "admin").role.value == "admin"
    entry = ws.audit_entries(1)[0]
    assert (entry.action, entry.detail) == ("users.role", {"changes": {"role": {"old": "contributor", "new": "admin"}}})
    ws.set_user_role("ada", "viewer")
    with pytest.raises(ConfigError, match="'carl' is the last admin"):
        act_as("carl").set_user_role("carl", "viewer")
    with pytest.raises(PermissionDenied):
        act_as("vera").set_user_role("vera", "admin")


def test_changes_mask_secrets_and_read_as_one_line() -> None:
    changes = diff({"api_key": "s3cret-old", "dc": "us1"}, {"api_key": "s3cret-new", "dc": "us2"}, hidden={"api_key"})
    assert changes == {"api_key": {"old": HIDDEN, "new": HIDDEN}, "dc": {"old": "us1", "new": "us2"}}
    assert describe(changes) == "api_key: (hidden) -> (hidden); dc: us1 -> us2"
    assert diff({}, {"token": "x"}, hidden={"token"}) == {"token": {"old": None, "new": HIDDEN}}


def test_other_edits_are_audited_old_to_new(ws: Workspace, memory_export: MemoryExport) -> None:
    memory_export(ws, 2)
    ws.set_profile_cap("mem", 500)
    ws.set_export_enabled("all", False)
    disabled, capped = ws.audit_entries(2)
    assert disabled.detail == {"changes": {"enabled": {"old": True, "new": False}}}
    assert capped.detail == {"profile_cap": 500, "changes": {"profile_cap": {"old": None, "new": 500}}}


def test_rotate_asks_on_a_terminal_only_and_secrets_come_from_stdin(
    ws: Workspace, memory_export: MemoryExport, run_cli: Any
) -> None:
    memory_export(ws, 2)
    no_terminal = run_cli("--as", "ada", "connections", "edit", "mem", "--rotate")
    assert no_terminal.exit_code == 3 and "--config" in no_terminal.stderr
    rotated = run_cli(
        "--as", "ada", "connections", "edit", "mem", "--config", "-", input='{"api_key": "memory-key-0042"}'
    )
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.splitlines()[0] == "updated connection 'mem': config.api_key: (hidden) -> (hidden)"
    assert "memory-key-0042" not in rotated.output
    nothing = run_cli("--as", "ada", "connections", "edit", "mem")
    assert nothing.exit_code == 3 and "nothing to change" in nothing.stderr
    assert (
        run_cli("--as", "ada", "users", "role", "carl", "contributor").stdout == "user 'carl' is contributor already\n"
    )


def test_a_detached_export_is_attached_again_with_force(
    ws: Workspace, platform: MemoryPlatform, memory_export: MemoryExport
) -> None:
    memory_export(ws, 6)
    ws.run_export("all")
    ws.remove_connection("mem")
    ws.add_connection("mem2", "memory", {"api_key": "memory-key-0002"}, agree_privacy=True)
    with pytest.raises(ConfigError, match=r"detached .*'mem'.*--force"):
        ws.change_export("all", connection="mem2")
    attached = ws.change_export("all", connection="mem2", force=True)
    assert attached.sync_state == "reset" and attached.changes == {"connection": {"old": "mem", "new": "mem2"}}
    assert not attached.export.detached
    ws.set_export_enabled("all", True)  # detaching disabled it
    before = sent(platform)
    ws.run_export("all")
    assert sent(platform) == before + 6
