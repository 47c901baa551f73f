"""Make ``corenet_kv`` importable from a checkout even before it is installed,
and use corenet's process harness fixtures (``corenet_proxy_factory`` and
friends: real processes on free loopback ports, stopped by PID)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

pytest_plugins = ["corenet.proxy.fixtures"]

if importlib.util.find_spec("corenet_kv") is None:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))
