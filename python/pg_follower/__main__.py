"""``python -m pg_follower``: the same as the ``pg-follower`` command."""

from .cli import main

raise SystemExit(main())
