"""``INFO`` over every server of a pool, merged into what one Redis would say.

Each server answers ``INFO [section ...]`` with the same request; the
replies (bulk strings in RESP2, verbatim strings in RESP3) are text
sections: ``# Name`` then ``field:value`` lines.  The merge keeps the first
server's sections, fields and order, adds what only later servers have,
and combines values so:

* ``keyspace``: per database, ``keys`` and ``expires`` summed, and
  ``avg_ttl`` the mean of the servers' weighted by their ``expires``;
* the counters of :data:`SUMMED` (clients, memory, commands, network bytes,
  hits and misses...): summed; their ``*_human`` twins recomputed from the
  sum, as Redis writes them;
* ``commandstats`` and ``errorstats``: every integer of a line summed per
  command or error (``calls``, ``usec``, ``count``...), ``usec_per_call``
  recomputed;
* everything else (the ``server`` section, versions, ratios, roles,
  configuration): the first server's;
* but the fields of :func:`proxy_fields`, where the servers' reply has their
  section: the proxy's own, from the application's pool facts
  (:data:`corenet.protocol.POOL_FACTS`).  They describe what the client is
  connected to: the proxy process (``process_id``, ``tcp_port``,
  ``uptime_in_seconds``), its clients (``connected_clients``,
  ``total_connections_received``) and its counters; the proxy-only fields
  are added at the end of their section.  Without facts (a request made in
  a test) those fields are merged like the others.

A server that answers an error fails the whole command with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.protocol import POOL_COUNTER_FACTS
from corenet.protocols.redis._fanout import _failed

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["SUMMED", "merge_info", "proxy_fields"]

SUMMED = frozenset(
    (
        "connected_clients blocked_clients tracking_clients clients_in_timeout_table "
        "used_memory used_memory_rss used_memory_peak used_memory_dataset used_memory_lua "
        "used_memory_scripts total_connections_received total_commands_processed "
        "instantaneous_ops_per_sec total_net_input_bytes total_net_output_bytes "
        "rejected_connections expired_keys evicted_keys evicted_clients keyspace_hits "
        "keyspace_misses pubsub_channels pubsub_patterns total_error_replies "
        "unexpected_error_replies total_reads_processed total_writes_processed"
    ).split()
)
"""The fields summed over the servers (Redis's names)."""

_PER_LINE_SUMS = frozenset(["commandstats", "errorstats"])

Section = tuple[str, dict[str, str]]


def _text(reply: bytes) -> tuple[bytes, str] | None:
    """``(type byte, text)`` of a bulk or verbatim (``txt:``) string reply."""
    nl = reply.find(b"\r\n")
    if reply[:1] not in (b"$", b"=") or nl < 0 or not reply[1:nl].isdigit():
        return None
    body = reply[nl + 2 : -2]
    if reply[:1] == b"=":
        body = body[4:]  # "txt:"
    return reply[:1], body.decode("utf-8", "replace")


def _sections(text: str) -> list[Section]:
    sections: list[Section] = []
    fields: dict[str, str] = {}
    for line in text.split("\r\n"):
        if line.startswith("# "):
            fields = {}
            sections.append((line[2:], fields))
        elif ":" in line:
            if not sections:
                sections.append(("", fields))
            name, value = line.split(":", 1)
            fields[name] = value
    return sections


def _pairs(value: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in value.split(",") if "=" in item)


def _number(text: str) -> int:
    return int(text) if text.isdigit() else 0


def _human(n: int) -> str:
    """Bytes the way Redis's ``bytesToHuman`` writes them."""
    if n < 1024:
        return f"{n}B"
    value = float(n)
    for unit in "KMGTPE":
        value /= 1024
        if value < 1024 or unit == "E":
            return f"{value:.2f}{unit}"
    raise AssertionError("unreachable")  # the loop returns at "E"


def _sum_pairs(values: list[str]) -> str:
    """``calls=1,usec=5,...`` lines summed field by field (first line's order)."""
    maps = [_pairs(v) for v in values]
    out = dict(maps[0])
    for name in out:
        if all(m.get(name, "0").isdigit() for m in maps):
            out[name] = str(sum(_number(m.get(name, "0")) for m in maps))
    if "usec_per_call" in out and "calls" in out and "usec" in out:
        calls = _number(out["calls"])
        out["usec_per_call"] = f"{_number(out['usec']) / calls if calls else 0:.2f}"
    return ",".join(f"{k}={v}" for k, v in out.items())


def _keyspace(values: list[str]) -> str:
    maps = [_pairs(v) for v in values]
    keys = sum(_number(m.get("keys", "0")) for m in maps)
    expires = sum(_number(m.get("expires", "0")) for m in maps)
    weighted = sum(_number(m.get("avg_ttl", "0")) * _number(m.get("expires", "0")) for m in maps)
    return f"keys={keys},expires={expires},avg_ttl={weighted // expires if expires else 0}"


def _merge_field(section: str, name: str, values: list[str]) -> str:
    if section.lower() == "keyspace":
        return _keyspace(values)
    if section.lower() in _PER_LINE_SUMS:
        return _sum_pairs(values)
    if name in SUMMED:
        return str(sum(_number(v) for v in values))
    return values[0]


def proxy_fields(facts: Mapping[str, object]) -> dict[str, dict[str, str]]:
    """Section (lower-case) -> the fields the proxy reports itself, from its
    pool facts: they replace the servers' value, or are added at the end of
    the section (``proxy``, ``proxy_version``, ``proxy_pool``,
    ``proxy_listen`` and the pool's counters, which Redis has not)."""
    uptime = int(str(facts["uptime"]))
    return {
        "server": {
            "process_id": str(facts["process_id"]),
            "tcp_port": str(facts["port"]),
            "uptime_in_seconds": str(uptime),
            "uptime_in_days": str(uptime // 86400),
            "proxy": "corenet",
            "proxy_version": str(facts["version"]),
            "proxy_pool": str(facts["pool"]),
            "proxy_listen": str(facts["listen"]),
        },
        "clients": {"connected_clients": str(facts["client_connections"])},
        "stats": {
            "total_connections_received": str(facts["total_connections"]),
            **{name: str(facts[name]) for name in POOL_COUNTER_FACTS},
        },
    }


def merge_info(replies: list[bytes], facts: Mapping[str, object] | None = None) -> bytes:
    """One ``INFO`` reply from every server's, with the proxy's own fields
    when the application gave its pool ``facts`` (module docstring)."""
    own = proxy_fields(facts) if facts is not None else {}
    texts = []
    for reply in replies:
        found = _text(reply)
        if found is None:
            return _failed(reply)
        texts.append(found)
    kind = texts[0][0]
    merged: dict[str, dict[str, list[str]]] = {}
    for _, text in texts:
        for section, fields in _sections(text):
            into = merged.setdefault(section, {})
            for name, value in fields.items():
                into.setdefault(name, []).append(value)
    out = []
    for section, gathered in merged.items():
        lines = [f"# {section}\r\n"] if section else []
        values = {name: _merge_field(section, name, v) for name, v in gathered.items()}
        values.update(own.get(section.lower(), {}))
        for name, value in values.items():
            base = name.removesuffix("_human")
            if base != name and base in SUMMED and base in values:
                value = _human(_number(values[base]))
            lines.append(f"{name}:{value}\r\n")
        out.append("".join(lines))
    body = "\r\n".join(out).encode()
    if kind == b"=":
        body = b"txt:" + body
    return b"%s%d\r\n%s\r\n" % (kind, len(body), body)
