"""The workspace's services, one job each, behind the :class:`segport.Workspace` facade.

Every service acts for the user of its :class:`Context`, checks that user's permission itself, takes
keyword arguments, returns :mod:`segport.models` objects and raises :class:`segport.SegportError`
subclasses whose messages name no interface detail (``param`` says which argument was at fault).
The CLI and the HTTP API are thin layers over them.
"""

from __future__ import annotations

from .catalog import Catalog
from .connections import Connections
from .context import Context
from .drift import Drift
from .exports import Exports
from .governance import Governance
from .history import History
from .identities import Identities
from .names import suggest_names
from .profiles import Profiles
from .runs import Runs
from .schedules import Schedules

__all__ = [
    "Catalog",
    "Connections",
    "Context",
    "Drift",
    "Exports",
    "Governance",
    "History",
    "Identities",
    "Profiles",
    "Runs",
    "Schedules",
]

# every service (those listed above, and any added to them): a NotFound names the close names the user may see
for _service in [globals()[name] for name in __all__ if name != "Context"]:
    suggest_names(_service)
