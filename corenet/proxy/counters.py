"""nutcracker's counters: what the data path bumps and the stats port reports."""

from __future__ import annotations

import attrs

__all__ = ["PoolStats", "ServerStats"]


@attrs.define(slots=True)
class PoolStats:
    """nutcracker's per-pool counters (``client_connections`` is a gauge)."""

    client_eof: int = 0
    client_err: int = 0
    client_connections: int = 0
    server_ejects: int = 0
    forward_error: int = 0
    fragments: int = 0
    # corenet only, reported for pools with tls_cert:
    tls_handshake_failures: int = 0
    tls_connections: int = 0
    # corenet only, reported for Redis Cluster pools:
    cluster_moved: int = 0
    cluster_ask: int = 0
    cluster_retries: int = 0
    cluster_refreshes: int = 0
    cluster_refresh_errors: int = 0


@attrs.define(slots=True)
class ServerStats:
    """nutcracker's per-server counters (``server_connections`` is a gauge)."""

    server_eof: int = 0
    server_err: int = 0
    server_timedout: int = 0
    server_connections: int = 0
    server_ejected_at: int = 0
    requests: int = 0
    request_bytes: int = 0
    responses: int = 0
    response_bytes: int = 0
    # corenet only, reported for pools with server_tls:
    tls_handshake_failures: int = 0
    tls_connections: int = 0
