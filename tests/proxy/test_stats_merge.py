"""corenet.proxy.stats.merge_snapshots: the supervisor's sum of its workers' stats."""

from __future__ import annotations

from typing import Any

from corenet.proxy.stats import (
    HEADER_FIELDS,
    NUTCRACKER_VERSION,
    SERVER_STATS,
    encode,
    merge_snapshots,
)


def _server(**figures: int) -> dict[str, int]:
    base = dict.fromkeys(SERVER_STATS, 0)
    base.update(figures)
    return base


def _worker(
    uptime: int, total: int, curr: int, clients: int, s1: dict[str, int], s2: dict[str, int]
) -> dict[str, Any]:
    return {
        "service": "nutcracker",
        "source": "host-a",
        "version": NUTCRACKER_VERSION,
        "uptime": uptime,
        "timestamp": 1000 + uptime,
        "total_connections": total,
        "curr_connections": curr,
        "alpha": {
            "client_eof": 1,
            "client_err": 0,
            "client_connections": clients,
            "server_ejects": 0,
            "forward_error": 0,
            "fragments": 2,
            "s1": s1,
            "s2": s2,
        },
    }


def test_counters_and_gauges_are_summed_ejected_at_is_the_latest() -> None:
    a = _worker(
        5,
        10,
        4,
        3,
        _server(requests=7, request_bytes=70, server_connections=1, server_ejected_at=111),
        _server(requests=1, in_queue=2, out_queue_bytes=9),
    )
    b = _worker(
        3,
        6,
        2,
        1,
        _server(requests=5, request_bytes=50, server_connections=1, server_ejected_at=222),
        _server(requests=4, in_queue=1, out_queue_bytes=1),
    )
    merged = merge_snapshots([a, b], started=900.0, now=1010.5)
    assert list(merged)[: len(HEADER_FIELDS)] == list(HEADER_FIELDS)
    assert merged["service"] == "nutcracker"
    assert merged["source"] == "host-a"
    assert merged["version"] == NUTCRACKER_VERSION
    assert merged["uptime"] == 110  # the supervisor's, not a worker's
    assert merged["timestamp"] == 1010
    assert merged["total_connections"] == 16
    assert merged["curr_connections"] == 6
    pool = merged["alpha"]
    assert list(pool) == list(a["alpha"])  # nutcracker's key order kept
    assert pool["client_connections"] == 4
    assert pool["client_eof"] == 2
    assert pool["fragments"] == 4
    assert pool["s1"]["requests"] == 12
    assert pool["s1"]["request_bytes"] == 120
    assert pool["s1"]["server_connections"] == 2
    assert pool["s1"]["server_ejected_at"] == 222
    assert pool["s2"]["in_queue"] == 3
    assert pool["s2"]["out_queue_bytes"] == 10
    assert list(pool["s1"]) == list(a["alpha"]["s1"])
    # The inputs are left alone.
    assert a["alpha"]["s1"]["requests"] == 7


def test_without_started_the_header_times_are_the_latest_workers() -> None:
    a = _worker(5, 1, 1, 0, _server(), _server())
    b = _worker(3, 1, 1, 0, _server(), _server())
    merged = merge_snapshots([a, b])
    assert merged["uptime"] == 5
    assert merged["timestamp"] == 1005


def test_one_snapshot_merges_to_itself_and_encodes_the_same() -> None:
    a = _worker(5, 10, 4, 3, _server(requests=7), _server(requests=1))
    merged = merge_snapshots([a])
    assert merged == a
    assert encode(merged) == encode(a)


def test_no_snapshot_gives_a_header() -> None:
    merged = merge_snapshots([], started=100.0, now=150.0)
    assert list(merged) == list(HEADER_FIELDS)
    assert merged["service"] == "nutcracker"
    assert merged["version"] == NUTCRACKER_VERSION
    assert merged["uptime"] == 50
    assert merged["total_connections"] == 0
