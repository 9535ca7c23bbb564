"""segport run log: one JSON line per run event, appended to the file ``SEGPORT_RUN_LOG`` names.

Enable it by setting ``SEGPORT_RUN_LOG=/var/log/segport/runs.jsonl`` (``~`` is expanded; a relative
path is relative to the working folder; missing folders are created). Unset or empty, the plugin
does nothing. It ships under the ``segport.hooks`` entry point ``runlog`` (module
:mod:`segport_runlog.hooks`), so every segport process loads it, as a third-party plugin would be.

Each run writes a ``run.started`` line when it starts and a ``run.finished`` line when it ends
(dry runs too, with status ``planned``)::

    {"event": "run.finished", "at": "2025-01-31T03:00:12.345+00:00",
     "export": {"name": "vip-news", "connection": "Newsletter", "segments": ["VIP"]},
     "run": {"id": 42, "status": "succeeded", "counts": {...}, ...}}

``run`` is the run record (``segport.Run.to_dict()``, see ``schemas/run-record.schema.json``).
A run log that cannot be written never fails the run: a warning is logged instead.
"""

__all__: list[str] = []
