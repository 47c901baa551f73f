"""Smoke test of the TLS benchmark: ``python -m bench.tls --quick`` end to end.

Tiny counts; checks the exit status, the table, the result file's shape and
that the bar is computed.  It does not judge the figures.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from bench.tls import render, summarize
from tests.conftest import need_binary
from tests.test_bench import run_bench

if TYPE_CHECKING:
    from pathlib import Path

CORENET_TARGETS = {"redis", "redis-tls", "corenet", "corenet-tls-client", "corenet-tls-both"}


@pytest.mark.posix_only
def test_quick_tls_run_writes_well_formed_result(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    for name in ("redis-server", "redis-benchmark", "openssl"):
        need_binary(request.config, name)
    out = tmp_path / "tls.json"
    done = run_bench("bench.tls", "--out", str(out), timeout=120)
    assert "BAR get depth 16: TLS both sides / plain = " in done.stdout
    result = json.loads(out.read_text(encoding="utf-8"))
    assert {"runs", "summary", "machine", "git", "settings", "notes"} <= set(result)
    assert all(run["ok"] for run in result["runs"]), result["runs"]
    targets = {row["target"] for row in result["summary"]["rows"]}
    assert targets >= CORENET_TARGETS
    assert {(b["test"], b["depth"]) for b in result["summary"]["bars"]} == {
        ("set", 16),
        ("get", 16),
    }


def test_summary_medians_ratios_and_bar() -> None:
    runs = [
        {"ok": True, "test": "get", "depth": 16, "target": t, "ops": ops, "p50_ms": 1.0}
        for t, ops in (("corenet", 100.0), ("corenet", 300.0), ("corenet-tls-both", 90.0))
    ]
    summary = summarize({"runs": runs})
    (bar,) = summary["bars"]
    assert bar == {"test": "get", "depth": 16, "ratio": 0.45, "pass": False}
    assert "FAIL" in render(summary)
