"""Attribute names are checked (issue 15, item 7).

A misspelt ``--email`` or ``--map`` attribute used to be saved, then silently sent blank values
(``FNAME=first`` blanked every first name at the platform) or rejected everyone ("email is
empty") with exit 0. Now ``exports add/edit`` refuse an attribute no loaded profile has (exit 4,
naming the closest ones), ``segments define`` warns about one, and a dry run counts the selected
profiles each mapped field would be sent blank for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from segport import ExitStatus, InputError, RunError, RunStatus, Workspace
from segport.testing.fakes import MemoryPlatform


def add(ws: Workspace, name: str = "news", **changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "connection": "mem", "segments": ["All"], "email_field": "email", "mapping": {"FNAME": "first_name"},
        "options": {"audience_id": "aud1"},
    }
    arguments.update(changes)
    return ws.add_export(name, **arguments)


@pytest.fixture
def loaded(ws: Workspace, memory_export: Any) -> Workspace:
    """Profiles p000..p009 (id, email, first_name), segment All, connection mem, export all."""
    memory_export(ws, 10)
    return ws


def test_a_misspelt_map_attribute_is_refused_with_the_closest_names(loaded: Workspace) -> None:
    with pytest.raises(InputError) as raised:
        add(loaded, mapping={"FNAME": "first"})
    assert raised.value.exit_status is ExitStatus.INPUT_ERROR and raised.value.param == "mapping"
    assert str(raised.value) == (
        "no loaded profile has the attribute 'first' named for destination field 'FNAME': did you mean 'first_name'?"
    )
    assert [e.name for e in loaded.list_exports()] == ["all"]  # nothing saved


def test_a_misspelt_email_attribute_is_refused(loaded: Workspace) -> None:
    expected = "attribute 'e-mail' named for the email field: did you mean 'email'"
    with pytest.raises(InputError, match=expected) as raised:
        add(loaded, email_field="e-mail")
    assert raised.value.param == "email_field"


def test_joined_sources_are_checked_part_by_part(loaded: Workspace) -> None:
    assert add(loaded, mapping={"FNAME": "first_name+email"}).mapping == {"FNAME": "first_name+email"}
    with pytest.raises(InputError, match="attribute 'last_name' named for destination field 'LNAME'"):
        add(loaded, "other", mapping={"LNAME": "first_name+last_name"})


def test_edit_refuses_a_misspelt_attribute_and_checks_only_what_it_changes(loaded: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="did you mean 'first_name'"):
        loaded.edit_export("all", mapping={"LNAME": "frist_name"})
    with pytest.raises(InputError, match="did you mean 'email'"):
        loaded.edit_export("all", email_field="emial")
    assert loaded.get_export("all").mapping == {"FNAME": "first_name"}
    # the profiles change: the saved mapping names an attribute nobody has now, other edits still go through
    (tmp_path / "renamed.csv").write_text("id,email,given_name\np000,user0@example.com,Ann\n", encoding="utf-8")
    loaded.load_profiles(tmp_path / "renamed.csv", replace=True)
    assert loaded.edit_export("all", options={"tag_prefix": "x-"}).options["tag_prefix"] == "x-"


def test_before_the_first_load_any_attribute_is_accepted(ws: Workspace) -> None:
    ws.define_segment("All", "email is not empty")
    ws.add_connection("mem", "memory", {"api_key": "memory-key-0001"}, agree_privacy=True)
    assert add(ws, mapping={"FNAME": "anything"}, email_field="mail").email_field == "mail"


def test_the_cli_refuses_a_misspelt_attribute_with_exit_4(loaded: Workspace, run_cli: Any) -> None:
    result = run_cli("--as", "ada", "exports", "add", "news", "--connection", "mem", "--segment", "All",
                     "--email", "email", "--map", "FNAME=first", "--option", "audience_id=aud1")
    assert result.exit_code == ExitStatus.INPUT_ERROR, result.output
    assert result.stderr.strip().splitlines() == [
        "error: no loaded profile has the attribute 'first' named for destination field 'FNAME': "
        "did you mean 'first_name'? (pass --map FIELD=ATTRIBUTE)"
    ]


def test_segments_define_warns_about_an_attribute_no_profile_has(loaded: Workspace, run_cli: Any) -> None:
    result = run_cli("--as", "ada", "segments", "define", "fr", "--where", "contry = 'FR' and email is not empty",
                     "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "fr"  # the segment is defined, stdout unchanged
    assert result.stderr == "warning: no loaded profile has the attribute 'contry': check its spelling\n"
    result = run_cli("--as", "ada", "segments", "define", "named", "--where", "frist_name = 'Ann'")
    assert result.exit_code == 0 and "did you mean 'first_name'?" in result.stderr
    quiet = run_cli("--as", "ada", "segments", "define", "ok", "--where", "first_name = 'Ann'")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_a_dry_run_counts_the_profiles_a_mapped_field_is_sent_blank_for(
    loaded: Workspace, platform: MemoryPlatform, tmp_path: Path, run_cli: Any
) -> None:
    rows = ["id,email,first_name"] + [f"p{i:03d},user{i}@example.com,{'' if i < 3 else f'First{i}'}" for i in range(10)]
    (tmp_path / "blanks.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    loaded.load_profiles(tmp_path / "blanks.csv")
    plan = loaded.run_export("all", dry_run=True)
    assert plan.status is RunStatus.PLANNED and plan.plan is not None
    assert plan.plan["empty_FNAME"] == 3 and plan.plan["selected"] == 10 and plan.plan["upserts"] == 10
    result = run_cli("--as", "ada", "exports", "run", "all", "--dry-run")
    assert "  empty FNAME: 3" in result.stdout
    as_json = json.loads(run_cli("--as", "ada", "exports", "run", "all", "--dry-run", "--json").stdout)["plan"]
    assert as_json["empty_FNAME"] == 3 and {"selected", "upserts", "new", "unchanged", "requests"} <= set(as_json)
    assert platform.calls == []


def test_names_with_like_wildcards_quotes_and_accents_are_found_exactly(ws: Workspace, tmp_path: Path) -> None:
    names = ["pré_nom", "a%b", 'say"hi', "back\\slash"]
    profile = {"id": "p1", "email": "p1@segport-test.net", **dict.fromkeys(names, "x")}
    (tmp_path / "odd.jsonl").write_text(json.dumps(profile, ensure_ascii=False) + "\n", encoding="utf-8")
    ws.load_profiles(tmp_path / "odd.jsonl")
    assert all(ws.store.has_attribute(name) for name in names)
    # each name's LIKE pattern matches only itself: wildcards escaped, values are no names
    assert not any(ws.store.has_attribute(name) for name in ["pr_nom", "pré%", "a_b", "say", "x", "p1"])
    assert set(names) <= set(ws.store.attribute_names())


def test_a_run_whose_every_profile_is_refused_before_sending_fails(
    loaded: Workspace, platform: MemoryPlatform, tmp_path: Path
) -> None:
    """The data matching fits no profile (every mapped email is blank): the run is failed, not succeeded."""
    rows = ["id,email,first_name,work_email"] + [f"p{i:03d},user{i}@segport-test.net,F{i}," for i in range(10)]
    (tmp_path / "work.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    loaded.load_profiles(tmp_path / "work.csv")
    add(loaded, "work", email_field="work_email")  # the attribute exists (blank everywhere): accepted
    refused = "all 10 selected profiles were refused: segport refused 10 before sending"
    with pytest.raises(RunError, match=refused) as raised:
        loaded.run_export("work")
    run = raised.value.run
    assert run is not None and run.status is RunStatus.FAILED and run.counts["rejected"] == 10
    assert raised.value.exit_status is ExitStatus.RUN_FAILED and platform.calls == []
    assert run.reject_file and len(Path(run.reject_file).read_text(encoding="utf-8").splitlines()) == 10
    assert f"segport runs rejects {run.id}" in str(raised.value)  # where the reasons are, even with no new file
    assert "check the export's data matching (segport exports show work)" in str(raised.value)  # segport's rejects
