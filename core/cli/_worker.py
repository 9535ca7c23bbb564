"""``segport worker``: a Celery worker running queued exports (needs ``SEGPORT_BROKER_URL``)."""

from __future__ import annotations

import click

from ..errors import ConfigError
from ..executor import QUEUE, Executor
from ..governor import BROKER_ENV


@click.command()
@click.option(
    "--concurrency", "-c", type=click.IntRange(1), default=None, help="Runs at once (default: the CPU count)."
)
@click.option(
    "--queues", "-Q", default=QUEUE, show_default=True, help="Comma-separated queues to take runs from."
)
@click.option(
    "--loglevel", "-l", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
def worker(concurrency: int | None, queues: str, loglevel: str) -> None:
    """Run queued exports until SIGTERM (each task opens its workspace as its user)."""
    executor = Executor.from_env()
    if executor is None:
        raise ConfigError(f"'segport worker' needs a broker: set {BROKER_ENV}, e.g. redis://127.0.0.1:6379/0")
    executor.check()
    argv = ["worker", f"--queues={queues}", f"--loglevel={loglevel.upper()}", "--without-gossip", "--without-mingle"]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    executor.app.worker_main(argv)
