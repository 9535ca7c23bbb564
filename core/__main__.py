"""``python -m segport`` runs the CLI."""

from .cli import main

main()
