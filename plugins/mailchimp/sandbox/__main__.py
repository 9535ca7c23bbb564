"""``python -m segport_mailchimp.sandbox``: serve the sandbox until SIGINT/SIGTERM."""

from .server import main

raise SystemExit(main())
