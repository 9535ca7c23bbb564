"""One exception tree for segport, with messages written for the operator.

Every error a user can cause derives from :class:`SegportError`. Its ``str()`` is one line that names
the problem and the fix; the CLI prints it as ``error: ...`` and exits with :attr:`exit_status`.
Internal detail that must not reach the operator (and never a secret) goes in ``internal_message``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .models import Run


class ExitStatus(IntEnum):
    """Process exit codes of the ``segport`` CLI (documented in README)."""

    OK = 0
    ERROR = 1  # unexpected failure (a bug): a traceback is printed
    USAGE = 2  # click usage errors (unknown option, missing argument)
    CONFIG_ERROR = 3  # a config, option or schema failed validation
    INPUT_ERROR = 4  # bad input data: CSV/JSONL, filter expression, cron, email
    NOT_FOUND = 5  # unknown user, connection, export, segment, profile, run
    PERMISSION_DENIED = 6  # the acting user may not do this
    PLUGIN_ERROR = 7  # a destination plugin failed to load or broke its contract
    AUTH_ERROR = 8  # the platform refused the credentials
    DESTINATION_ERROR = 9  # the platform refused the request (unknown audience, ...)
    RUN_FAILED = 10  # an export run ended failed
    ALREADY_RUNNING = 11  # another run of this export holds the lock
    WORKSPACE_ERROR = 12  # missing/corrupt workspace, wrong secret key, disk problems
    CAP_EXCEEDED = 13  # the selection is larger than the destination's profile cap
    EXECUTOR_ERROR = 14  # the broker (SEGPORT_BROKER_URL) or the governor's Redis cannot be reached
    UNREACHABLE = 15  # the platform cannot be reached: DNS, refused, reset, TLS, timeout
    DRIFT_FOUND = 16  # exports verify: the platform differs from what was delivered (not an error)
    INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT, as shells report it): a run is recorded interrupted
    TERMINATED = 143  # stopped by SIGTERM (128 + 15): a run stops after its batch in flight, recorded interrupted


class SegportError(Exception):
    """Root of every error segport raises on purpose.

    :param message: one line for the operator: what is wrong and how to fix it, in words that hold for
        every interface (no CLI flag, no HTTP field).
    :param internal_message: detail for logs with ``--debug``; never holds a secret.
    :param param: the argument of the service call at fault (``agree_privacy``, ``segments``, ...), so
        each interface can add how to set it there (the CLI names its flag).
    """

    exit_status: ExitStatus = ExitStatus.ERROR
    run: Run | None = None  # the run record, when the error ended a run (stored as it ended)
    details: dict[str, Any] | None = None  # data an interface shows beside the message (a CLI JSON failure's keys)

    def __init__(self, message: str, *, internal_message: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.internal_message = internal_message
        self.param = param

    def __str__(self) -> str:
        return self.message


class ConfigError(SegportError, ValueError):
    """A configuration value is wrong."""

    exit_status = ExitStatus.CONFIG_ERROR


class ConfigValidationError(ConfigError):
    """A document failed its JSON Schema; ``errors`` holds one line per problem, by JSON path.

    :param hint: where to read what a valid document looks like, appended in parentheses.
    """

    def __init__(self, what: str, errors: Sequence[str], *, schema: object = None, hint: str | None = None) -> None:
        self.errors = list(errors)
        self.schema = schema
        lines = "; ".join(self.errors)
        super().__init__(f"{what} is invalid: {lines}" + (f" ({hint})" if hint else ""))


class InputError(SegportError, ValueError):
    """Input data (a file, an expression, a cron line) cannot be used."""

    exit_status = ExitStatus.INPUT_ERROR


class NotFound(SegportError, LookupError):
    """A named object does not exist.

    :param kind: what was looked up by name (``connection``, ``export``, ``segment``, ``user``), so the
        services can add the close names the acting user may see ("did you mean ...?").
    :param name: the name that matched nothing.

    ``suggestions`` holds the close names offered in the message (None until the services looked).
    """

    exit_status = ExitStatus.NOT_FOUND

    def __init__(self, message: str, *, kind: str | None = None, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.kind = kind
        self.name = name
        self.suggestions: list[str] | None = None


class AlreadyExists(SegportError, ValueError):
    """A named object exists already."""

    exit_status = ExitStatus.CONFIG_ERROR


class PermissionDenied(SegportError, PermissionError):
    """The acting user's role does not allow this."""

    exit_status = ExitStatus.PERMISSION_DENIED


class TooManyAttempts(PermissionDenied):
    """Sign-ins are refused for a while after too many failures (an HTTP server answers 429).

    :param retry_after: seconds until a sign-in is tried again.
    """

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unauthenticated(SegportError):
    """No valid credentials: a wrong username or password, an unknown, expired or revoked API token, or none.

    Not a :class:`PermissionDenied` (the caller is nobody yet): an HTTP server answers 401, not 403.
    """

    exit_status = ExitStatus.PERMISSION_DENIED


class WorkspaceError(SegportError, OSError):
    """The workspace is missing, unreadable, or its secret key is wrong."""

    exit_status = ExitStatus.WORKSPACE_ERROR


class PluginError(SegportError):
    """A destination plugin is not usable."""

    exit_status = ExitStatus.PLUGIN_ERROR


class PluginLoadError(PluginError, ImportError):
    """A plugin's entry point could not be imported or is unknown."""


class PluginContractError(PluginError, TypeError):
    """A plugin loaded but does not fulfil the destination contract."""


class AuthError(SegportError):
    """The platform refused the credentials (bad, expired or revoked)."""

    exit_status = ExitStatus.AUTH_ERROR


class DestinationError(SegportError):
    """A problem talking to the destination platform."""

    exit_status = ExitStatus.DESTINATION_ERROR


class FatalDestinationError(DestinationError):
    """The run cannot go on (unknown audience, forbidden, ...); retrying will not help."""


class UnknownAudienceError(FatalDestinationError, LookupError):
    """The audience/list id does not exist for these credentials."""


class BadBatchError(FatalDestinationError):
    """The platform refused a whole batch because of something in it.

    The engine splits such a batch in halves until the offending records stand alone; a single
    record that still fails becomes a per-record reject with this message.
    """


class RetryableDestinationError(DestinationError):
    """A transient failure: timeout, connection reset, 429, 5xx. The engine retries the batch.

    :param retry_after: seconds the platform asked us to wait, if it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, internal_message: str | None = None) -> None:
        super().__init__(message, internal_message=internal_message)
        self.retry_after = retry_after


class PlatformUnreachable(RetryableDestinationError):
    """The platform could not be reached: DNS, a refused or reset connection, TLS, or no answer in time.

    The engine retries it like any transient failure; the CLI exits with :attr:`ExitStatus.UNREACHABLE`.
    """

    exit_status = ExitStatus.UNREACHABLE


class RunError(SegportError):
    """An export run could not start or ended failed."""

    exit_status = ExitStatus.RUN_FAILED


class AlreadyRunning(RunError):
    """Another run of the export holds its lock.

    :param holder: the id of the run holding it, when known.
    """

    exit_status = ExitStatus.ALREADY_RUNNING

    def __init__(self, message: str, *, holder: int | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class CapExceeded(RunError):
    """The segment selection is larger than the destination's per-export profile cap."""

    exit_status = ExitStatus.CAP_EXCEEDED


class ExecutorError(SegportError, ConnectionError):
    """The broker of the Celery executor, or the Redis of the shared governor, cannot be reached."""

    exit_status = ExitStatus.EXECUTOR_ERROR
