"""Data > Exports in the console: the list, "Add destination" (Save does not run), an export's page and buttons."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from segport import Workspace
from segport.errors import NotFound
from segport.models import RunStatus
from segport.testing.fakes import MemoryPlatform
from segport.testing.files import write_rows
from segport_mailchimp.sandbox import MailchimpSandbox

from .conftest import KEY, SECRET_KEY, XSS, csrf_of


def post(browser: TestClient, path: str, data: Any = None) -> Any:
    """POST a form with the browser's CSRF token."""
    token = browser.cookies.get("segport_csrf") or csrf_of(browser.get("/data/exports").text)
    fields: dict[str, list[str]] = {"csrftoken": [token]}
    for key, value in data if isinstance(data, list) else (data or {}).items():
        fields.setdefault(key, []).append(value)
    return browser.post(path, data=fields)


def wait_for(ws: Workspace, run_id: int) -> Any:
    """Return the run once it ended (the console runs it in a thread of the server)."""
    for _ in range(600):
        run = ws.get_run(run_id)
        if run.status is not RunStatus.RUNNING:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end")


def test_anonymous_is_sent_to_sign_in_and_back(client: TestClient) -> None:
    answer = client.get("/data/exports")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fdata%2Fexports"


@pytest.mark.parametrize("user", ["ada", "carl", "vera"])
def test_the_list_shows_each_export_with_its_last_run(
    user: str, world: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    html = signed_in(user).get("/data/exports").text
    assert "<h1>Exports</h1>" in html
    for header in ["Name", "Connection", "Audience", "Segments", "Last run", "Status"]:
        assert f'<th scope="col">{header}</th>' in html
    assert '<a href="/data/exports/team-news">team-news</a>' in html
    assert ("private-news" in html) is (user == "ada")  # others see the exports of shared connections only
    assert "<td>aud1</td>" in html and "<td>All</td>" in html and "Never run" in html
    assert ("Add destination" in html) is (user != "vera")
    assert SECRET_KEY not in html and KEY not in html


def test_the_list_has_pages_of_50(web_ws: Workspace, world: Workspace, signed_in: Callable[[str], TestClient]) -> None:
    for i in range(50):
        web_ws.add_export(
            f"bulk-{i:02d}", connection="team", segments=["All"], email_field="email",
            options={"audience_id": "aud1"}, force=True,
        )  # fmt: skip
    browser = signed_in("carl")
    first = browser.get("/data/exports").text
    assert first.count("<tr>") == 51  # the header's and 50 exports
    assert '<a href="/data/exports?page=2" rel="next">Next</a>' in first and "Previous" not in first
    second = browser.get("/data/exports?page=2").text
    assert second.count("<tr>") == 2  # the 51 exports of the shared connection (not private-news)
    assert "Page 2 of 2 (51 exports)" in second
    assert '<a href="/data/exports?page=1" rel="prev">Previous</a>' in second and ">Next<" not in second


def test_add_destination_offers_shared_connections_grouped_by_platform_to_contributors(
    world: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    html = signed_in("carl").get("/data/exports/new").text
    assert '<label for="name">Export name' in html
    assert '<optgroup label="In-memory test destination">' in html
    assert '<option value="team">team</option>' in html and "vault" not in html
    assert 'hx-get="/data/exports/audiences"' in html
    assert '<label for="email_field">Email attribute</label>' in html
    assert '<option value="first_name">first_name</option>' in html  # the attributes profiles have
    for i in range(3):
        assert f'<label for="dest-{i}">Destination field</label>' in html
        assert f'<label for="src-{i}">Profile attribute</label>' in html
    assert 'hx-get="/data/exports/field-row?n=3"' in html and ">Add a field</button>" in html
    assert re.search(r'type="checkbox" name="segment" value="All"> All \(5 profiles\)</label>', html)
    assert '<label for="schedule">Schedule (cron, optional)' in html
    assert '<button type="submit">Save</button>' in html
    admin = signed_in("ada").get("/data/exports/new").text
    assert '<option value="vault">vault</option>' in admin


def test_the_audience_falls_back_to_a_typed_id_when_the_plugin_cannot_list(
    world: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in("carl")
    html = browser.get("/data/exports/audiences?connection=team").text
    assert '<label for="audience_typed">Audience or list id</label>' in html
    assert "cannot list audiences" in html and 'id="audience"' not in html
    assert "<legend>In-memory test destination options</legend>" in html and 'id="cfg-tag_prefix"' in html
    assert browser.get("/data/exports/audiences?connection=vault").status_code == 403


def test_the_audiences_a_platform_lists_are_a_select(web_ws: Workspace, signed_in: Callable[[str], TestClient]) -> None:
    with MailchimpSandbox(seed=5) as sandbox:
        web_ws.add_connection("mc", "mailchimp", sandbox.demo_connection(), share="contributors",
                              agree_privacy=True)  # fmt: skip
        html = signed_in("carl").get("/data/exports/audiences?connection=mc").text
    audience = sandbox.demo_export_options()["audience_id"]
    assert '<label for="audience">Audience</label>' in html
    assert f'<option value="{audience}">Sandbox audience ({audience}, 0 members)</option>' in html
    assert '<label for="audience_typed">Audience or list id</label>' in html
    assert "status_if_new" in html and 'id="cfg-audience_id"' not in html


def test_add_a_field_adds_a_row_and_moves_the_button_on(
    world: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    html = signed_in("carl").get("/data/exports/field-row?n=3").text
    assert '<label for="dest-3">Destination field</label>' in html and 'id="src-3"' in html
    assert 'hx-get="/data/exports/field-row?n=4"' in html and 'hx-swap-oob="true"' in html


def added_form(name: str = "weekly", **extra: Any) -> list[tuple[str, str]]:
    form = [("name", name), ("connection", "team"), ("audience_typed", "aud1"), ("email_field", "email"),
            ("dest-0", "FNAME"), ("src-0", "first_name"), ("dest-1", ""), ("src-1", ""), ("segment", "All"),
            ("schedule", ""), ("cfg-tag_prefix", "")]  # fmt: skip
    return form + list(extra.items())


def test_save_saves_and_sends_nothing(
    world: Workspace, signed_in: Callable[[str], TestClient], platform: MemoryPlatform
) -> None:
    browser = signed_in("carl")
    answer = post(browser, "/data/exports/new", added_form())
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/data/exports/weekly"
    page = browser.get("/data/exports/weekly").text
    assert "Saved. Nothing was sent." in page
    export = world.get_export("weekly")
    assert export.owner == "carl" and export.mapping == {"FNAME": "first_name"}
    assert export.options == {"audience_id": "aud1"} and export.segments == ["All"]
    assert world.list_runs(export="weekly") == [] and platform.calls == [] and platform.members == {}


def test_save_errors_show_next_to_their_fields(world: Workspace, signed_in: Callable[[str], TestClient]) -> None:
    browser = signed_in("carl")
    form = [(k, v) for k, v in added_form() if k != "segment"]
    answer = post(browser, "/data/exports/new", form)
    assert answer.status_code == 422
    assert '<p class="field-error" id="segments-error">' in answer.text
    wrong = [(k, "e_mail" if k == "email_field" else v) for k, v in added_form()]
    answer = post(browser, "/data/exports/new", wrong)
    assert answer.status_code == 422
    error = re.search(r'<p class="field-error" id="email_field-error">([^<]*)</p>', answer.text)
    assert error and "e_mail" in error.group(1)
    assert 'aria-describedby="email_field-error"' in answer.text
    bad_cron = post(browser, "/data/exports/new", added_form(schedule="every day"))
    assert '<p class="field-error" id="schedule-error">' in bad_cron.text
    with pytest.raises(NotFound):
        world.get_export("weekly")


@pytest.mark.parametrize("user", ["vera"])
def test_a_viewer_sees_no_write_control_and_a_forged_post_is_refused(
    user: str, world: Workspace, signed_in: Callable[[str], TestClient], platform: MemoryPlatform
) -> None:
    browser = signed_in(user)
    html = browser.get("/data/exports/team-news").text
    for control in ["Run now", "Dry run", "Disable", "Edit", "Remove"]:
        assert f">{control}<" not in html
    for path in ["run", "dry-run", "disable", "remove"]:
        assert post(browser, f"/data/exports/team-news/{path}").status_code == 403, path
    assert post(browser, "/data/exports/new", added_form()).status_code == 403
    assert world.list_runs() == [] and platform.calls == []
    assert world.get_export("team-news").enabled


def test_a_contributor_cannot_run_or_change_an_export_on_a_private_connection(
    world: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in("carl")
    assert "private-news" not in browser.get("/data/exports").text
    page = browser.get("/data/exports/private-news")
    assert page.status_code == 404 and ">Run now<" not in page.text and SECRET_KEY not in page.text
    assert post(browser, "/data/exports/private-news/run").status_code in (403, 404)
    assert post(browser, "/data/exports/private-news/dry-run").status_code in (403, 404)
    assert post(browser, "/data/exports/private-news/edit", added_form("private-news")).status_code in (403, 404)
    assert world.list_runs() == []
    team = browser.get("/data/exports/team-news").text
    for control in ["Run now", "Dry run", "Disable", "Edit", "Remove"]:
        assert f">{control}</" in team


def test_run_now_starts_a_run_and_goes_to_its_page(
    world: Workspace, signed_in: Callable[[str], TestClient], platform: MemoryPlatform
) -> None:
    browser = signed_in("carl")
    answer = post(browser, "/data/exports/team-news/run")
    assert answer.status_code == 303
    run_id = int(answer.headers["location"].removeprefix("/runs/"))
    run = wait_for(world, run_id)
    assert run.status is RunStatus.SUCCEEDED and run.user == "carl" and run.trigger == "manual"
    assert len(platform.members) == 5
    listed = browser.get("/data/exports").text
    assert f'<a href="/runs/{run_id}">Run {run_id}</a>' in listed and "5 created" in listed
    assert "Succeeded" in listed


def test_a_refused_run_shows_its_one_line(world: Workspace, signed_in: Callable[[str], TestClient]) -> None:
    browser = signed_in("carl")
    post(browser, "/data/exports/team-news/disable")
    answer = post(browser, "/data/exports/team-news/run")
    assert answer.status_code == 303 and answer.headers["location"] == "/data/exports/team-news"
    page = browser.get("/data/exports/team-news").text
    assert re.search(r'<p class="flash error" role="alert">[^<]*disabled[^<]*</p>', page)
    assert world.list_runs(export="team-news") == []
    post(browser, "/data/exports/team-news/enable")
    assert world.get_export("team-news").enabled


def test_dry_run_shows_the_plan_and_sample_records_and_sends_nothing(
    world: Workspace, signed_in: Callable[[str], TestClient], platform: MemoryPlatform
) -> None:
    browser = signed_in("carl")
    answer = post(browser, "/data/exports/team-news/dry-run")
    assert answer.status_code == 200
    html = answer.text
    assert "nothing was sent" in html
    assert "<td>created</td><td>5</td>" in html
    assert re.search(r"<code>create +p\d+ user\d+@example.com", html)
    assert platform.calls == [] and platform.members == {}


def test_run_now_against_the_mailchimp_sandbox_records_the_run(
    web_ws: Workspace, tmp_path: Path, signed_in: Callable[[str], TestClient]
) -> None:
    with MailchimpSandbox(seed=7) as sandbox:
        web_ws.add_connection("mc", "mailchimp", sandbox.demo_connection(), share="contributors",
                              agree_privacy=True)  # fmt: skip
        rows = [[f"p{i}", f"person{i}@shop.segport-test.net", f"First{i}"] for i in range(4)]
        web_ws.load_profiles(write_rows(tmp_path / "people.csv", ["id", "email", "first_name"], rows))
        web_ws.define_segment("All", "email is not empty")
        browser = signed_in("carl")
        form = [
            ("name", "mc-news"),
            ("connection", "mc"),
            ("audience", sandbox.audience_id),
            ("audience_typed", ""),
            ("email_field", "email"),
            ("segment", "All"),
            ("cfg-status_if_new", "subscribed"),
            ("cfg-on_exit", "remove_tag"),
            ("cfg-tag_prefix", ""),
        ]  # fmt: skip  (what the browser sends: the selects at their defaults)
        saved = post(browser, "/data/exports/new", form)
        assert saved.status_code == 303, saved.text
        assert web_ws.get_export("mc-news").options == {"audience_id": sandbox.audience_id}  # no default pinned
        assert sandbox.summary()["members"] == {}
        answer = post(browser, "/data/exports/mc-news/run")
        assert answer.status_code == 303
        run = wait_for(web_ws, int(answer.headers["location"].removeprefix("/runs/")))
        assert run.status is RunStatus.SUCCEEDED and run.counts["created"] == 4
        assert sum(sandbox.summary()["members"].values()) == 4


def test_edit_is_the_same_form_filled_in(world: Workspace, signed_in: Callable[[str], TestClient]) -> None:
    browser = signed_in("carl")
    world.change_export("team-news", mapping={"FNAME": "first_name"})
    html = browser.get("/data/exports/team-news/edit").text
    assert "Edit export team-news" in html
    assert 'value="FNAME"' in html and '<option value="first_name" selected>' in html
    assert 'value="aud1"' in html and '<option value="team" selected>' in html
    form = [(k, v) for k, v in added_form("team-news") if not k.startswith(("dest-", "src-"))]
    answer = post(browser, "/data/exports/team-news/edit", [*form, ("schedule", "0 6 * * *")])
    assert answer.status_code == 303, answer.text
    export = world.get_export("team-news")
    assert export.mapping == {} and export.schedule == "0 6 * * *"


def test_a_detached_export_can_still_be_removed(world: Workspace, signed_in: Callable[[str], TestClient]) -> None:
    world.remove_connection("team")
    assert ">Remove</a>" not in signed_in("carl").get("/data/exports/team-news").text  # the service would refuse
    browser = signed_in("ada")
    html = browser.get("/data/exports/team-news").text
    assert "Detached" in html and ">Run now<" not in html and ">Remove</a>" in html
    assert post(browser, "/data/exports/team-news/remove").status_code == 303
    assert "team-news" not in [e.name for e in world.list_exports()]


def test_remove_asks_first(world: Workspace, signed_in: Callable[[str], TestClient]) -> None:
    browser = signed_in("carl")
    html = browser.get("/data/exports/team-news/remove").text
    assert ">Remove export</button>" in html
    answer = post(browser, "/data/exports/team-news/remove")
    assert answer.status_code == 303 and answer.headers["location"] == "/data/exports"
    assert "team-news" not in [e.name for e in world.list_exports()]


@pytest.mark.parametrize("name", XSS)
def test_names_a_user_typed_are_escaped(name: str, world: Workspace, signed_in: Callable[[str], TestClient]) -> None:
    world.define_segment(name, "email is not empty")
    world.add_export(name, connection="team", segments=[name], email_field="email", options={"audience_id": name})
    browser = signed_in("carl")
    pages = [
        browser.get("/data/exports").text,
        browser.get(f"/data/exports/{quote(name, safe='')}").text,
        browser.get("/data/exports/new").text,
        browser.get(f"/data/exports/{quote(name, safe='')}/edit").text,
    ]
    for html in pages:
        assert name not in html
        assert "alert(1)" in html  # shown, escaped
