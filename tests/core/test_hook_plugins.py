"""Hook plugins (``segport.hooks``): a broken one is named at start-up; a failing observer never fails a run."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import segport.plugins
from segport import PluginContractError, PluginLoadError, RunStatus, hookimpl
from segport.plugins import HOOKS_GROUP, make_manager
from segport.testing.metadata import install_metadata


class Exploding:
    """Observes every lifecycle hook and raises in each."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def segport_before_run(self, run: Any, export: Any) -> None:
        self.calls.append("before")
        raise RuntimeError("before broke")

    @hookimpl
    def segport_after_batch(self, result: Any) -> None:  # a subset of the arguments, as pluggy allows
        self.calls.append("batch")
        raise ValueError("batch broke\nsecond line")

    @hookimpl
    def segport_on_reject(self, outcome: Any) -> None:
        self.calls.append("reject")
        raise KeyError("reject broke")

    @hookimpl
    def segport_after_run(self, run: Any) -> None:
        self.calls.append("after")
        raise OSError("after broke")


class Recording:
    """A well-behaved observer registered beside the broken one: it still sees everything."""

    def __init__(self) -> None:
        self.statuses: list[str] = []

    @hookimpl
    def segport_after_run(self, run: Any) -> None:
        self.statuses.append(run.status.value)


def test_a_failing_observer_never_fails_the_run(
    hooked_ws: Any, platform: Any, caplog: pytest.LogCaptureFixture
) -> None:
    exploding, recording = Exploding(), Recording()
    ws = hooked_ws(exploding, recording, export="vip", rows=5)
    platform.reject_emails = {"user1@example.com": "spam trap"}
    run = ws.run_export("vip")
    assert run.status is RunStatus.SUCCEEDED and run.counts["rejected"] == 1
    assert ws.get_run(run.id).status is RunStatus.SUCCEEDED
    assert {"before", "batch", "reject", "after"} <= set(exploding.calls)
    assert recording.statuses == ["succeeded"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "segport.plugins"]
    assert any("failed in segport_after_batch: ValueError: batch broke (the run goes on" in w for w in warnings)
    assert any("failed in segport_after_run: OSError: after broke" in w for w in warnings)
    assert all("\n" not in w for w in warnings)


class Misspelt:
    @hookimpl
    def segport_after_runn(self, run: Any) -> None:  # a typo: no such hook
        pass


def test_a_misspelt_hook_is_a_plugin_error() -> None:
    with pytest.raises(PluginContractError, match=r"hook plugin '.*' breaks the hook contract: .*segport_after_runn"):
        make_manager(autoload=False, plugins=(Misspelt(),))


def test_a_hook_plugin_that_fails_to_import_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = EntryPoint("audit-mirror", "segport_no_such_module.hooks", HOOKS_GROUP)
    monkeypatch.setattr(segport.plugins, "entry_points", lambda group: [broken] if group == HOOKS_GROUP else [])
    with pytest.raises(PluginLoadError) as caught:
        make_manager()
    assert str(caught.value) == (
        "hook plugin 'audit-mirror' (segport_no_such_module.hooks) failed to load: ModuleNotFoundError: No module "
        "named 'segport_no_such_module' (reinstall its distribution, or leave it out of SEGPORT_LOAD_PLUGINS)"
    )
    monkeypatch.setenv("SEGPORT_LOAD_PLUGINS", "runlog")  # narrowed: the broken one is not imported
    assert make_manager().get_plugin("audit-mirror") is None


def test_a_broken_hook_plugin_fails_every_command_in_one_line(tmp_path: Path) -> None:
    from segport.testing.operator import Operator

    op = Operator(tmp_path / "ws")
    op("init", "--admin", "ada")
    site = tmp_path / "site"
    project = {"name": "broken-hooks", "version": "1.0", "entry-points": {"segport.hooks": {"broken": "broken_hooks"}}}
    install_metadata(site, project)
    (site / "broken_hooks.py").write_text("raise ImportError('needs libfoo')\n", encoding="utf-8")
    op.env["PYTHONPATH"] = str(site)
    result = op("users", "list", check=False)
    assert result.returncode == 7
    assert result.stderr.strip() == (
        "error: hook plugin 'broken' (broken_hooks) failed to load: ImportError: needs libfoo "
        "(reinstall its distribution, or leave it out of SEGPORT_LOAD_PLUGINS)"
    )
