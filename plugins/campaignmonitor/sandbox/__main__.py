"""``python -m segport_campaignmonitor.sandbox``: serve the sandbox until SIGINT/SIGTERM."""

from .server import main

raise SystemExit(main())
