"""segport: export segments of customer profiles to email-marketing platforms.

The public surface for plugin authors and embedding applications; import only from here
(and from :mod:`segport.testing`).
"""

from typing import TYPE_CHECKING

from .contract import (
    DEFAULT_PROFILE_CAP,
    MAX_AUDIENCES,
    Audience,
    AuthHandler,
    BatchResult,
    BatchWriter,
    Destination,
    DestinationSpec,
    FieldSpec,
    Limits,
    MemberState,
    OAuth2Flow,
    Outcome,
    OutcomeStatus,
    Record,
    RunContext,
    spec_from_package,
)
from .errors import (
    AlreadyExists,
    AlreadyRunning,
    AuthError,
    BadBatchError,
    CapExceeded,
    ConfigError,
    ConfigValidationError,
    DestinationError,
    ExitStatus,
    FatalDestinationError,
    InputError,
    NotFound,
    PermissionDenied,
    PluginContractError,
    PluginError,
    PluginLoadError,
    RetryableDestinationError,
    RunError,
    SegportError,
    TooManyAttempts,
    Unauthenticated,
    UnknownAudienceError,
    WorkspaceError,
)
from .hookspecs import hookimpl
from .learned import Learned
from .models import Connection, Export, Role, Run, RunStatus, Segment, Share, User
from .pending import PendingJob, complete_batch
from .pipeline.dispatcher import RetryPolicy
from .registry import Registry

if TYPE_CHECKING:
    from .workspace import Workspace

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PROFILE_CAP",
    "MAX_AUDIENCES",
    "AlreadyExists",
    "AlreadyRunning",
    "Audience",
    "AuthError",
    "AuthHandler",
    "BadBatchError",
    "BatchResult",
    "BatchWriter",
    "CapExceeded",
    "ConfigError",
    "ConfigValidationError",
    "Connection",
    "Destination",
    "DestinationError",
    "DestinationSpec",
    "ExitStatus",
    "Export",
    "FatalDestinationError",
    "FieldSpec",
    "InputError",
    "Learned",
    "Limits",
    "MemberState",
    "NotFound",
    "OAuth2Flow",
    "Outcome",
    "OutcomeStatus",
    "PendingJob",
    "PermissionDenied",
    "PluginContractError",
    "PluginError",
    "PluginLoadError",
    "Record",
    "Registry",
    "RetryPolicy",
    "RetryableDestinationError",
    "Role",
    "Run",
    "RunContext",
    "RunError",
    "RunStatus",
    "Segment",
    "SegportError",
    "Share",
    "TooManyAttempts",
    "Unauthenticated",
    "UnknownAudienceError",
    "User",
    "Workspace",
    "WorkspaceError",
    "__version__",
    "complete_batch",
    "hookimpl",
    "spec_from_package",
]


def __getattr__(name: str) -> object:
    """Import :class:`Workspace` on first use: a plugin importing the contract does not load the store."""
    if name == "Workspace":
        from .workspace import Workspace

        return Workspace
    raise AttributeError(f"module 'segport' has no attribute {name!r}")
