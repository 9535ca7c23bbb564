"""Drift in the workspace: a destination that cannot read members back, the verify-every setting, values."""

from __future__ import annotations

from typing import Callable

import pytest

from segport import InputError, PluginError, Workspace
from segport.pipeline.verify import same_value


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
