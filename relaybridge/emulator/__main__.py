"""``python -m relaybridge.emulator``: run a local Relay until SIGINT/SIGTERM."""

from .cli import main

raise SystemExit(main())
