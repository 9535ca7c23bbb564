"""Admin > Connections: the list, "Add connection" (type, then the form), a connection's page, edit, remove.

The credentials form is generated from the plugin's connection schema (:mod:`segport.web.forms`);
secrets are never shown again, nor echoed back after a refused form. Health is what the store
knows (the account the last successful check reached) or the last "Test connection" result of this
browser: a list view never calls the platform.
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ...config import redact
from ...contract import Destination
from ...errors import NotFound, PermissionDenied, SegportError
from ...models import Connection
from ...workspace import PRIVACY_NOTICE, Workspace
from ..actor import PageUser
from ..forms import FORM_ERROR, FormErrors, errors_of, fields_of, properties, typed_values
from ..templating import flash, render
from .oauth import send_to_platform

router = APIRouter()

SHARES = (("admins", "Admins only"), ("contributors", "Admins and contributors"))
SHARE_WORDS = dict(SHARES)
HEALTH_KEY = "connection_tests"  # this browser's last "Test connection" result per connection
AUTH_METHOD = "auth_method"  # the config key both bundled plugins use to choose OAuth2 or an API key


def connection_path(name: str, tail: str = "") -> str:
    """Return the path of a connection's page (``tail``: one of its sub-pages)."""
    return f"/admin/connections/{quote(name, safe='')}{tail}"


def offers_oauth(destination: Destination) -> bool:
    """Return whether the plugin can authenticate through the OAuth2 redirect."""
    return "oauth2" in destination.spec().auth_methods


async def form_of(request: Request) -> dict[str, str]:
    """Return the posted form's text fields (the last value of a repeated one)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _health(request: Request, ws: Workspace, name: str) -> tuple[str, str]:
    """Return (kind, words) of a connection's health: this browser's last test, else the store's last check."""
    tested = request.session.get(HEALTH_KEY, {}).get(name)
    if isinstance(tested, list) and len(tested) == 2:
        return str(tested[0]), str(tested[1])
    account = ws.checked_account(name)
    if account is None:
        return "unknown", "Not checked yet"
    return "ok", f"Checked: {account}"


def _remember_test(request: Request, name: str, kind: str, words: str) -> None:
    tests = dict(request.session.get(HEALTH_KEY, {}))
    tests[name] = [kind, words]
    request.session[HEALTH_KEY] = dict(list(tests.items())[-50:])


@router.get("/admin/connections")
def connections_list(request: Request, ws: PageUser) -> Response:
    """List the connections: admins in full with health; others the shared ones' name and type."""
    rows = []
    titles = {info.name: info.title or info.name for info in ws.registry.infos()}
    for connection in ws.list_connections():
        row: dict[str, Any] = {"name": connection.name, "type": titles.get(connection.type, connection.type)}
        if isinstance(connection, Connection):
            row["share"] = SHARE_WORDS[connection.share.value]
            row["health"] = _health(request, ws, connection.name)
            row["href"] = connection_path(connection.name)
        rows.append(row)
    return render(request, "connections/list.html", role=ws.user.role.value, rows=rows)


@router.get("/admin/connections/new")
def connection_new(request: Request, ws: PageUser, type: str | None = None) -> Response:
    """Step 1: choose the type; step 2 (``?type=``): name, who may use it, the privacy notice, credentials."""
    ws.require("connections.add")
    if not type:
        plugins = [info for info in ws.registry.infos() if info.status == "ok"]
        return render(request, "connections/choose.html", role=ws.user.role.value, plugins=plugins)
    return _new_form(request, ws, type, {}, FormErrors())


def _new_form(
    request: Request, ws: Workspace, kind: str, form: Mapping[str, str], errors: FormErrors, status: int = 200
) -> Response:
    destination = ws.registry.get(kind)
    schema = destination.spec().connection_schema
    values = {k: v for k, v in ((n, form.get(f"cfg-{n}")) for n in properties(schema)) if v is not None}
    return render(
        request,
        "connections/new.html",
        status_code=status,
        role=ws.user.role.value,
        kind=kind,
        title=destination.title,
        oauth=offers_oauth(destination),
        notice=PRIVACY_NOTICE,
        shares=SHARES,
        name=form.get("name", ""),
        share=form.get("share", "admins"),
        agreed=form.get("agree") == "yes",
        fields=fields_of(schema, values, errors=errors),
        errors=errors,
    )


@router.post("/admin/connections/new")
async def connection_add(request: Request, ws: PageUser) -> Response:
    """Add the connection (checked with the platform unless it authenticates through OAuth2 next)."""
    form = await form_of(request)
    kind = form.get("type", "")
    destination = ws.registry.get(kind)
    schema = destination.spec().connection_schema
    config, errors = typed_values(schema, form)
    oauth = form.get("action") == "authorize" and offers_oauth(destination)
    if oauth and AUTH_METHOD in properties(schema):
        config[AUTH_METHOD] = "oauth2"
    if form.get("agree") != "yes":
        errors.add("agree", "Agree to the data-privacy notice to add a connection.")
    name = form.get("name", "").strip()
    if not errors:
        try:
            ws.add_connection(name, kind, config, share=form.get("share", "admins"), agree_privacy=True)
        except SegportError as exc:
            if isinstance(exc, PermissionDenied):
                raise
            errors = errors_of(exc, {"name", "share", "agree", *properties(schema)}, param_field=_PARAMS)
    if errors:
        return _new_form(request, ws, kind, _without_secrets(form, schema), errors, status=422)
    if oauth:  # one click: saved, then straight on to the platform (its page offers the button again)
        flash(request, f"Saved. Now authenticate with {destination.title} to finish the connection.")
        return send_to_platform(request, ws, name)
    else:
        flash(request, f"Connection {name} added; its credentials were checked with {destination.title}.")
    return RedirectResponse(connection_path(name), status_code=303)


_PARAMS = {"agree_privacy": "agree", "config": FORM_ERROR}


def _without_secrets(form: Mapping[str, str], schema: Mapping[str, Any]) -> dict[str, str]:
    """Return the posted form minus its secret fields (a refused form never shows them again)."""
    secret = {f"cfg-{name}" for name, prop in properties(schema).items() if prop.get("writeOnly") is True}
    return {key: value for key, value in form.items() if key not in secret}


@router.post("/admin/connections/{name:path}/test")
def connection_test(request: Request, ws: PageUser, name: str) -> Response:
    """Check the stored credentials with the platform now; the answer shows on the page and in the list."""
    try:
        check = ws.test_connection(name)
    except SegportError as exc:
        if isinstance(exc, (PermissionDenied, NotFound)):
            raise
        _remember_test(request, name, "failed", f"Test failed: {exc.message}")
        flash(request, f"Test failed: {exc.message}", "error")
    else:
        _remember_test(request, name, "ok", f"Works: {check.account}")
        flash(request, f"The connection works: {check.account}.")
    return RedirectResponse(connection_path(name), status_code=303)


@router.get("/admin/connections/{name:path}/edit")
def connection_edit_page(request: Request, ws: PageUser, name: str) -> Response:
    """Show the edit form: rename, who may use it, new secrets (blank keeps them), other settings."""
    connection = ws.get_connection(name)
    return _edit_form(request, ws, connection, {}, FormErrors())


def _edit_form(
    request: Request,
    ws: Workspace,
    connection: Connection,
    form: Mapping[str, str],
    errors: FormErrors,
    status: int = 200,
) -> Response:
    schema = ws.registry.get(connection.type).spec().connection_schema
    values: dict[str, Any] = dict(connection.config)
    values.update({n: form[f"cfg-{n}"] for n in properties(schema) if f"cfg-{n}" in form})
    stored = frozenset(ws.stored_secret_names(connection.name))
    return render(
        request,
        "connections/edit.html",
        status_code=status,
        role=ws.user.role.value,
        connection=connection,
        title=ws.registry.get(connection.type).title,
        shares=SHARES,
        name=form.get("name", connection.name),
        share=form.get("share", connection.share.value),
        fields=fields_of(schema, values, stored_secrets=stored, errors=errors),
        errors=errors,
        base=connection_path(connection.name),
    )


@router.post("/admin/connections/{name:path}/edit")
async def connection_edit(request: Request, ws: PageUser, name: str) -> Response:
    """Apply the edit (new credentials are checked with the platform first)."""
    form = await form_of(request)
    connection = ws.get_connection(name)
    schema = ws.registry.get(connection.type).spec().connection_schema
    config, errors = typed_values(schema, form, editing=True)
    new_name = form.get("name", "").strip()
    if not errors:
        try:
            edit = ws.edit_connection(
                name,
                rename=new_name if new_name and new_name != name else None,
                share=form.get("share") or None,
                config=config,
                force=form.get("force") == "yes",
            )
        except SegportError as exc:
            if isinstance(exc, PermissionDenied):
                raise
            errors = errors_of(exc, {"name", "share", *properties(schema)}, param_field={"rename": "name"})
        else:
            for note in edit.notes:
                flash(request, note)
            flash(request, "Saved." if edit.changes else "Nothing changed.")
            return RedirectResponse(connection_path(edit.connection.name), status_code=303)
    return _edit_form(request, ws, connection, _without_secrets(form, schema), errors, status=422)


@router.get("/admin/connections/{name:path}/remove")
def connection_remove_page(request: Request, ws: PageUser, name: str) -> Response:
    """Confirm the removal, listing the exports that will stop (they stay, detached and disabled)."""
    ws.require("connections.remove")
    connection = ws.get_connection(name)
    exports = [e for e in ws.list_exports() if e.connection_id == connection.id]
    return render(
        request,
        "connections/remove.html",
        role=ws.user.role.value,
        connection=connection,
        exports=exports,
        base=connection_path(name),
    )


@router.post("/admin/connections/{name:path}/remove")
def connection_remove(request: Request, ws: PageUser, name: str) -> Response:
    """Remove the connection and its secrets; its exports stay, detached and disabled."""
    detached = ws.remove_connection(name)
    tests = dict(request.session.get(HEALTH_KEY, {}))
    if tests.pop(name, None) is not None:
        request.session[HEALTH_KEY] = tests
    stopped = f"; {detached} export(s) stopped (kept, detached and disabled)" if detached else ""
    flash(request, f"Connection {name} removed{stopped}.")
    return RedirectResponse("/admin/connections", status_code=303)


# last: the sub-pages above match first (a name may hold "/")
@router.get("/admin/connections/{name:path}")
def connection_page(request: Request, ws: PageUser, name: str) -> Response:
    """Show a connection: its settings (no secret), health, exports, and its buttons."""
    connection = ws.get_connection(name)
    destination = ws.registry.get(connection.type)
    schema = destination.spec().connection_schema
    exports = [e for e in ws.list_exports() if e.connection_id == connection.id]
    return render(
        request,
        "connections/page.html",
        role=ws.user.role.value,
        connection=connection,
        title=destination.title,
        share=SHARE_WORDS[connection.share.value],
        settings=redact(connection.config, schema),
        secrets=ws.stored_secret_names(name),
        health=_health(request, ws, name),
        oauth=destination.oauth(connection.config) is not None,
        exports=exports,
        base=connection_path(name),
    )
