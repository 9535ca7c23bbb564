"""Lifecycle hooks (pluggy, entry-point group ``segport.hooks``). Every hook is prefixed ``segport_``.

Implement them in any installed package with ``@segport.hookimpl`` and register the module under
the ``segport.hooks`` entry-point group. The engine's own audit log and progress use these hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .contract import BatchResult, Outcome
    from .models import Export, Run, User

hookspec = pluggy.HookspecMarker("segport")
hookimpl = pluggy.HookimplMarker("segport")


@hookspec
def segport_before_run(run: Run, export: Export) -> None:
    """Act on a run's start: called after its lock is taken and before anything is sent.

    :param run: the run record (status ``running``).
    :param export: the export being run.
    """


@hookspec
def segport_before_send(run: Run, export: Export) -> None:
    """Act on a run's sending start: called once its pre-flight checks passed, before its first batch.

    Not called for a dry run (it sends nothing) nor for a run whose pre-flight failed.

    :param run: the run record (status ``running``, ``plan["selected"]`` set).
    :param export: the export being run.
    """


@hookspec
def segport_after_batch(run: Run, export: Export, result: BatchResult) -> None:
    """Act on one batch: called after the batch's outcomes were committed.

    :param run: the run record, its counts updated.
    :param export: the export being run.
    :param result: the batch's outcomes and request count.
    """


@hookspec
def segport_on_reject(run: Run, export: Export, outcome: Outcome, email: str) -> None:
    """Act on one record rejected or failed for good: called for each.

    :param run: the run record.
    :param export: the export being run.
    :param outcome: the record's outcome (status and reason).
    :param email: the normalised email of the record.
    """


@hookspec
def segport_after_run(run: Run, export: Export) -> None:
    """Act on a run's end: called whatever its status (succeeded, failed, ...).

    :param run: the finished run record.
    :param export: the export that was run.
    """


@hookspec(firstresult=True)
def segport_permission(user: User, action: str, resource: object) -> bool | None:
    """Decide whether ``user`` may perform ``action`` on ``resource``.

    Return True to allow, False to deny, None to leave the decision to the next policy (the
    built-in role matrix answers last).

    :param user: the acting user (name and role).
    :param action: a dotted verb such as ``connections.add`` or ``exports.run``.
    :param resource: the object acted on (a Connection, an Export, ...) or None.
    """


@hookspec(firstresult=True)
def segport_actor_from_request(request: object) -> str | None:
    """Name the user making an HTTP request to ``segport serve``, or None to let the next way decide.

    Answered before the server's own API tokens and session cookies: a plugin may trust a
    single-sign-on proxy's header, say. The name must be a user of the workspace; what that user
    may do is still decided by the permission checks.

    :param request: the Starlette request (headers, client address, cookies).
    """
