"""``python -m pg_follower``: the same as the ``pg-follower`` command."""

from pg_follower.ops.cli import main

raise SystemExit(main())
