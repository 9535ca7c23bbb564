"""The optional parts of segport (the extras of ``pip install 'segport[EXTRA]'``) and what a missing one says.

Each extra declares every module its code paths import (``setup.cfg``; ``.ci/extras-smoke`` installs
each alone and runs the README's commands with it). Should a module still be missing, the error
is the install step to run, naming the module, never a service that cannot be reached.
"""

from __future__ import annotations

EXTRAS = {  # each extra, and what needs it (the subject of the error's sentence)
    "postgres": "a PostgreSQL database",
    "workers": "queuing runs for workers",
    "web": "passwords, sign-in and the web console",
}

__all__ = ["EXTRAS", "install_hint"]


def install_hint(exc: ImportError, extra: str) -> str:
    """Return what to install for ``extra`` after ``exc``: the missing module and the ``pip install`` to run.

    :param exc: the import that failed (``exc.name`` is the module, when Python knows it).
    :param extra: the extra that brings the module, a key of :data:`EXTRAS`.
    """
    module = (exc.name or "").partition(".")[0]
    if module:
        missing = f"the Python module {module!r}, which is not installed"
        also = f" (it brings {module!r})"
    else:  # a package refused to load (e.g. a library it wraps is missing): its own first line says why
        text = str(exc).strip()
        missing = f"a module that cannot be imported ({text.splitlines()[0] if text else type(exc).__name__})"
        also = ""
    return f"{EXTRAS[extra]} needs {missing}: pip install 'segport[{extra}]'{also}"
