"""How ``segport exports run --dry-run`` prints its plan: the run's words, then ``--show-records``."""

from __future__ import annotations

import json
from typing import Any

import click

from ..models import Run
from ..pipeline.preview import Preview, RecordAction

# The run's words, in the order a run record's counts read, with what each means in a plan.
RUN_WORDS = (
    (
        "created",
        "never delivered by this export to this address, per the sync ledger; "
        "people the platform already has are counted updated by the run",
    ),
    ("updated", "delivered before: fields or segment markers changed"),
    ("unchanged", "nothing to send"),
    ("exits", "left the export's segments: their markers removed; the run counts them updated"),
    ("rejected", "refused before sending; the platform may refuse more, e.g. suppressed addresses"),
    ("skipped", "duplicate emails: sent once, for the first profile by key"),
)
SHOWN_ELSEWHERE = {
    "selected",
    "upserts",
    "new",
    "rejects",
    "duplicates",
    "marker_adds",
    "marker_removes",
    "requests",
    "would_create",
    *(word for word, _ in RUN_WORDS),
}


def plan_document(run: Run, preview: Preview | None) -> dict[str, Any]:
    """Return a dry run's JSON document: the run record, what the pre-flight would create, and records."""
    document = run.to_dict()
    if preview is not None:
        document["would_create"] = list(preview.would_create)
        if preview.limit:
            document["records"] = list(preview.records)
            document["records_not_shown"] = preview.not_shown()
    return document


def echo_plan(run: Run, preview: Preview | None) -> None:
    """Print a dry run's plan in the run's words, what the pre-flight would create, and records."""
    plan = run.plan or {}
    calls = f" ({run.requests:,} calls)" if run.requests else ""
    click.echo(
        f"dry run of {run.export} (run {run.id}): pre-flight checks passed{calls}; nothing was sent. The run would do:"
    )
    click.echo(f"  selected: {plan.get('selected', 0):,}")
    for word, meaning in RUN_WORDS:
        click.echo(f"  {word}: {plan.get(word, 0):,}  ({meaning})")
    adds, removes = plan.get("marker_adds", 0), plan.get("marker_removes", 0)
    click.echo(f"  segment markers: {adds:,} added, {removes:,} removed")
    for key, value in plan.items():
        if key in SHOWN_ELSEWHERE:
            continue
        note = ""
        if key.startswith("empty_"):  # a mapped field: how many records to send carry it blank
            note = "  (records to send whose mapped attribute is missing or blank: sent empty)"
        click.echo(f"  {key.replace('_', ' ')}: {value:,}{note}")
    click.echo(f"  requests: {plan.get('requests', 0):,}  (batch calls, after the pre-flight's)")
    created = preview.would_create if preview is not None else []
    if created:
        click.echo(f"  the pre-flight would create at the platform: {'; '.join(created)}")
    elif plan.get("would_create"):
        click.echo(f"  the pre-flight would create {plan['would_create']:,} objects at the platform")
    if preview is not None and preview.limit:
        echo_records(preview)


def echo_records(preview: Preview) -> None:
    """Print the listed records, one line each, with a note on what is not known."""
    shown, total = len(preview.records), preview.listed_of
    if not total:
        click.echo("records: none would be sent, rejected or skipped")
        return
    click.echo(
        f"records ({shown:,} of {total:,} that would be sent, rejected or skipped; "
        f"up to {preview.limit:,} of each action, rejects and exits first):"
    )
    for item in preview.records:
        click.echo(f"  {record_line(item)}")
    left = preview.not_shown()
    if left:
        click.echo("  not shown: " + ", ".join(f"{count:,} {action}" for action, count in left.items()))
    if any(item["fields"] and item["action"] == "update" for item in preview.records):
        click.echo(
            "  (old values are not known: the sync ledger keeps a digest of what was delivered, not the "
            "values, so an update shows every mapped field it resends with its new value)"
        )


def record_line(item: RecordAction) -> str:
    """Return one record of ``--show-records`` as a line: action, key, email, fields, markers, reason."""
    parts = [f"{item['action']:<6} {item['key']} {item['email'] or '(no email)'}"]
    if item["fields"]:
        changes = ", ".join(
            f"{name} → {json.dumps(change['new'], ensure_ascii=False)}" for name, change in item["fields"].items()
        )
        parts.append(f"fields: {changes}")
    markers = [f"+{m}" for m in item["markers_added"]] + [f"-{m}" for m in item["markers_removed"]]
    if markers:
        parts.append(f"markers: {' '.join(markers)}")
    if item["reason"]:
        parts.append(f"reason: {item['reason']}")
    return "; ".join(parts)
