"""Runs: the history (filtered, paged), one run's record as the run-record schema says, and its rejects."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Query, Request

from ...errors import NotFound
from ...models import RunStatus
from ..actor import ApiUser
from .documents import RunRecord
from .paging import Limit, Offset, PageOf, page_of

router = APIRouter(tags=["runs"])

LARGEST_ID = 2**63 - 1  # the largest integer the stores' columns hold


def _known_id(ws: ApiUser, run_id: int, action: str) -> None:
    if not 0 < run_id <= LARGEST_ID:  # no run has such an id (and no column holds it)
        ws.require(action)
        raise NotFound(f"unknown run {run_id}: never recorded, or pruned (see GET /api/v1/runs)", param="run_id")


@router.get("/runs", summary="List runs, newest first", response_model=PageOf[RunRecord])
def list_runs(
    ws: ApiUser,
    limit: Limit = 50,
    offset: Offset = 0,
    export: str | None = Query(None, description="Only the runs of this export."),
    status: str | None = Query(
        None, description="Only runs with this status: " + ", ".join(s.value for s in RunStatus)
    ),
    trigger: str | None = Query(None, description="Only runs started so: manual, api, schedule, refresh..."),
    user: str | None = Query(None, description="Only runs started by this user."),
) -> dict[str, Any]:
    """Return a page of run records, newest first."""
    return page_of(ws.runs_page(limit=limit, offset=offset, export=export, status=status, trigger=trigger, user=user))


@router.get("/runs/{run_id}", summary="Show a run record", response_model=RunRecord)
def show_run(run_id: int, request: Request, ws: ApiUser) -> dict[str, Any]:
    """Return one run record (the run-record schema); a run going on in this server as of its last batch."""
    _known_id(ws, run_id, "runs.show")
    run = ws.get_run(run_id)
    if run.status is RunStatus.RUNNING:
        live = request.app.state.runs.live(run_id)
        if live is not None and live.status is RunStatus.RUNNING:
            run = dataclasses.replace(live, reject_file=run.reject_file)
    return run.to_dict()


@router.get("/runs/{run_id}/rejects", summary="List a run's rejects with their reasons")
def run_rejects(
    run_id: int,
    ws: ApiUser,
    limit: int | None = Query(None, ge=1, description="At most this many rejects, by profile key (default: all)."),
) -> dict[str, Any]:
    """Return every record the run rejected, that failed after every retry, or was skipped, with the reason."""
    _known_id(ws, run_id, "runs.rejects")
    return ws.run_rejects(run_id, limit).to_dict()
