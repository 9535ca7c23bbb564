"""Admin > Schedule and Admin > Audit in the console."""

from __future__ import annotations

import re
from typing import Callable

from fastapi.testclient import TestClient

from segport import Workspace

from .conftest import csrf_of

XSS = "<script>alert(1)</script>"


def test_the_schedule_shows_the_refresh_and_its_next_runs(
    signed_in: Callable[[str], TestClient], web_ws: Workspace
) -> None:
    web_ws.set_schedule("0 6 * * *", timezone="Europe/Paris")
    web_ws.mark_schedule("refresh", "the platform said <b>no</b>")
    html = signed_in("vera").get("/admin/schedule").text
    assert "<h1>Schedule</h1>" in html
    assert re.search(
        r"<dt>Schedule</dt><dd><code>0 6 \* \* \*</code></dd>\s*<dt>Time zone</dt><dd>Europe/Paris</dd>", html
    )
    row = re.search(r"<td>System refresh</td>.*?</tr>", html, re.S)
    assert row is not None
    times = re.findall(r'<time datetime="([^"]+)">', row.group(0))
    assert len(times) == 3 and all(t.endswith(("+01:00", "+02:00")) and "T06:00" in t for t in times)
    assert "failing" in row.group(0)
    assert "the platform said &lt;b&gt;no&lt;/b&gt;" in html
    assert "Save schedule" not in html  # a viewer cannot set it


def test_an_admin_sets_and_clears_the_refresh(signed_in: Callable[[str], TestClient], web_ws: Workspace) -> None:
    ada = signed_in("ada")
    token = csrf_of(ada.get("/admin/schedule").text)
    answer = ada.post("/admin/schedule", data={"csrftoken": token, "cron": "30 2 * * 1", "timezone": "UTC"})
    assert answer.status_code == 303
    assert "The system refresh runs on 30 2 * * 1." in ada.get("/admin/schedule").text
    assert web_ws.get_schedule() == "30 2 * * 1"
    bad = ada.post("/admin/schedule", data={"csrftoken": token, "cron": "61 * * * *", "timezone": "UTC"})
    assert bad.status_code == 422 and '<p class="field-error" id="cron-error">invalid cron schedule' in bad.text
    zone = ada.post("/admin/schedule", data={"csrftoken": token, "cron": "0 1 * * *", "timezone": "europe/paris"})
    assert '<p class="field-error" id="timezone-error">unknown time zone' in zone.text
    assert web_ws.get_schedule() == "30 2 * * 1"
    ada.post("/admin/schedule", data={"csrftoken": token, "cron": "30 2 * * 1", "clear": "1"})
    assert web_ws.get_schedule() is None


def test_a_forged_schedule_change_is_refused(signed_in: Callable[[str], TestClient], web_ws: Workspace) -> None:
    carl = signed_in("carl")
    answer = carl.post("/admin/schedule", data={"csrftoken": carl.cookies["segport_csrf"], "cron": "@daily"})
    assert answer.status_code == 403
    assert web_ws.get_schedule() is None


def test_the_audit_is_for_admins_only(signed_in: Callable[[str], TestClient]) -> None:
    assert signed_in("carl").get("/admin/audit").status_code == 403
    assert "Admin › Audit" not in signed_in("vera").get("/runs").text
    assert "Admin › Audit" in signed_in("ada").get("/runs").text


def test_the_audit_lists_and_filters_entries(signed_in: Callable[[str], TestClient], web_ws: Workspace) -> None:
    web_ws.add_user("dora", "viewer")
    web_ws.set_user_role("dora", "contributor")
    web_ws.define_segment(XSS, "country = 'FR'")
    ada = signed_in("ada")
    html = ada.get("/admin/audit").text
    assert re.findall(r'<th scope="col">([^<]+)</th>', html) == ["At", "User", "Client", "Action", "Target", "Detail"]
    for label in ["User", "Action", "Target"]:
        assert f">{label}</label>" in html
    assert '<button type="submit">Filter</button>' in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "where: country = &#39;FR&#39;" in html  # detail as key: value text
    login = re.search(r"<td>ada</td>\s*<td>testclient</td>\s*<td>login</td>", html)
    assert login, "the sign-in through the form is audited with the client address"
    only = ada.get("/admin/audit", params={"action": "users.role"}).text
    rows = re.findall(r"<tr>\s*<td><time", only)
    assert (
        len(rows) == 1
        and "<td>dora</td>" in only
        and "changes: {&#34;role&#34;: {&#34;new&#34;: &#34;contributor&#34;" in only
    )
    family = ada.get("/admin/audit", params={"action": "users", "target": "dora"}).text
    assert len(re.findall(r"<tr>\s*<td><time", family)) == 2
    nobody = ada.get("/admin/audit", params={"user": "nobody"}).text
    assert "No audit entries match these filters." in nobody
