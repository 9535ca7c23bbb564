"""``segport serve``: the web console and the HTTP API, over the same services as the CLI.

Needs the ``web`` extra (``pip install 'segport[web]'``). :func:`create_app` returns the ASGI
application; ``segport serve`` runs it with uvicorn.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
