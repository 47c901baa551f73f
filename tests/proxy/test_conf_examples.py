"""The example configurations shipped in conf/ pass ``corenet-proxy -t``."""

from __future__ import annotations

import pathlib

import pytest

from corenet.proxy import cli

CONF = pathlib.Path(__file__).resolve().parents[2] / "conf"
EXAMPLES = sorted(CONF.glob("*.yml"))


def test_there_are_examples() -> None:
    assert [p.name for p in EXAMPLES] == [
        "nutcracker.yml",
        "redis-cluster.yml",
        "unix-and-limits.yml",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_passes_the_check(
    path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["-t", "-c", str(path)]) == 0
    assert "syntax is ok" in capsys.readouterr().err
