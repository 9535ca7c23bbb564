"""Admin > Users and the account page: invites shown once, roles, removal, passwords, API tokens."""

from __future__ import annotations

import re
from typing import Any, Callable

from fastapi.testclient import TestClient

from segport import Workspace

from .conftest import PASSWORDS, csrf_of

XSS = '"><img src=x onerror=alert(1)>'


def invite_link(html: str) -> str:
    """Return the invite link a page shows."""
    found = re.search(r'<a href="(http[^"]+/invite/[^"]+)">', html)
    assert found, html
    return found.group(1)


def test_the_list_shows_names_and_roles(signed_in: Callable[[str], TestClient]) -> None:
    html = signed_in("vera").get("/admin/users").text
    assert "<h1>Users</h1>" in html
    assert re.findall(r'<th scope="col">([^<]+)</th>', html) == ["Name", "Role"]
    assert re.search(r"<td>carl</td>\s*<td>contributor</td>", html)
    for control in ["Invite a user", "Change role", "Send a new invite", ">Remove<"]:
        assert control not in html  # a viewer sees no write control


def test_an_invite_adds_the_user_and_its_link_works_once(
    signed_in: Callable[[str], TestClient], web_ws: Workspace, app: Any
) -> None:
    admin = signed_in("ada")
    page = admin.get("/admin/users").text
    assert '<label for="invite-name">Username</label>' in page and '<label for="invite-role">Role</label>' in page
    assert '<button type="submit">Invite</button>' in page
    answer = admin.post("/admin/users", data={"csrftoken": csrf_of(page), "name": "dora", "role": "contributor"})
    assert answer.status_code == 200
    link = invite_link(answer.text)
    assert link.startswith("http://testserver/invite/")
    assert {u.name: u.role.value for u in web_ws.list_users()}["dora"] == "contributor"
    assert link not in admin.get("/admin/users").text  # shown once, kept nowhere
    path = link.removeprefix("http://testserver")
    with TestClient(app, follow_redirects=False) as dora:
        form = {"csrftoken": csrf_of(dora.get(path).text), "token": path.rsplit("/", 1)[1]}
        form |= {"password": "dora-password-1", "confirm": "dora-password-1"}
        assert dora.post("/invite", data=form).status_code == 303
        assert dora.get("/api/v1/me").json() == {"name": "dora", "role": "contributor"}
    with TestClient(app, follow_redirects=False) as again:
        form["csrftoken"] = csrf_of(again.get(path).text)
        assert again.post("/invite", data=form).status_code == 422  # the link worked once


def test_a_new_invite_voids_the_older_link(signed_in: Callable[[str], TestClient], app: Any) -> None:
    admin = signed_in("ada")
    token = csrf_of(admin.get("/admin/users").text)
    first = invite_link(admin.post("/admin/users/carl/invite", data={"csrftoken": token}).text)
    second = invite_link(admin.post("/admin/users/carl/invite", data={"csrftoken": token}).text)
    assert first != second
    with TestClient(app, follow_redirects=False) as carl:
        form = {"csrftoken": csrf_of(carl.get("/login").text), "password": "carl-new-pw-1", "confirm": "carl-new-pw-1"}
        assert carl.post("/invite", data={**form, "token": first.rsplit("/", 1)[1]}).status_code == 422
        assert carl.post("/invite", data={**form, "token": second.rsplit("/", 1)[1]}).status_code == 303


def test_an_existing_name_is_refused_next_to_the_field(signed_in: Callable[[str], TestClient]) -> None:
    admin = signed_in("ada")
    answer = admin.post("/admin/users", data={"csrftoken": csrf_of(admin.get("/admin/users").text), "name": "carl"})
    assert answer.status_code == 422
    assert '<p class="field-error" id="name-error">' in answer.text and "/invite/" not in answer.text


def test_roles_change_and_the_last_admin_keeps_theirs(
    signed_in: Callable[[str], TestClient], web_ws: Workspace
) -> None:
    admin = signed_in("ada")
    token = csrf_of(admin.get("/admin/users").text)
    assert admin.post("/admin/users/vera/role", data={"csrftoken": token, "role": "contributor"}).status_code == 303
    assert "vera is now contributor." in admin.get("/admin/users").text
    admin.post("/admin/users/ada/role", data={"csrftoken": token, "role": "viewer"})
    assert "is the last admin and keeps that role" in admin.get("/admin/users").text
    assert {u.name: u.role.value for u in web_ws.list_users()} == {
        "ada": "admin",
        "carl": "contributor",
        "vera": "contributor",
    }


def test_removal_asks_first_and_the_last_admin_stays(signed_in: Callable[[str], TestClient], web_ws: Workspace) -> None:
    admin = signed_in("ada")
    confirm = admin.get("/admin/users/vera/remove")
    assert "Remove user vera?" in confirm.text
    assert admin.post("/admin/users/vera/remove", data={"csrftoken": csrf_of(confirm.text)}).status_code == 303
    assert "vera" not in [u.name for u in web_ws.list_users()]
    admin.post("/admin/users/ada/remove", data={"csrftoken": csrf_of(confirm.text)})
    assert "is the last admin: add another admin first" in admin.get("/admin/users").text


def test_forged_user_changes_by_non_admins_are_refused(
    signed_in: Callable[[str], TestClient], web_ws: Workspace
) -> None:
    carl = signed_in("carl")
    token = carl.cookies["segport_csrf"]
    assert carl.post("/admin/users", data={"csrftoken": token, "name": "mallory", "role": "admin"}).status_code == 403
    assert carl.post("/admin/users/carl/role", data={"csrftoken": token, "role": "admin"}).status_code == 403
    assert carl.post("/admin/users/ada/remove", data={"csrftoken": token}).status_code == 403
    assert carl.post("/admin/users/ada/invite", data={"csrftoken": token}).status_code == 403
    assert {u.name: u.role.value for u in web_ws.list_users()} == {
        "ada": "admin",
        "carl": "contributor",
        "vera": "viewer",
    }


def test_a_user_named_like_markup_is_shown_as_text(signed_in: Callable[[str], TestClient], web_ws: Workspace) -> None:
    web_ws.add_user(XSS, "viewer")
    html = signed_in("ada").get("/admin/users").text
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_the_header_links_the_user_name_to_the_account(signed_in: Callable[[str], TestClient]) -> None:
    html = signed_in("vera").get("/account").text
    assert '<a class="who" href="/account" aria-current="page">vera (viewer)</a>' in html


def test_a_password_change_checks_the_current_one(
    signed_in: Callable[[str], TestClient], app: Any, web_ws: Workspace
) -> None:
    vera = signed_in("vera")
    token = csrf_of(vera.get("/account").text)
    new = "vera-new-password-9"
    wrong = vera.post(
        "/account/password", data={"csrftoken": token, "current": "nope", "password": new, "confirm": new}
    )
    assert wrong.status_code == 422 and "the current password is wrong" in wrong.text
    differ = {"csrftoken": token, "current": PASSWORDS["vera"], "password": new, "confirm": new + "x"}
    assert vera.post("/account/password", data=differ).status_code == 422
    short = {"csrftoken": token, "current": PASSWORDS["vera"], "password": "short", "confirm": "short"}
    assert "too short" in vera.post("/account/password", data=short).text
    done = vera.post("/account/password", data={**differ, "confirm": new})
    assert done.status_code == 303
    assert vera.get("/api/v1/me").json()["name"] == "vera"  # this browser stays signed in
    assert web_ws.identities.login("vera", new, client=None).name == "vera"
    with TestClient(app, follow_redirects=False) as other:
        form = {"csrftoken": csrf_of(other.get("/login").text), "username": "vera", "password": PASSWORDS["vera"]}
        assert other.post("/login", data=form).status_code == 401  # the old password is gone


def test_api_tokens_are_shown_once_and_revoked(signed_in: Callable[[str], TestClient], client: TestClient) -> None:
    carl = signed_in("carl")
    token = csrf_of(carl.get("/account").text)
    created = carl.post("/account/tokens", data={"csrftoken": token, "name": "ci", "lifetime": "30"})
    assert created.status_code == 200
    secret = re.search(r'<code id="new-token">([^<]+)</code>', created.text)
    assert secret is not None
    headers = {"Authorization": f"Bearer {secret.group(1)}"}
    assert client.get("/api/v1/me", headers=headers).json()["name"] == "carl"
    listed = carl.get("/account").text
    assert secret.group(1) not in listed and "<td>ci</td>" in listed
    assert carl.post("/account/tokens/ci/revoke", data={"csrftoken": token}).status_code == 303
    assert "API token ci revoked." in carl.get("/account").text
    assert client.get("/api/v1/me", headers=headers).status_code == 401
