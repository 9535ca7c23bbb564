"""What a notification says: the webhook's JSON payload, the email's subject and body."""

from __future__ import annotations

from typing import Any

from segport import Export, Run, RunStatus

EVENT = "run.finished"
_VERBS = {
    RunStatus.SUCCEEDED: "succeeded",
    RunStatus.PARTIAL: "finished with failed records",
    RunStatus.FAILED: "failed",
    RunStatus.INTERRUPTED: "was interrupted",
}


def payload(run: Run, export: Export) -> dict[str, Any]:
    """Return the webhook body: the event, the export and the run record.

    Of the export it holds the name, connection and segments, never an option or a secret.

    :param run: the finished run.
    :param export: the export that was run.
    """
    return {
        "event": EVENT,
        "export": {"name": export.name, "connection": export.connection, "segments": list(export.segments)},
        "run": run.to_dict(),
    }


def sent(run: Run) -> int:
    """Count the records the platform created or updated in this run."""
    return run.counts.get("created", 0) + run.counts.get("updated", 0)


def subject(run: Run, export: Export) -> str:
    """E.g. ``segport: export vip-news succeeded (1200 sent, 3 rejected)``.

    :param run: the finished run.
    :param export: the export that was run.
    """
    figures = f"{sent(run)} sent, {run.counts.get('rejected', 0)} rejected"
    if run.counts.get("failed", 0):
        figures += f", {run.counts['failed']} failed"
    verb = _VERBS.get(run.status, run.status.value)
    return " ".join(f"segport: export {export.name} {verb} ({figures})".split())  # one line, whatever the name


def body(run: Run, export: Export) -> str:
    """Return a few plain-text lines: status, counts, duration, the error and the reject file.

    :param run: the finished run.
    :param export: the export that was run.
    """
    counts = ", ".join(f"{name} {value}" for name, value in run.counts.items()) or "none"
    duration = f"{run.duration_s:.1f} s" if run.duration_s is not None else "unknown"
    lines = [
        f"Export:     {export.name} (connection {export.connection})",
        f"Run:        {run.id}, {run.status.value}, trigger {run.trigger}, by {run.user}",
        f"Started:    {run.started_at}",
        f"Finished:   {run.finished_at or 'unknown'} (duration {duration})",
        f"Counts:     {counts}",
        f"Requests:   {run.requests} ({run.retries} retries)",
    ]
    if run.error:
        lines.append(f"Error:      {run.error}")
    if run.reject_file:
        lines.append(f"Rejects:    {run.reject_file}")
    lines += ["", f"segport runs show {run.id}  -- the full run record"]
    return "\n".join(lines) + "\n"
