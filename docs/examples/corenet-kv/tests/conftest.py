"""Make ``corenet_kv`` importable from a checkout even before it is installed."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

if importlib.util.find_spec("corenet_kv") is None:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))
