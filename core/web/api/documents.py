"""What the API answers, as the OpenAPI document describes it: run records, run starts, problem documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """An RFC 9457 problem document carrying segport's exit status by name (``code``) and number."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str = Field(description="The operator's one line: what is wrong and how to fix it.")
    code: str = Field(description="segport's exit status by name (NOT_FOUND, PERMISSION_DENIED...).")
    exit_status: int = Field(description="segport's exit status by number, as the CLI exits.")
    instance: str | None = None
    param: str | None = Field(None, description="The argument at fault, when known.")
    suggestions: list[str] | None = Field(None, description="Close names the user may see, for an unknown name.")


class RunRecord(BaseModel):
    """A run record, as ``schemas/run-record.schema.json`` defines it."""

    model_config = ConfigDict(extra="allow")

    id: int
    export: str
    status: str = Field(description="running, succeeded, partial, failed, interrupted or planned (a dry run).")
    trigger: str = Field(description="manual, api, schedule or refresh.")
    user: str
    started_at: str
    finished_at: str | None
    counts: dict[str, int] = Field(description="created, updated, unchanged, skipped, rejected, failed...")
    requests: int
    retries: int
    reject_file: str | None
    error: str | None
    plan: dict[str, Any] | None
    duration_s: float | None


class RunStarted(BaseModel):
    """A run started: its id (null when queued for workers, until one starts it) and the queued task's id."""

    run_id: int | None
    task_id: str | None


PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": description}
    for status, description in (
        (400, "A malformed request (USAGE)."),
        (401, "No valid API token (PERMISSION_DENIED)."),
        (403, "The user's role may not do this (PERMISSION_DENIED)."),
        (404, "An unknown name or id (NOT_FOUND), with close names."),
        (422, "A value the service refused (CONFIG_ERROR, INPUT_ERROR...)."),
    )
}
