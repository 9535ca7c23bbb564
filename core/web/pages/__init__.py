"""The console's pages, one module per screen; :data:`router` holds them all."""

from __future__ import annotations

from fastapi import APIRouter

from . import auth, oauth, profiles, runs, segments

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(oauth.router)
router.include_router(runs.router)
router.include_router(segments.router)
router.include_router(profiles.router)
