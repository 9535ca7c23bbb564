"""Data > Exports > "Add destination" and "Edit": the export form and its live parts (htmx).

Choosing a connection loads its audiences (``/data/exports/audiences``): a select of what the
platform lists, or, when the plugin cannot list them or the listing fails, the typed id with the
reason. Data matching picks from the attributes profiles have; "Add a field" adds a row
(``/data/exports/field-row``). "Save" saves, never runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ...contract import Audience, Destination
from ...errors import ConfigError, NotFound, PermissionDenied, SegportError
from ...models import Export
from ...workspace import Workspace
from ..actor import PageUser
from ..forms import FORM_ERROR, FormErrors, errors_of, fields_of, properties, typed_values
from ..templating import flash, render

router = APIRouter()

EMPTY_ROWS = 3  # mapped-field rows of a new form
MAX_ROWS = 100


def export_path(name: str, tail: str = "") -> str:
    """Return the path of an export's page (``tail``: one of its sub-pages)."""
    return f"/data/exports/{quote(name, safe='')}{tail}"


def audience_key(destination: Destination) -> str | None:
    """Return the export option naming the audience (list): the first the export schema requires."""
    required = destination.spec().export_schema.get("required", [])
    return str(required[0]) if required else None


@dataclass
class ExportForm:
    """What the form shows: the values typed so far and the errors by field."""

    name: str = ""
    connection: str = ""
    audience: str = ""
    email_field: str = ""
    rows: list[tuple[str, str]] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    schedule: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    errors: FormErrors = field(default_factory=FormErrors)

    @classmethod
    def of(cls, export: Export, key: str | None) -> ExportForm:
        """Return the form filled with a saved export."""
        options = dict(export.options)
        audience = str(options.pop(key, "")) if key else ""
        return cls(
            name=export.name,
            connection=export.connection,
            audience=audience,
            email_field=export.email_field,
            rows=list(export.mapping.items()),
            segments=list(export.segments),
            schedule=export.schedule or "",
            options=options,
        )


def _connections(ws: Workspace) -> list[tuple[str, list[str]]]:
    """Return [(platform title, [connection names])] of the connections the user may see, by title."""
    groups: dict[str, list[str]] = {}
    titles = {info.name: info.title or info.name for info in ws.registry.infos()}
    for connection in ws.list_connections():
        groups.setdefault(titles.get(connection.type, connection.type), []).append(connection.name)
    return sorted(groups.items())


def _connection_type(ws: Workspace, name: str) -> str | None:
    return next((c.type for c in ws.list_connections() if c.name == name), None)


def _audiences(ws: Workspace, connection: str) -> tuple[list[Audience], str | None]:
    """Return the audiences the connection lists, or [] and why they could not be listed."""
    try:
        return ws.list_audiences(connection), None
    except (PermissionDenied, NotFound):
        raise
    except ConfigError as exc:
        return [], exc.message
    except SegportError as exc:
        return [], f"the audiences could not be listed: {exc.message}"


def _option_fields(ws: Workspace, connection: str, form: ExportForm) -> tuple[list[Any], str]:
    """Return the export option fields of the connection's plugin (the audience aside) and its title."""
    kind = _connection_type(ws, connection)
    if kind is None:
        return [], ""
    destination = ws.registry.get(kind)
    key = audience_key(destination)
    schema = destination.spec().export_schema
    skip = frozenset({key}) if key else frozenset()
    return fields_of(schema, form.options, errors=form.errors, skip=skip), destination.title


def _audience_context(ws: Workspace, connection: str, form: ExportForm) -> dict[str, Any]:
    audiences, problem = _audiences(ws, connection) if connection else ([], None)
    options, title = _option_fields(ws, connection, form) if connection else ([], "")
    return {
        "audiences": audiences,
        "listed_ids": {a.id for a in audiences},
        "problem": problem,
        "audience": form.audience,
        "audience_error": form.errors.get("audience"),
        "options": options,
        "platform": title,
        "chosen": bool(connection),
    }


def render_form(request: Request, ws: Workspace, form: ExportForm, *, editing: bool, status: int = 200) -> Response:
    """Render the add or edit form with the values and errors of ``form``."""
    rows = form.rows + [("", "")] * max(EMPTY_ROWS - len(form.rows), 0 if form.rows else EMPTY_ROWS)
    return render(
        request,
        "exports/form.html",
        status_code=status,
        role=ws.user.role.value,
        form=form,
        editing=editing,
        action=export_path(form.name, "/edit") if editing else "/data/exports/new",
        groups=_connections(ws),
        attributes=ws.attribute_names(),
        segments=ws.list_segments(),
        rows=list(enumerate(rows)),
        next_row=len(rows),
        **_audience_context(ws, form.connection, form),
    )


@router.get("/data/exports/new")
def export_new(request: Request, ws: PageUser, connection: str = "") -> Response:
    """Show the empty "Add destination" form."""
    return render_form(request, ws, ExportForm(connection=connection), editing=False)


@router.get("/data/exports/audiences")
def export_audiences(request: Request, ws: PageUser, connection: str = "") -> Response:
    """Render the audience field (and the platform's options) for the chosen connection (htmx)."""
    form = ExportForm(connection=connection)
    return render(request, "exports/_audience.html", role=ws.user.role.value, **_audience_context(ws, connection, form))


@router.get("/data/exports/field-row")
def export_field_row(request: Request, ws: PageUser, n: int = EMPTY_ROWS) -> Response:
    """Render one more empty mapped-field row (htmx: "Add a field")."""
    index = min(max(n, 0), MAX_ROWS)
    return render(
        request,
        "exports/_new_row.html",
        role=ws.user.role.value,
        i=index,
        dest="",
        src="",
        attributes=ws.attribute_names(),
        next_row=index + 1,
        error=None,
    )


async def _posted(request: Request, ws: Workspace, editing: bool, name: str = "") -> tuple[ExportForm, Any]:
    """Return the posted form and the export option values, typed for the connection's plugin."""
    posted = await request.form()
    text = {k: v for k, v in posted.items() if isinstance(v, str)}
    rows: list[tuple[str, str]] = []
    for i in range(MAX_ROWS + 1):
        dest, src = str(text.get(f"dest-{i}", "")).strip(), str(text.get(f"src-{i}", "")).strip()
        if dest or src:
            rows.append((dest, src))
    form = ExportForm(
        name=name or text.get("name", "").strip(),
        connection=text.get("connection", ""),
        audience=(text.get("audience_typed", "").strip() or text.get("audience", "").strip()),
        email_field=text.get("email_field", "").strip(),
        rows=rows,
        segments=[str(v) for v in posted.getlist("segment")],
        schedule=text.get("schedule", "").strip(),
    )
    options: dict[str, Any] = {}
    kind = _connection_type(ws, form.connection) if form.connection else None
    if kind is not None:
        destination = ws.registry.get(kind)
        key = audience_key(destination)
        skip = frozenset({key}) if key else frozenset()
        options, form.errors = typed_values(destination.spec().export_schema, text, editing=editing, skip=skip)
        form.options = {k: v for k, v in options.items() if v is not None}
        if key:
            if not form.audience:
                form.errors.add("audience", "Choose the audience, or type its id.")
            options[key] = form.audience
    if not form.segments:
        form.errors.add("segments", "Choose at least one segment: only segments are exported.")
    for dest, src in rows:
        if not dest or not src:
            form.errors.add("mapping", "Give each mapped field both a destination field and a profile attribute.")
            break
    return form, options


def _field_errors(exc: SegportError, form: ExportForm, ws: Workspace) -> FormErrors:
    fields = {"name", "connection", "audience", "email_field", "mapping", "segments", "schedule"}
    kind = _connection_type(ws, form.connection)
    key = audience_key(ws.registry.get(kind)) if kind else None
    option_names = set(properties(ws.registry.get(kind).spec().export_schema)) if kind else set()
    errors = errors_of(exc, fields | option_names, param_field={"unmap": "mapping", "options": FORM_ERROR})
    if key and key in errors.by_field:
        for line in errors.by_field.pop(key):
            errors.add("audience", line)
    return errors


@router.post("/data/exports/new")
async def export_add(request: Request, ws: PageUser) -> Response:
    """Save the export (it is not run) and go to its page."""
    form, options = await _posted(request, ws, editing=False)
    if not form.connection:
        form.errors.add("connection", "Choose the connection to send to.")
    if not form.errors:
        try:
            ws.add_export(
                form.name,
                connection=form.connection,
                segments=form.segments,
                email_field=form.email_field,
                mapping=dict(form.rows),
                options={k: v for k, v in options.items() if v is not None},
                schedule=form.schedule or None,
            )
        except (PermissionDenied, NotFound) as exc:
            if isinstance(exc, NotFound) and exc.kind in ("segment", "connection"):
                form.errors = _field_errors(exc, form, ws)
            else:
                raise
        except SegportError as exc:
            form.errors = _field_errors(exc, form, ws)
    if form.errors:
        return render_form(request, ws, form, editing=False, status=422)
    flash(request, "Saved. Nothing was sent.")
    return RedirectResponse(export_path(form.name), status_code=303)


@router.get("/data/exports/{name:path}/edit")
def export_edit_page(request: Request, ws: PageUser, name: str) -> Response:
    """Show the form filled with the export."""
    export = ws.get_export(name)
    kind = _connection_type(ws, export.connection)
    key = audience_key(ws.registry.get(kind)) if kind else None
    return render_form(request, ws, ExportForm.of(export, key), editing=True)


@router.post("/data/exports/{name:path}/edit")
async def export_edit(request: Request, ws: PageUser, name: str) -> Response:
    """Apply the edit: fields no longer mapped are unmapped; a blank schedule removes it."""
    export = ws.get_export(name)
    form, options = await _posted(request, ws, editing=True, name=name)
    mapping = dict(form.rows)
    if not form.errors:
        try:
            edit = ws.change_export(
                name,
                segments=form.segments or None,
                email_field=form.email_field or None,
                mapping={k: v for k, v in mapping.items() if export.mapping.get(k) != v},
                unmap=[dest for dest in export.mapping if dest not in mapping],
                options=options,
                schedule=form.schedule or None,
                clear_schedule=not form.schedule and export.schedule is not None,
                connection=form.connection if form.connection != export.connection else None,
            )
        except SegportError as exc:
            if isinstance(exc, PermissionDenied):
                raise
            form.errors = _field_errors(exc, form, ws)
        else:
            for note in edit.notes:
                flash(request, note)
            flash(request, "Saved. Nothing was sent." if edit.changes else "Nothing changed.")
            return RedirectResponse(export_path(name), status_code=303)
    return render_form(request, ws, form, editing=True, status=422)
