"""``python -m corenet``: the same as the ``corenet-proxy`` command."""

from corenet.cli import main

raise SystemExit(main())
