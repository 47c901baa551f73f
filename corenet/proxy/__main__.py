"""``python -m corenet.proxy`` (and ``python -m corenet``): ``corenet-proxy``."""

from corenet.proxy.cli import main

raise SystemExit(main())
