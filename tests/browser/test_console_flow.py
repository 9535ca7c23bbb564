"""The console's flow in a real browser (headless distribution chromium), as the issue tells it.

An admin signs in and adds a Mailchimp connection against the sandbox ("I agree"; the API-key form,
then "Authenticate with Mailchimp" through the sandbox's consent page) and shares it; a contributor
signs in, sees it by name and type only, adds a destination (Save sends nothing), runs it, watches its
progress and reads the counts and a reject's reason; the audience at the sandbox is exactly the segment.
A viewer sees no write controls; forged posts (from another origin, or a fetch without the CSRF token)
are refused; names typed as script do nothing; every screen fits a phone; logout ends the session.

One test walks it all in order (each step a function): the steps share one server and its state.
With ``SEGPORT_SCREENSHOTS=docs/console`` it also saves the screenshots docs/console.md shows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, cast

import pytest

from .console import (  # noqa: F401 (fixtures: attacker_site, console)
    IMG_NAME,
    INVALID_EMAIL,
    NEWSLETTER,
    PASSWORDS,
    PROFILES,
    SCRIPT_NAME,
    Console,
    attacker_site_fixture,
    console_fixture,
)

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Dialog, Page

pytestmark = [pytest.mark.e2e]

# Read at import: the tests' environment is cleared of SEGPORT_* variables (tests/conftest.py).
_SHOTS = os.environ.get("SEGPORT_SCREENSHOTS")
SCREENSHOTS = Path(_SHOTS).resolve() if _SHOTS else None
WAIT_MS = 20_000  # the longest any step waits for the page to show something (a run ending, a redirect)
CONNECTION = "Shop newsletter"
OAUTH_CONNECTION = "Shop (OAuth)"
EXPORT = "Newsletter to Mailchimp"
WRITE_CONTROLS = (
    *("Run now", "Dry run", "Disable", "Enable", "Edit", "Remove"),
    *("Save", "Save segment", "Load segment", "Upload", "Invite", "Test connection"),
)


@dataclass
class Watched:
    """One browser page and what it must never do: open a dialog, break the CSP, throw, show a secret."""

    page: Page
    console: Console
    secrets: tuple[str, ...]
    dialogs: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("dialog", self._dialog)
        self.page.on("console", self._message)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.set_default_timeout(WAIT_MS)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _message(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.violations.append(message.text)

    def check(self) -> None:
        """Assert nothing ran that should not have and that the page shows no secret."""
        html = self.page.content()
        assert self.dialogs == [], self.dialogs
        assert self.violations == [], self.violations
        assert self.errors == [], self.errors
        assert self.page.title() != "pwned", "a typed name ran as script"
        assert self.page.locator("script:not([src])").count() == 0, "an inline script reached the page"
        assert self.page.locator("img[src='x']").count() == 0, "a typed name became an element"
        for secret in self.secrets:
            assert secret not in html, f"a secret is in the HTML of {self.page.url}"

    def go(self, path: str) -> None:
        """Open a path of the console and check the page."""
        self.page.goto(self.console.url + path)
        self.check()

    def menu(self, label: str) -> None:
        """Follow a link of the main menu, e.g. ``Admin › Connections``."""
        self.page.get_by_role("navigation", name="Main").get_by_role("link", name=label, exact=True).click()
        self.page.wait_for_load_state()
        self.check()

    def shot(self, name: str) -> None:
        """Save a screenshot as ``NAME.png`` under $SEGPORT_SCREENSHOTS (only when it is set)."""
        if SCREENSHOTS is not None:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.evaluate("window.scrollTo(0, 0)")  # the screen as it opens, not where a field scrolled it
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def expect() -> Any:
    """Return Playwright's ``expect``, waiting up to :data:`WAIT_MS` (imported late: the test may skip)."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT_MS)
    return playwright_expect


def sign_in(watched: Watched, name: str) -> None:
    """Sign in through the form by its labels; the console opens on Data > Exports."""
    page = watched.page
    page.goto(watched.console.url + "/")
    expect()(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Log in").click()
    expect()(page).to_have_url(re.compile(r"/data/exports$"))
    expect()(page.get_by_role("button", name="Log out")).to_be_visible()
    watched.check()


def choose(page: Page, label: str, text: str) -> None:
    """Select the option of the select labelled ``label`` whose text contains ``text``."""
    select = page.get_by_label(label, exact=True)
    option = select.locator("option", has_text=text).first
    select.select_option(value=option.get_attribute("value"))


def fill_first(page: Page, labels: tuple[str, ...], value: str) -> None:
    """Fill the first field labelled one of ``labels`` (a schema title, or the bare key; "(required)" may follow)."""
    for label in labels:
        found = page.get_by_label(re.compile(rf"^\s*{re.escape(label)}(\s+\(required\))?\s*$"))
        if found.count():
            found.first.fill(value)
            return
    raise AssertionError(f"no field labelled any of {labels} on {page.url}")


# -- the steps, in the order of the flow ---------------------------------------------------------------


def step_sign_in_is_refused_with_a_wrong_password(watched: Watched) -> None:
    page = watched.page
    page.goto(watched.console.url + "/data/exports")
    expect()(page).to_have_url(re.compile(r"/login\?next="))
    watched.shot("sign-in")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Log in").click()
    expect()(page.get_by_role("alert")).to_be_visible()
    expect()(page.get_by_role("button", name="Log in")).to_be_visible()
    watched.check()


def step_admin_adds_the_api_key_connection(watched: Watched) -> None:
    page, sandbox = watched.page, watched.console.sandbox
    watched.menu("Admin › Connections")
    expect()(page.get_by_role("heading", level=1)).to_have_text("Connections")
    page.get_by_role("link", name="Add connection").click()
    page.get_by_label("Type", exact=True).select_option(label="Mailchimp")
    page.get_by_role("button", name="Continue").click()
    expect()(page).to_have_url(re.compile(r"/admin/connections/new\?type=mailchimp"))
    watched.check()
    page.get_by_label("Display name").fill(CONNECTION)
    page.get_by_role("radio", name="Admins and contributors").check()
    page.get_by_role("checkbox", name="I agree").check()
    # a malformed key first: its error shows next to its field, which points at it
    fill_first(page, ("api_key", "API key", "Mailchimp API key"), "not-a-key")
    fill_first(page, ("api_base_url", "API base URL"), sandbox.api_base_url)
    watched.shot("connection-new")
    page.get_by_role("button", name="Save connection").click()
    error = page.locator("p.field-error").first
    expect()(error).to_be_visible()
    error_id = error.get_attribute("id")
    assert error_id and page.locator(f"[aria-describedby~='{error_id}']").count() == 1
    watched.check()
    assert "not-a-key" not in page.content(), "a secret typed into the form came back in the page"
    # the page kept the display name and the choices; the secret is typed again
    expect()(page.get_by_label("Display name")).to_have_value(CONNECTION)
    fill_first(page, ("api_key", "API key", "Mailchimp API key"), sandbox.api_key)
    if not page.get_by_role("checkbox", name="I agree").is_checked():
        page.get_by_role("checkbox", name="I agree").check()
    if not page.get_by_role("radio", name="Admins and contributors").is_checked():
        page.get_by_role("radio", name="Admins and contributors").check()
    fill_first(page, ("api_base_url", "API base URL"), sandbox.api_base_url)
    page.get_by_role("button", name="Save connection").click()
    expect()(page).to_have_url(re.compile(r"/admin/connections/[^/?]+$"))
    expect()(page.get_by_role("heading", level=1)).to_contain_text(CONNECTION)
    watched.check()
    page.get_by_role("button", name="Test connection").click()
    expect()(page.get_by_role("status").first).to_be_visible()
    watched.check()
    watched.shot("connection")
    # edit: the stored secret is never shown again, not even in the form
    page.get_by_role("link", name="Edit").or_(page.get_by_role("button", name="Edit")).first.click()
    watched.check()
    secret_fields = page.locator("input[type='password']")
    assert secret_fields.count() >= 1
    for i in range(secret_fields.count()):
        assert secret_fields.nth(i).input_value() == "", "a stored secret is filled into the edit form"
    page.go_back()


def step_admin_authenticates_with_mailchimp(watched: Watched) -> None:
    page, sandbox = watched.page, watched.console.sandbox
    watched.go("/admin/connections/new?type=mailchimp")
    page.get_by_label("Display name").fill(OAUTH_CONNECTION)
    page.get_by_role("radio", name="Admins only").check()
    page.get_by_role("checkbox", name="I agree").check()
    method = page.get_by_label(re.compile(r"^\s*auth_method"))
    if method.count():
        method.first.select_option("oauth2")
    fill_first(page, ("client_id", "Client id", "OAuth2 client id"), "segport-console-test")
    fill_first(page, ("client_secret", "Client secret", "OAuth2 client secret"), "console-client-secret-17")
    fill_first(page, ("oauth_base_url", "OAuth base URL"), sandbox.base_url)
    page.get_by_role("button", name="Authenticate with Mailchimp").click()
    if page.url.startswith(watched.console.url):
        # saved first (its client id and secret checked), then the connection's page sends the browser on
        expect()(page.get_by_role("heading", level=1)).to_contain_text(OAUTH_CONNECTION)
        watched.check()
        page.get_by_role("button", name="Authenticate with Mailchimp").click()
    # the sandbox's consent page, on the platform's origin
    expect()(page).to_have_url(re.compile(re.escape(sandbox.base_url) + r"/oauth2/authorize"))
    expect()(page.get_by_role("heading", level=1)).to_contain_text("Authorize")
    watched.shot("oauth-consent")
    page.get_by_role("button", name="Allow").click()
    expect()(page).to_have_url(re.compile(re.escape(watched.console.url) + r"/admin/connections/[^/?]+$"))
    expect()(page.get_by_role("heading", level=1)).to_contain_text(OAUTH_CONNECTION)
    watched.check()
    assert "console-client-secret-17" not in page.content()
    watched.menu("Admin › Connections")
    table = page.get_by_role("table")
    expect()(table).to_contain_text(CONNECTION)
    expect()(table).to_contain_text(OAUTH_CONNECTION)
    watched.shot("connections")


def step_contributor_sees_the_shared_connection_by_name_and_type(watched: Watched) -> None:
    page = watched.page
    watched.menu("Admin › Connections")
    table = page.get_by_role("table")
    expect()(table).to_contain_text(CONNECTION)
    expect()(table).to_contain_text("Mailchimp")
    expect()(table).not_to_contain_text(OAUTH_CONNECTION)  # admins only
    html = page.content()
    assert watched.console.sandbox.base_url not in html, "a contributor sees the connection's endpoint"
    assert page.get_by_role("link", name="Add connection").count() == 0


def step_contributor_adds_a_destination(watched: Watched) -> None:
    page, console = watched.page, watched.console
    watched.menu("Data › Exports")
    expect()(page.get_by_role("heading", level=1)).to_have_text("Exports")
    page.get_by_role("link", name="Add destination").click()
    expect()(page).to_have_url(re.compile(r"/data/exports/new"))
    watched.check()
    assert page.get_by_label("Connection", exact=True).locator("option", has_text=OAUTH_CONNECTION).count() == 0
    page.get_by_label("Export name").fill(EXPORT)
    choose(page, "Connection", CONNECTION)
    audience = page.get_by_label("Audience", exact=True)
    expect()(audience.locator(f"option[value='{console.sandbox.audience_id}']")).to_have_count(1)
    audience.select_option(value=console.sandbox.audience_id)
    page.get_by_label("Email attribute").select_option("email")
    page.get_by_label("Destination field").first.fill("FNAME")
    page.get_by_label("Profile attribute").first.select_option("first_name")
    page.get_by_role("checkbox", name="Newsletter (4 profiles)").check()
    watched.shot("export-new")
    page.get_by_role("button", name="Save", exact=True).click()
    expect()(page).to_have_url(re.compile(r"/data/exports/[^/?]+$"))
    expect()(page.get_by_role("heading", level=1)).to_contain_text(EXPORT)
    watched.check()
    assert console.writes() == [], "saving an export sent something to the platform"
    assert console.sandbox.members() == []


def step_contributor_runs_it_and_watches(watched: Watched) -> None:
    page, console = watched.page, watched.console
    console.hold.hold()
    try:
        watched.shot("export")
        page.get_by_role("button", name="Run now").click()
        expect()(page).to_have_url(re.compile(r"/runs/\d+$"))
        progress = page.locator("#progress[role='status']")
        assert console.hold.waiting.wait(WAIT_MS / 1000), "the run never reached the platform"
        expect()(progress).to_contain_text("running")
        watched.check()
        watched.shot("run-progress")
    finally:
        console.hold.release()
    expect()(progress).to_contain_text("succeeded")  # htmx polls the progress until the run ends
    page.reload()  # the finished page: counts and the rejects table
    watched.check()
    expect()(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"Run \d+"))
    rejects = page.get_by_role("table", name="Rejects")
    row = rejects.get_by_role("row").filter(has_text=INVALID_EMAIL)
    expect()(row).to_have_count(1)
    expect()(row).to_contain_text("not a valid address")
    watched.shot("run")
    members = {m.email: m.fields.get("FNAME") for m in console.sandbox.members()}
    assert members == NEWSLETTER, "the audience at the platform is not exactly the segment"
    watched.menu("Data › Runs")
    row = page.get_by_role("row").filter(has_text=EXPORT)
    expect()(row).to_have_count(1)
    for word in ("succeeded", "manual", "carl"):
        expect()(row).to_contain_text(word)
    watched.shot("runs")
    watched.menu("Data › Exports")
    row = page.get_by_role("row").filter(has_text=EXPORT)
    expect()(row).to_contain_text(re.compile("succeeded", re.IGNORECASE))
    expect()(row).to_contain_text(re.compile(r"3 created, 1 rejected"))
    watched.shot("exports")


def step_names_typed_as_script_do_nothing(watched: Watched) -> None:
    page, audience_id = watched.page, watched.console.sandbox.audience_id
    # a segment defined by filter, its matches counted live as the filter is typed
    watched.menu("Data › Segments")
    define = page.get_by_role("form", name="Define a segment")
    define.get_by_label("Segment name").fill(SCRIPT_NAME)
    define.get_by_label("Filter", exact=True).fill("newsletter = 'no'")
    expect()(page.locator("#filter-count")).to_contain_text("2")
    watched.shot("segments-define")
    define.get_by_role("button", name="Save segment").click()
    expect()(page.get_by_role("table")).to_contain_text(SCRIPT_NAME)
    watched.check()
    # an export named as an element with a handler, of that segment
    watched.go("/data/exports/new")
    page.get_by_label("Export name").fill(IMG_NAME)
    choose(page, "Connection", CONNECTION)
    audience = page.get_by_label("Audience", exact=True)
    expect()(audience.locator(f"option[value='{audience_id}']")).to_have_count(1)
    audience.select_option(value=audience_id)
    page.get_by_label("Email attribute").select_option("email")
    page.get_by_role("checkbox", name=f"{SCRIPT_NAME} (2 profiles)").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect()(page).to_have_url(re.compile(r"/data/exports/[^/?]+$"))
    watched.check()
    expect()(page.get_by_role("heading", level=1)).to_contain_text(IMG_NAME)
    expect()(page.locator("main")).to_contain_text(SCRIPT_NAME)
    shown_on = {"/data/exports": IMG_NAME, "/data/segments": SCRIPT_NAME, "/data/exports/new": SCRIPT_NAME}
    for path, shown in shown_on.items():
        watched.go(path)
        expect()(page.locator("main")).to_contain_text(shown)


def step_forged_posts_are_refused(watched: Watched, attacker_site: Callable[[str], str]) -> str:
    """Refuse a run posted without the CSRF token; return the URL the Run now form posts to."""
    page, console = watched.page, watched.console
    watched.go("/data/exports")
    page.get_by_role("link", name=EXPORT).click()
    run_form = page.locator("form", has=page.get_by_role("button", name="Run now"))
    action = run_form.get_attribute("action")
    assert action, "the Run now button is not in a form with an action"
    target = action if action.startswith("http") else console.url + action
    runs_before = len(console.writes())
    # a page of another origin (same site: the browser sends the cookies) posts the form without the token
    forged = attacker_site(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Win a prize</title></head>
<body><form method="post" action="{target}"><button type="submit">Claim</button></form></body></html>"""
    )
    page.goto(forged)
    with page.expect_response(lambda r: r.url == target) as answer:
        page.get_by_role("button", name="Claim").click()
    assert answer.value.status == 403
    # the console's own page, a fetch without the token
    watched.go("/data/exports")
    status = page.evaluate(
        "async (url) => (await fetch(url, {method: 'POST', credentials: 'same-origin'})).status", target
    )
    assert status == 403
    assert len(console.writes()) == runs_before, "a forged post reached the platform"
    return target


def step_viewer_sees_no_write_controls(watched: Watched, export_path: str, run_url: str) -> None:
    page = watched.page
    for path in (
        "/data/exports",
        export_path,
        "/data/segments",
        "/data/profiles",
        "/runs",
        "/runs/1",
        "/admin/connections",
        "/admin/users",
        "/admin/schedule",
    ):
        watched.go(path)
        posting = page.locator("main form[method='post' i], main [hx-post], main [hx-put], main [hx-delete]")
        assert posting.count() == 0, f"{path} offers a viewer a form that writes"
        for name in WRITE_CONTROLS:
            assert page.get_by_role("button", name=name, exact=True).count() == 0, f"{name!r} on {path}"
        for name in ("Add destination", "Add connection", "Edit", "Remove"):
            assert page.get_by_role("link", name=name).count() == 0, f"{name!r} on {path}"
    # a forged run with a real token (as the viewer): the service refuses it
    watched.go(export_path)
    token = page.locator("body").get_attribute("hx-headers") or ""
    csrf = re.search(r'"x-csrftoken":\s*"([^"]+)"', token)
    assert csrf, "the page carries no CSRF token for htmx"
    status = page.evaluate(
        """async ([url, token]) => (await fetch(url, {method: 'POST', credentials: 'same-origin',
            headers: {'x-csrftoken': token}})).status""",
        [run_url, csrf.group(1)],
    )
    assert status == 403, status


def step_admin_screens(watched: Watched) -> None:
    page = watched.page
    for label, shot, heading in (
        ("Data › Segments", "segments", "Segments"),
        ("Data › Profiles", "profiles", "Profiles"),
        ("Admin › Users", "users", "Users"),
        ("Admin › Schedule", "schedule", "Schedule"),
        ("Admin › Audit", "audit", "Audit"),
    ):
        watched.menu(label)
        expect()(page.get_by_role("heading", level=1)).to_contain_text(heading)
        watched.shot(shot)
    audit = page.locator("main")
    expect()(audit).to_contain_text("carl")
    expect()(audit).to_contain_text(IMG_NAME)  # the typed names, as text in the audit too
    watched.check()


def step_admin_uploads_profiles(watched: Watched) -> None:
    """Upload a file through the browser: a multipart form, its CSRF token first (the same rows: unchanged)."""
    page = watched.page
    watched.menu("Data › Profiles")
    page.get_by_label("Profiles file").set_input_files(
        files=[{"name": "profiles.csv", "mimeType": "text/csv", "buffer": PROFILES.encode("utf-8")}]
    )
    page.get_by_label("Key column").fill("customer_id")
    page.get_by_role("button", name="Upload").click()
    expect()(page.locator("main")).to_contain_text("6 unchanged")
    watched.check()


def step_every_screen_fits_a_phone(watched: Watched, export_path: str) -> None:
    page = watched.page
    for path, shot in (
        ("/data/exports", "phone-exports"),
        (export_path, None),
        ("/data/exports/new", None),
        ("/data/segments", None),
        ("/data/profiles", None),
        ("/runs", None),
        ("/runs/1", "phone-run"),
        ("/admin/connections", None),
        ("/admin/connections/new?type=mailchimp", None),
        ("/admin/users", None),
        ("/admin/schedule", None),
        ("/admin/audit", None),
    ):
        watched.go(path)
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{path} overflows a phone's width: {width}"
        if shot:
            watched.shot(shot)


def step_logout_ends_the_session(watched: Watched, new_page: Callable[..., Page]) -> None:
    page, console = watched.page, watched.console
    watched.go("/data/exports")
    cookies = page.context.cookies()
    page.get_by_role("button", name="Log out").click()
    expect()(page).to_have_url(re.compile(r"/login"))
    expect()(page.get_by_role("button", name="Log in")).to_be_visible()
    page.go_back()
    expect()(page.get_by_role("button", name="Log in")).to_be_visible()
    expect()(page.get_by_role("button", name="Log out")).to_have_count(0)
    replay = new_page()
    replay.context.add_cookies(cast(Any, cookies))  # the old session cookie, replayed
    replay.goto(console.url + "/data/exports")
    expect()(replay).to_have_url(re.compile(r"/login"))
    expect()(replay.get_by_role("button", name="Log in")).to_be_visible()


def test_console_flow(console: Console, new_page: Callable[..., Page], attacker_site: Callable[[str], str]) -> None:
    from segport.testing.browser import PHONE

    secrets = (console.sandbox.api_key, "console-client-secret-17", *PASSWORDS.values())

    ada = Watched(new_page(), console, secrets)
    step_sign_in_is_refused_with_a_wrong_password(ada)
    sign_in(ada, "ada")
    step_admin_adds_the_api_key_connection(ada)
    step_admin_authenticates_with_mailchimp(ada)

    carl = Watched(new_page(), console, secrets)
    sign_in(carl, "carl")
    step_contributor_sees_the_shared_connection_by_name_and_type(carl)
    step_contributor_adds_a_destination(carl)
    export_path = carl.page.url.removeprefix(console.url)
    step_contributor_runs_it_and_watches(carl)
    step_names_typed_as_script_do_nothing(carl)
    run_url = step_forged_posts_are_refused(carl, attacker_site)

    vera = Watched(new_page(), console, secrets)
    sign_in(vera, "vera")
    step_viewer_sees_no_write_controls(vera, export_path, run_url)

    step_admin_screens(ada)
    step_admin_uploads_profiles(ada)
    phone = Watched(new_page(viewport=PHONE), console, secrets)
    sign_in(phone, "ada")
    step_every_screen_fits_a_phone(phone, export_path)
    step_logout_ends_the_session(ada, new_page)

    log = console.server_log()
    assert "Traceback" not in log, log
    for secret in secrets:
        assert secret not in log, "a secret reached the server's log"
