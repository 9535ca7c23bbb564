"""Admin > Connections in the console: list, add (type, then the generated form), page, test, edit, remove."""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import pytest
import requests
from fastapi.testclient import TestClient

from segport import Workspace
from segport.testing.fakes import MemoryPlatform
from segport.workspace import PRIVACY_NOTICE
from segport_mailchimp.sandbox import MailchimpSandbox

from .conftest import KEY, SECRET_KEY, XSS, csrf_of


def post(browser: TestClient, path: str, data: dict[str, Any] | None = None, page: str | None = None) -> Any:
    """POST a form as the browser would: with the CSRF token of ``page`` (default: the path's own GET)."""
    token = browser.cookies.get("segport_csrf") or csrf_of(browser.get(page or "/admin/connections").text)
    return browser.post(path, data={"csrftoken": token, **(data or {})})


def test_an_admin_sees_every_connection_with_who_may_use_it_and_health(
    world: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    page = signed_in("ada").get("/admin/connections")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Connections</h1>" in html
    for header in ["Name", "Type", "Who may use it", "Health"]:
        assert f'<th scope="col">{header}</th>' in html
    assert '<a href="/admin/connections/vault">vault</a>' in html
    assert "Admins only" in html and "Admins and contributors" in html
    assert "Checked: " in html  # the account the last check reached, from the store
    assert '<a class="button" href="/admin/connections/new">Add connection</a>' in html
    assert SECRET_KEY not in html and KEY not in html


@pytest.mark.parametrize("user", ["carl", "vera"])
def test_others_see_only_shared_connections_by_name_and_type(
    user: str, world: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in(user)
    html = browser.get("/admin/connections").text
    assert "team" in html and "vault" not in html
    assert "Who may use it" not in html and "Health" not in html and "Checked" not in html
    assert "Add connection" not in html and "/admin/connections/team" not in html
    assert SECRET_KEY not in html and KEY not in html
    for path in ["/admin/connections/vault", "/admin/connections/team", "/admin/connections/team/edit"]:
        refused = browser.get(path)
        assert refused.status_code == 403, path
        assert SECRET_KEY not in refused.text and KEY not in refused.text
    assert browser.get("/admin/connections/new").status_code == 403


@pytest.mark.parametrize("user", ["carl", "vera"])
def test_a_forged_post_by_a_non_admin_is_refused_by_the_service(
    user: str, world: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in(user)
    form = {"type": "memory", "name": "forged", "share": "admins", "agree": "yes", "cfg-api_key": KEY}
    assert post(browser, "/admin/connections/new", form).status_code == 403
    assert post(browser, "/admin/connections/team/remove").status_code == 403
    assert post(browser, "/admin/connections/team/edit", {"name": "renamed"}).status_code == 403
    assert post(browser, "/admin/connections/team/test").status_code == 403
    world.context.user_name = "ada"
    assert {c.name for c in world.list_connections()} == {"vault", "team"}


def test_add_connection_asks_the_type_then_the_form_from_its_schema(
    web_ws: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in("ada")
    first = browser.get("/admin/connections/new").text
    assert '<label for="type">Type</label>' in first
    assert '<option value="mailchimp">Mailchimp</option>' in first and ">Continue</button>" in first
    html = browser.get("/admin/connections/new?type=mailchimp").text
    assert '<label for="name">Display name' in html
    assert "<legend>Who may use it</legend>" in html
    assert "> Admins only</label>" in html and "> Admins and contributors</label>" in html
    assert PRIVACY_NOTICE.replace("'", "&#39;") in html and "> I agree</label>" in html
    assert ">Authenticate with Mailchimp</button>" in html and ">Save connection</button>" in html
    # the schema's fields: a select for the enum, a password input for each secret, hints from descriptions
    assert '<select id="cfg-auth_method" name="cfg-auth_method"' in html
    assert re.search(r'<input id="cfg-api_key" name="cfg-api_key" type="password" value=""', html)
    assert re.search(r'<input id="cfg-client_secret" name="cfg-client_secret" type="password" value=""', html)
    assert "(Account &gt; Extras &gt; API keys). Required when auth_method is not oauth2." in html
    assert 'inputmode="decimal" value="120"' in html  # timeout_s, with its default


def test_add_connection_without_i_agree_shows_the_error_next_to_the_checkbox(
    web_ws: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in("ada")
    form = {"type": "memory", "name": "mem", "share": "admins", "cfg-api_key": SECRET_KEY, "cfg-account": "acme"}
    answer = post(browser, "/admin/connections/new", form, "/admin/connections/new?type=memory")
    assert answer.status_code == 422
    html = answer.text
    assert '<p class="field-error" id="agree-error">' in html
    assert re.search(r'<input id="agree" name="agree" type="checkbox" value="yes" aria-describedby="agree-error"', html)
    assert SECRET_KEY not in html  # never echoed back
    assert 'value="acme"' in html and 'value="mem"' in html  # the rest is kept
    assert web_ws.list_connections() == []


def test_a_bad_config_value_shows_its_error_next_to_its_field(
    web_ws: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in("ada")
    form = {"type": "memory", "name": "mem", "share": "admins", "agree": "yes", "cfg-api_key": "tiny7ab"}
    answer = post(browser, "/admin/connections/new", form, "/admin/connections/new?type=memory")
    assert answer.status_code == 422
    html = answer.text
    error = re.search(r'<p class="field-error" id="cfg-api_key-error">([^<]*)</p>', html)
    assert error and "minLength" in error.group(1)
    assert re.search(r'id="cfg-api_key"[^>]*aria-describedby="cfg-api_key-error', html)
    assert "tiny7ab" not in html
    assert web_ws.list_connections() == []


def test_a_value_that_is_not_a_number_is_refused_before_the_service(
    web_ws: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in("ada")
    form = {"type": "mailchimp", "name": "mc", "share": "admins", "agree": "yes", "cfg-timeout_s": "soon",
            "cfg-api_key": "0" * 32 + "-us1"}  # fmt: skip
    answer = post(browser, "/admin/connections/new", form, "/admin/connections/new?type=mailchimp")
    assert answer.status_code == 422
    assert re.search(r'id="cfg-timeout_s-error">&#39;soon&#39; is not a number<', answer.text)
    assert "0" * 32 not in answer.text


def test_adding_a_connection_saves_it_shared_and_checked(
    web_ws: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in("ada")
    form = {"type": "memory", "name": "mem", "share": "contributors", "agree": "yes", "cfg-api_key": SECRET_KEY}
    answer = post(browser, "/admin/connections/new", form, "/admin/connections/new?type=memory")
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/connections/mem"
    connection = web_ws.get_connection("mem")
    assert connection.share.value == "contributors" and connection.privacy_agreed_by == "ada"
    assert connection.config == {"account": "demo"}  # the default applied; the key stored encrypted
    page = browser.get("/admin/connections/mem").text
    assert "credentials were checked" in page and "Checked: " in page
    assert SECRET_KEY not in page and "api_key" in page  # the secret's name, never its value
    for button in ["Test connection"]:
        assert f">{button}</button>" in page
    assert ">Edit</a>" in page and ">Remove</a>" in page
    assert "Authenticate with" not in page  # the memory destination has no OAuth2


def test_authenticate_with_the_platform_saves_the_connection_and_goes_on_to_the_platform(
    web_ws: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in("ada")
    form = {"type": "mailchimp", "name": "mc", "share": "admins", "agree": "yes", "action": "authorize",
            "cfg-client_id": "app-1", "cfg-client_secret": "client-secret-value"}  # fmt: skip
    answer = post(browser, "/admin/connections/new", form, "/admin/connections/new?type=mailchimp")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("https://login.mailchimp.com/oauth2/authorize?")  # one click
    assert "client-secret-value" not in answer.headers["location"]
    assert web_ws.get_connection("mc").config["auth_method"] == "oauth2"
    page = browser.get("/admin/connections/mc").text
    assert "Now authenticate with Mailchimp" in page
    assert '<form method="post" action="/admin/connections/mc/authorize">' in page
    assert ">Authenticate with Mailchimp</button>" in page
    assert "client-secret-value" not in page
    tested = post(browser, "/admin/connections/mc/test")  # not authorized yet: a failed test, not a crash
    assert tested.status_code == 303
    assert "Test failed:" in browser.get("/admin/connections/mc").text


def test_test_connection_shows_its_answer_on_the_page_and_in_the_list(
    world: Workspace, signed_in: Callable[[str], TestClient], platform: MemoryPlatform
) -> None:
    browser = signed_in("ada")
    answer = post(browser, "/admin/connections/team/test")
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/connections/team"
    assert "The connection works" in browser.get("/admin/connections/team").text
    platform.valid_keys = {"another-key-entirely"}  # the key was revoked at the platform
    post(browser, "/admin/connections/team/test")
    page = browser.get("/admin/connections/team").text
    assert "Test failed:" in page and KEY not in page
    assert "Test failed:" in browser.get("/admin/connections").text


def test_a_list_view_never_calls_the_platform(
    world: Workspace, signed_in: Callable[[str], TestClient], platform: MemoryPlatform, monkeypatch: Any
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the list called the platform")

    monkeypatch.setattr("segport.services.connections._check_credentials", refuse)
    assert signed_in("ada").get("/admin/connections").status_code == 200


def test_edit_renames_shares_and_keeps_a_blank_secret(world: Workspace, signed_in: Callable[[str], TestClient]) -> None:
    browser = signed_in("ada")
    html = browser.get("/admin/connections/vault/edit").text
    assert SECRET_KEY not in html and "Stored: leave blank to keep it." in html
    assert re.search(r'<input id="cfg-api_key" name="cfg-api_key" type="password" value=""', html)
    assert 'value="demo"' in html  # the other settings, filled in
    form = {"name": "vault2", "share": "contributors", "cfg-api_key": "", "cfg-account": "demo"}
    answer = post(browser, "/admin/connections/vault/edit", form)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/connections/vault2"
    connection = world.get_connection("vault2")
    assert connection.share.value == "contributors"
    assert world.connections.full_config(connection)["api_key"] == SECRET_KEY
    assert world.get_export("private-news").connection == "vault2"


def test_edit_rotates_a_secret_and_a_refused_edit_never_echoes_it(
    world: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in("ada")
    bad = post(browser, "/admin/connections/team/edit", {"name": "team", "share": "contributors",
                                                          "cfg-api_key": "short12"})  # fmt: skip
    assert bad.status_code == 422 and "short12" not in bad.text
    assert 'id="cfg-api_key-error"' in bad.text
    rotated = post(browser, "/admin/connections/team/edit", {"name": "team", "share": "contributors",
                                                              "cfg-api_key": "memory-key-rotated"})  # fmt: skip
    assert rotated.status_code == 303
    assert world.connections.full_config(world.get_connection("team"))["api_key"] == "memory-key-rotated"


def test_remove_lists_the_exports_that_will_stop_first(
    world: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    browser = signed_in("ada")
    html = browser.get("/admin/connections/team/remove").text
    assert "These exports will stop" in html and "team-news" in html and "private-news" not in html
    assert ">Remove connection</button>" in html
    answer = post(browser, "/admin/connections/team/remove")
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/connections"
    assert "1 export(s) stopped" in browser.get("/admin/connections").text
    export = world.get_export("team-news")
    assert export.detached and not export.enabled


@pytest.mark.parametrize("name", XSS)
def test_connection_names_a_user_typed_are_escaped(
    name: str, web_ws: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    web_ws.add_connection(name, "memory", {"api_key": KEY}, share="contributors", agree_privacy=True)
    for user in ["ada", "carl"]:
        html = signed_in(user).get("/admin/connections").text
        assert name not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    page = signed_in("ada").get(f"/admin/connections/{quote(name, safe='')}")
    assert page.status_code == 200 and name not in page.text


def test_no_page_of_these_screens_shows_a_secret(
    world: Workspace, signed_in: Callable[[str], TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    """Sweep every page of Admin > Connections and Data > Exports, as each role, and the server's log."""
    world.add_connection("oauth-app", "mailchimp", {"auth_method": "oauth2", "client_id": "app-1",
                                                    "client_secret": "oauth-client-secret-42"},
                         agree_privacy=True)  # fmt: skip
    secrets = [SECRET_KEY, KEY, "oauth-client-secret-42"]
    pages = ["/admin/connections", "/admin/connections/new", "/admin/connections/new?type=memory",
             "/admin/connections/new?type=mailchimp"]  # fmt: skip
    for name in ["vault", "team", "oauth-app"]:
        pages += [f"/admin/connections/{name}", f"/admin/connections/{name}/edit", f"/admin/connections/{name}/remove"]
    pages += ["/data/exports", "/data/exports/new", "/data/exports/new?connection=team",
              "/data/exports/audiences?connection=team", "/data/exports/audiences?connection=vault"]  # fmt: skip
    for name in ["private-news", "team-news"]:
        pages += [f"/data/exports/{name}", f"/data/exports/{name}/edit", f"/data/exports/{name}/remove"]
    with caplog.at_level("DEBUG"):
        for user in ["ada", "carl", "vera"]:
            browser = signed_in(user)
            for path in pages:
                html = browser.get(path).text
                assert not [s for s in secrets if s in html], (user, path)
            for path in ["/admin/connections/vault/test", "/data/exports/team-news/dry-run"]:
                assert not [s for s in secrets if s in post(browser, path).text], (user, path)
    assert not [s for s in secrets if s in caplog.text]


def test_add_connection_then_authenticate_with_mailchimp_end_to_end(
    web_ws: Workspace, signed_in: Callable[[str], TestClient]
) -> None:
    """The form's "Authenticate with Mailchimp" saves it and goes to the platform; the page's button does it again."""
    with MailchimpSandbox(seed=61) as sandbox:  # approves at once, as a signed-in Mailchimp user would
        browser = signed_in("ada")
        form = {"type": "mailchimp", "name": "Newsletter", "share": "contributors", "agree": "yes",
                "action": "authorize", "cfg-auth_method": "api_key", "cfg-client_id": "app-1",
                "cfg-client_secret": "console-app-secret-77", "cfg-oauth_base_url": sandbox.base_url}  # fmt: skip
        saved = post(browser, "/admin/connections/new", form, "/admin/connections/new?type=mailchimp")
        assert saved.status_code == 303 and saved.headers["location"].startswith(sandbox.base_url)  # one click
        page = browser.get("/admin/connections/Newsletter").text  # the user came back without allowing
        action = re.search(r'<form method="post" action="([^"]+/authorize)">', page)
        assert action and action.group(1) == "/admin/connections/Newsletter/authorize"
        gone = post(browser, action.group(1))
        assert gone.status_code == 303 and gone.headers["location"].startswith(sandbox.base_url)
        back = requests.get(gone.headers["location"], allow_redirects=False, timeout=10)
        assert back.status_code == 302
        parts = urlsplit(back.headers["location"])
        done = browser.get(f"{parts.path}?{parts.query}")
        assert done.status_code == 303 and done.headers["location"] == "/admin/connections/Newsletter"
        assert "authenticated with Mailchimp" in browser.get("/admin/connections/Newsletter").text
        post(browser, "/admin/connections/Newsletter/test")
        html = browser.get("/admin/connections").text
        assert "Works: Sandbox" in html and "console-app-secret-77" not in html
