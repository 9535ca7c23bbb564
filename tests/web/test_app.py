"""The server's frame: signing in and out, CSRF, security headers, problem documents, the OpenAPI document."""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest
from fastapi.testclient import TestClient

from segport import Workspace
from segport.web.security import CSP

from .conftest import PASSWORDS, csrf_of


def test_the_sign_in_page_has_the_products_labels(client: TestClient) -> None:
    page = client.get("/login").text
    assert '<label for="username">Username</label>' in page
    assert '<label for="password">Password</label>' in page
    assert '<button type="submit">Log in</button>' in page


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"csrftoken": token, "username": "ada", "password": "nope-nope-nope"})
    unknown = client.post("/login", data={"csrftoken": token, "username": "nobody", "password": "nope-nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong username or password" in wrong.text
    assert "wrong username or password" in unknown.text
    assert "segport_session" not in wrong.headers.get("set-cookie", "")


def test_logout_ends_the_session_on_the_server(signed_in: Callable[[str], TestClient], app: Any) -> None:
    browser = signed_in("carl")
    assert browser.get("/api/v1/me").json() == {"name": "carl", "role": "contributor"}
    stolen = dict(browser.cookies)
    page = browser.get("/login?next=/api/v1/me")  # a signed-in user is sent on
    assert page.status_code == 303
    assert browser.post("/logout", data={"csrftoken": browser.cookies["segport_csrf"]}).status_code == 303
    with TestClient(app, follow_redirects=False, cookies=stolen) as replay:  # the old cookie, kept by an attacker
        assert replay.get("/api/v1/me").status_code == 401


def test_a_form_post_without_the_csrf_token_is_refused(signed_in: Callable[[str], TestClient]) -> None:
    browser = signed_in("ada")
    assert browser.post("/logout", data={}).status_code == 403
    assert browser.post("/logout", data={"csrftoken": "forged"}).status_code == 403
    assert browser.get("/api/v1/me").status_code == 200  # still signed in: nothing happened


def test_a_forged_sign_in_is_refused(client: TestClient) -> None:
    answer = client.post("/login", data={"username": "ada", "password": PASSWORDS["ada"]})
    assert answer.status_code == 403


def test_every_answer_carries_the_security_headers(client: TestClient) -> None:
    for path in ["/login", "/api/v1/me", "/static/segport.css"]:
        headers = client.get(path).headers
        assert headers["content-security-policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "'unsafe-inline'" not in CSP
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    assert client.get("/login").headers["cache-control"] == "no-store"


def test_the_session_cookie_is_httponly_and_samesite(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"csrftoken": token, "username": "vera", "password": PASSWORDS["vera"]})
    cookie = answer.headers["set-cookie"].lower()
    assert "segport_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_api_anonymous_is_a_401_problem_document(client: TestClient) -> None:
    answer = client.get("/api/v1/me")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == 401 and body["code"] == "PERMISSION_DENIED" and body["exit_status"] == 6
    assert body["title"] == "Unauthorized" and body["instance"] == "/api/v1/me"
    assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer segport_not-a-token", "Basic YWRhOmFkYQ==", "Bearer "])
def test_api_bad_credentials_are_401(client: TestClient, header: str) -> None:
    answer = client.get("/api/v1/me", headers={"Authorization": header})
    assert answer.status_code == 401
    assert answer.json()["code"] == "PERMISSION_DENIED"


def test_api_token_authenticates_its_user(client: TestClient, bearer: Callable[[str], dict[str, str]]) -> None:
    assert client.get("/api/v1/me", headers=bearer("vera")).json() == {"name": "vera", "role": "viewer"}


def test_the_openapi_document_describes_the_api(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/me" in document["paths"]
    assert not any(path.startswith(("/login", "/data")) for path in document["paths"])


def test_sign_in_never_redirects_off_the_server(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    for target in ["https://evil.example/", "//evil.example/", "/\\evil.example"]:
        answer = client.post(
            "/login", data={"csrftoken": token, "username": "ada", "password": PASSWORDS["ada"], "next": target}
        )
        assert answer.headers["location"] == "/"


def test_the_log_shows_no_password_token_or_query(
    client: TestClient, web_ws: Workspace, caplog: pytest.LogCaptureFixture, bearer: Callable[[str], dict[str, str]]
) -> None:
    invite = web_ws.identities.invite("carl")
    headers = bearer("ada")
    with caplog.at_level(logging.INFO, logger="segport.web"):
        token = csrf_of(client.get(f"/invite/{invite}").text)
        client.post("/invite", data={"csrftoken": token, "token": invite, "password": "x" * 12, "confirm": "x" * 12})
        client.get("/api/v1/me?code=secret-code", headers=headers)
    logged = caplog.text
    assert "GET /invite/…" in logged and "GET /api/v1/me" in logged and "user=ada" in logged
    for secret in [invite, "x" * 12, "secret-code", headers["Authorization"].split()[1]]:
        assert secret not in logged


def test_an_invite_sets_the_password_once(client: TestClient, web_ws: Workspace, app: Any) -> None:
    invite = web_ws.identities.invite("carl")
    token = csrf_of(client.get(f"/invite/{invite}").text)
    form = {"csrftoken": token, "token": invite, "password": "new-carl-password", "confirm": "new-carl-password"}
    assert client.post("/invite", data=form).status_code == 303
    assert client.get("/api/v1/me").json()["name"] == "carl"  # signed in by the invite
    with TestClient(app, follow_redirects=False) as other:
        token = csrf_of(other.get(f"/invite/{invite}").text)
        again = other.post("/invite", data={**form, "csrftoken": token})
        assert again.status_code == 422
