"""The console's pages, one module per screen; :data:`router` holds them all."""

from __future__ import annotations

from fastapi import APIRouter

from . import account, audit, auth, connections, export_form, exports, oauth, profiles, runs, schedule, segments, users

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(oauth.router)  # before connections': /admin/connections/{name}/authorize
router.include_router(connections.router)
router.include_router(export_form.router)  # before exports': /data/exports/new is not an export's page
router.include_router(exports.router)
router.include_router(runs.router)
router.include_router(segments.router)
router.include_router(profiles.router)
router.include_router(users.router)
router.include_router(account.router)
router.include_router(schedule.router)
router.include_router(audit.router)
