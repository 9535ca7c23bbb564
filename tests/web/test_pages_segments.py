"""Data > Segments in the console: the list with counts, a filter's live count, defining, loading, removing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pytest
from fastapi.testclient import TestClient

from segport import Workspace

from .conftest import csrf_of

XSS = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


@pytest.fixture
def profiled(web_ws: Workspace, make_profiles: Callable[..., Path]) -> Workspace:
    """The workspace with 30 profiles (countries FR, DE, US in turn) and a segment ``french``."""
    web_ws.load_profiles(make_profiles(30))
    web_ws.define_segment("french", "country = 'FR'")
    return web_ws


def test_the_list_shows_segments_with_their_members(
    signed_in: Callable[[str], TestClient], profiled: Workspace
) -> None:
    html = signed_in("vera").get("/data/segments").text
    assert "<h1>Segments</h1>" in html
    assert re.findall(r'<th scope="col">([^<]+)</th>', html)[:3] == ["Name", "Kind", "Members"]
    assert re.search(r"<td>french</td>\s*<td>filter</td>\s*<td class=\"num\">10</td>", html)


def test_a_viewer_gets_no_write_controls_and_a_forged_post_is_refused(
    signed_in: Callable[[str], TestClient], profiled: Workspace
) -> None:
    browser = signed_in("vera")
    html = browser.get("/data/segments").text
    assert "Define a segment" not in html and "Save segment" not in html and "Remove" not in html
    token = browser.cookies["segport_csrf"]
    forged = browser.post("/data/segments", data={"csrftoken": token, "name": "mine", "where": "age > 1"})
    assert forged.status_code == 403
    assert browser.post("/data/segments/french/remove", data={"csrftoken": token}).status_code == 403
    assert [s.name for s in profiled.list_segments()] == ["french"]


def test_the_filter_field_counts_its_matches_live(signed_in: Callable[[str], TestClient], profiled: Workspace) -> None:
    browser = signed_in("carl")
    html = browser.get("/data/segments").text
    field = re.search(r'<input id="segment-where"[^>]*>', html, re.S)
    assert field is not None
    assert 'hx-get="/data/segments/count"' in field.group(0)
    assert 'hx-trigger="input changed delay:300ms"' in field.group(0)
    assert "10 profiles match" in browser.get("/data/segments/count", params={"where": "country = 'DE'"}).text
    assert "30 profiles match" in browser.get("/data/segments/count", params={"where": "age >= 0"}).text
    broken = browser.get("/data/segments/count", params={"where": "country =="}).text
    assert 'class="field-error"' in broken and "profiles match" not in broken
    unknown = browser.get("/data/segments/count", params={"where": "contry = 'FR'"}).text
    assert "0 profiles match" in unknown
    assert "No profile has the attribute contry (did you mean country?)" in unknown


def test_saving_a_segment_defines_it(signed_in: Callable[[str], TestClient], profiled: Workspace) -> None:
    browser = signed_in("carl")
    token = csrf_of(browser.get("/data/segments").text)
    answer = browser.post("/data/segments", data={"csrftoken": token, "name": "germans", "where": "country = 'DE'"})
    assert answer.status_code == 303 and answer.headers["location"] == "/data/segments"
    assert "Segment germans saved." in browser.get("/data/segments").text
    assert {s.name: s.members for s in profiled.list_segments()} == {"french": 10, "germans": 10}


def test_a_bad_filter_is_shown_next_to_its_field(signed_in: Callable[[str], TestClient], profiled: Workspace) -> None:
    browser = signed_in("carl")
    token = csrf_of(browser.get("/data/segments").text)
    answer = browser.post("/data/segments", data={"csrftoken": token, "name": "bad", "where": "country =="})
    assert answer.status_code == 422
    assert '<p class="field-error" id="where-error">' in answer.text
    assert 'value="country =="' in answer.text  # what was typed stays
    assert [s.name for s in profiled.list_segments()] == ["french"]


def test_a_segment_is_loaded_from_a_keys_file(
    signed_in: Callable[[str], TestClient], profiled: Workspace, tmp_path: Path
) -> None:
    browser = signed_in("carl")
    token = csrf_of(browser.get("/data/segments").text)
    keys = "id\np000001\np000002\nnobody\n"
    answer = browser.post(
        "/data/segments/load",
        data={"csrftoken": token, "name": "picked", "key": "id"},
        files={"keys_file": ("keys.csv", keys.encode(), "text/csv")},
    )
    assert answer.status_code == 303, answer.text
    assert "Segment picked loaded: 2 members; 1 keys name no profile." in browser.get("/data/segments").text
    broken = browser.post(
        "/data/segments/load",
        data={"csrftoken": token, "name": "other", "key": "customer"},
        files={"keys_file": ("keys.csv", keys.encode(), "text/csv")},
    )
    assert broken.status_code == 422
    assert re.search(
        r'<p class="field-error" id="keys_file-error">keys.csv has no column &#39;customer&#39;', broken.text
    )


def test_removal_asks_first(signed_in: Callable[[str], TestClient], profiled: Workspace) -> None:
    browser = signed_in("carl")
    confirm = browser.get("/data/segments/french/remove")
    assert "Remove segment french?" in confirm.text and "10 members" in confirm.text
    assert [s.name for s in profiled.list_segments()] == ["french"]  # asking removed nothing
    answer = browser.post("/data/segments/french/remove", data={"csrftoken": csrf_of(confirm.text)})
    assert answer.status_code == 303
    assert profiled.list_segments() == []
    assert browser.get("/data/segments/french/remove").status_code == 404


def test_a_segment_named_like_markup_is_shown_as_text(
    signed_in: Callable[[str], TestClient], profiled: Workspace
) -> None:
    profiled.define_segment(XSS, "country = 'US'")
    browser = signed_in("carl")
    for html in [browser.get("/data/segments").text]:
        assert "<script>alert(2)</script>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    confirm = browser.get("/data/segments/" + XSS.replace("/", "%2F").replace("?", "%3F") + "/remove")
    assert confirm.status_code == 200
    assert "<script>alert(2)</script>" not in confirm.text
