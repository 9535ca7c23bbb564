"""The JSON API under ``/api/v1``: one module per kind of object; :data:`router` holds them all.

Every route authenticates with ``Authorization: Bearer TOKEN`` (or a signed-in browser's session)
through :func:`segport.web.actor.api_user`, then calls the same service as the CLI, whose checks
decide. Errors are problem documents (:mod:`segport.web.problems`); lists are paged
(:mod:`segport.web.api.paging`).
"""

from __future__ import annotations

from fastapi import APIRouter

from . import connections, exports, me, plugins, profiles, runs, schedule, segments, users
from .documents import PROBLEMS

router = APIRouter(prefix="/api/v1", responses=PROBLEMS)
for part in (me, plugins, connections, exports, runs, segments, profiles, users, schedule):
    router.include_router(part.router)
