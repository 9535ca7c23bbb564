"""Data > Profiles in the console: counts, uploading a file (and its one error line), browsing by filter."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Callable

from fastapi.testclient import TestClient

from segport import Workspace

from .conftest import csrf_of

CSV = "id,email,country\np1,a@example.com,FR\np2,b@example.com,DE\np3,c@example.com,FR\n"


def upload(browser: TestClient, name: str, body: bytes, **fields: str) -> TestClient:
    """Post the upload form as a browser does: the CSRF token first, then the fields and the file."""
    token = csrf_of(browser.get("/data/profiles").text)
    return browser.post(  # type: ignore[return-value]
        "/data/profiles",
        data={"csrftoken": token, **fields},
        files={"profiles_file": (name, body, "application/octet-stream")},
    )


def test_the_upload_form_has_the_products_labels(signed_in: Callable[[str], TestClient], web_ws: Workspace) -> None:
    html = signed_in("carl").get("/data/profiles").text
    assert "<h1>Profiles</h1>" in html
    form = re.search(r'<form method="post" action="/data/profiles" enctype="multipart/form-data".*?</form>', html, re.S)
    assert form is not None
    fields = re.findall(r'<input[^>]* name="([^"]+)"', form.group(0))
    assert fields[0] == "csrftoken"  # asgi-csrf reads the token before any file part
    assert '<label for="profiles-file">Profiles file</label>' in html
    assert '<label for="profiles-key">Key column</label>' in html
    assert 'value="1" >Replace all profiles</label>' in html or ">Replace all profiles</label>" in html
    assert '<button type="submit">Upload</button>' in html
    assert "Sources" not in html  # no sources service yet: no section for it


def test_an_upload_shows_the_loads_counts(signed_in: Callable[[str], TestClient], web_ws: Workspace) -> None:
    browser = signed_in("carl")
    answer = upload(browser, "people.csv", CSV.encode())
    assert answer.status_code == 303, answer.text
    page = browser.get("/data/profiles").text
    assert "Loaded 3 rows: 3 added, 0 updated, 0 unchanged, 0 removed; 3 profiles now." in page
    assert re.search(r"<dt>Profiles</dt><dd>3</dd>\s*<dt>Key column</dt><dd>id</dd>", page)
    changed = "id,email,country\np1,a@example.com,FR\np2,b@example.com,US\n"
    upload(browser, "again.csv.gz", gzip.compress(changed.encode()), replace="1")
    assert (
        "Loaded 2 rows: 0 added, 1 updated, 1 unchanged, 1 removed; 2 profiles now."
        in browser.get("/data/profiles").text
    )
    assert web_ws.count_profiles() == 2


def test_a_bad_file_is_one_line_next_to_the_file_field(
    signed_in: Callable[[str], TestClient], web_ws: Workspace
) -> None:
    browser = signed_in("carl")
    answer = upload(browser, "people.csv", b"email,country\na@example.com,FR\n")
    assert answer.status_code == 422
    errors = re.findall(r'<p class="field-error" id="profiles_file-error">([^<]+)</p>', answer.text)
    assert len(errors) == 1 and errors[0].startswith("people.csv has no column &#39;id&#39;")
    assert web_ws.count_profiles() == 0  # all rows or none
    upload(browser, "people.csv", CSV.encode())
    rekey = upload(browser, "people.csv", CSV.encode(), key="email")
    assert rekey.status_code == 422
    assert '<p class="field-error" id="key-error">this workspace&#39;s profiles are keyed by' in rekey.text


def test_profiles_are_browsed_by_filter(
    signed_in: Callable[[str], TestClient], web_ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "p.csv").write_text(CSV)
    web_ws.load_profiles(tmp_path / "p.csv")
    browser = signed_in("vera")
    html = browser.get("/data/profiles", params={"where": "country = 'FR'"}).text
    assert "2 profiles match" in html
    assert "<tr><td>p1</td><td>a@example.com</td><td>FR</td></tr>" in html
    assert "p2" not in html
    broken = browser.get("/data/profiles", params={"where": "country =="}).text
    assert '<p class="field-error" id="where-error">' in broken


def test_a_viewer_cannot_upload(signed_in: Callable[[str], TestClient], web_ws: Workspace) -> None:
    browser = signed_in("vera")
    html = browser.get("/data/profiles").text
    assert "Upload" not in html and "Profiles file" not in html
    assert upload(browser, "people.csv", CSV.encode()).status_code == 403
    assert web_ws.count_profiles() == 0


def test_an_upload_without_the_token_first_is_refused(
    signed_in: Callable[[str], TestClient], web_ws: Workspace
) -> None:
    browser = signed_in("carl")
    token = csrf_of(browser.get("/data/profiles").text)
    boundary = "segportboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="profiles_file"; filename="p.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{CSV}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrftoken"\r\n\r\n{token}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    assert browser.post("/data/profiles", content=body, headers=headers).status_code == 403
    no_token = browser.post("/data/profiles", files={"profiles_file": ("p.csv", CSV.encode(), "text/csv")})
    assert no_token.status_code == 403
    assert web_ws.count_profiles() == 0
