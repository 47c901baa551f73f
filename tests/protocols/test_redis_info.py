"""INFO merged over servers: the sans-IO merge of protocols/redis/_info.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from corenet.protocols.redis._info import merge_info, proxy_fields


def _bulk(text: str) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(text), text.encode())


def _info(sections: dict[str, dict[str, str]]) -> str:
    return "\r\n".join(
        f"# {name}\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields.items())
        for name, fields in sections.items()
    )


def _fields(reply: bytes) -> dict[str, str]:
    body = reply.split(b"\r\n", 1)[1][:-2].decode()
    return dict(line.split(":", 1) for line in body.split("\r\n") if ":" in line)


def _server(n: int, keys: int, expires: int, ttl: int) -> bytes:
    return _bulk(
        _info(
            {
                "Server": {"redis_version": "7.0.15", "run_id": f"id{n}"},
                "Clients": {"connected_clients": str(n + 1), "maxclients": "10000"},
                "Memory": {"used_memory": str(1000 * (n + 1)), "used_memory_human": "x"},
                "Commandstats": {
                    "cmdstat_get": f"calls={n + 1},usec={10 * (n + 1)},usec_per_call=10.00"
                },
                "Keyspace": {"db0": f"keys={keys},expires={expires},avg_ttl={ttl}"},
            }
        )
    )


@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**9)),
        min_size=1,
        max_size=5,
    )
)
def test_keyspace_and_counters_are_summed(per_server: list[tuple[int, int, int]]) -> None:
    replies = [_server(i, k, e, t) for i, (k, e, t) in enumerate(per_server)]
    fields = _fields(merge_info(replies))
    keys = sum(k for k, _, _ in per_server)
    expires = sum(e for _, e, _ in per_server)
    ttl = sum(e * t for _, e, t in per_server) // expires if expires else 0
    assert fields["db0"] == f"keys={keys},expires={expires},avg_ttl={ttl}"
    n = len(per_server)
    assert fields["connected_clients"] == str(n * (n + 1) // 2)
    assert fields["used_memory"] == str(1000 * n * (n + 1) // 2)
    assert fields["maxclients"] == "10000" and fields["run_id"] == "id0"
    calls = n * (n + 1) // 2
    assert fields["cmdstat_get"] == f"calls={calls},usec={10 * calls},usec_per_call=10.00"


def test_human_sizes_follow_the_sum_and_the_layout_is_redis() -> None:
    one = _bulk(_info({"Memory": {"used_memory": "1048576", "used_memory_human": "1.00M"}}))
    merged = merge_info([one, one, one])
    assert merged == _bulk(
        _info({"Memory": {"used_memory": "3145728", "used_memory_human": "3.00M"}})
    )


def test_databases_only_some_servers_have_are_kept() -> None:
    a = _bulk(_info({"Keyspace": {"db0": "keys=1,expires=0,avg_ttl=0"}}))
    b = _bulk(
        _info(
            {"Keyspace": {"db0": "keys=2,expires=0,avg_ttl=0", "db3": "keys=5,expires=1,avg_ttl=7"}}
        )
    )
    fields = _fields(merge_info([a, b]))
    assert fields == {"db0": "keys=3,expires=0,avg_ttl=0", "db3": "keys=5,expires=1,avg_ttl=7"}


def test_an_error_fails_the_whole_command_and_resp3_stays_verbatim() -> None:
    ok = _bulk(_info({"Stats": {"total_commands_processed": "4"}}))
    assert merge_info([ok, b"-ERR Connection refused\r\n"]) == b"-ERR Connection refused\r\n"
    assert merge_info([ok, b":1\r\n"]) == b"-ERR Protocol error\r\n"
    text = "txt:" + _info({"Stats": {"total_commands_processed": "4"}})
    verbatim = b"=%d\r\n%s\r\n" % (len(text), text.encode())
    merged = merge_info([verbatim, verbatim])
    body = "txt:" + _info({"Stats": {"total_commands_processed": "8"}})
    assert merged == b"=%d\r\n%s\r\n" % (len(body), body.encode())


FACTS = {
    "pool": "alpha",
    "listen": "127.0.0.1:22121",
    "port": 22121,
    "process_id": 4242,
    "uptime": 2 * 86400 + 5,
    "version": "9.9.9",
    "client_connections": 3,
    "total_connections": 17,
    "client_eof": 1,
    "client_err": 2,
    "server_ejects": 0,
    "forward_error": 5,
    "fragments": 12,
}


def _sectioned(reply: bytes) -> dict[str, dict[str, str]]:
    text = reply.split(b"\r\n", 1)[1][:-2].decode().removeprefix("txt:")
    return {
        block.split("\r\n", 1)[0][2:]: dict(
            line.split(":", 1) for line in block.split("\r\n")[1:] if line
        )
        for block in text.split("\r\n\r\n")
    }


def _full_server(n: int) -> dict[str, dict[str, str]]:
    return {
        "Server": {
            "redis_version": "7.0.15",
            "process_id": str(100 + n),
            "run_id": f"id{n}",
            "tcp_port": str(6379 + n),
            "uptime_in_seconds": "99999999",
            "uptime_in_days": "1157",
        },
        "Clients": {"connected_clients": "7", "blocked_clients": "1"},
        "Stats": {"total_connections_received": "50", "total_commands_processed": "10"},
        "Keyspace": {"db0": f"keys={n + 1},expires=0,avg_ttl=0"},
    }


def test_the_proxy_reports_its_own_server_clients_and_stats() -> None:
    merged = _sectioned(merge_info([_bulk(_info(_full_server(n))) for n in range(3)], FACTS))
    assert list(merged) == ["Server", "Clients", "Stats", "Keyspace"]  # Redis's layout
    assert merged["Server"] == {
        "redis_version": "7.0.15",  # the servers' (the first one's)
        "process_id": "4242",
        "run_id": "id0",
        "tcp_port": "22121",
        "uptime_in_seconds": str(2 * 86400 + 5),
        "uptime_in_days": "2",
        "proxy": "corenet",
        "proxy_version": "9.9.9",
        "proxy_pool": "alpha",
        "proxy_listen": "127.0.0.1:22121",
    }
    # The proxy's clients; blocked clients are the servers' (summed).
    assert merged["Clients"] == {"connected_clients": "3", "blocked_clients": "3"}
    assert merged["Stats"] == {
        "total_connections_received": "17",
        "total_commands_processed": "30",  # the servers' work, summed
        "client_eof": "1",
        "client_err": "2",
        "server_ejects": "0",
        "forward_error": "5",
        "fragments": "12",
    }
    assert merged["Keyspace"] == {"db0": "keys=6,expires=0,avg_ttl=0"}


def test_sections_the_servers_did_not_send_get_no_proxy_fields() -> None:
    # INFO keyspace: nothing of the proxy's, and RESP3 stays verbatim.
    text = "txt:" + _info({"Keyspace": {"db0": "keys=2,expires=0,avg_ttl=0"}})
    verbatim = b"=%d\r\n%s\r\n" % (len(text), text.encode())
    merged = merge_info([verbatim, verbatim], FACTS)
    body = "txt:" + _info({"Keyspace": {"db0": "keys=4,expires=0,avg_ttl=0"}})
    assert merged == b"=%d\r\n%s\r\n" % (len(body), body.encode())


@given(
    st.dictionaries(
        st.sampled_from(["server", "clients", "stats", "memory", "keyspace"]),
        st.dictionaries(
            st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
            st.integers(0, 10**9).map(str),
            max_size=6,
        ),
        min_size=1,
    )
)
def test_every_proxy_field_is_in_its_section_once(sections: dict[str, dict[str, str]]) -> None:
    reply = _bulk(_info({name.capitalize(): fields for name, fields in sections.items()}))
    merged = _sectioned(merge_info([reply, reply], FACTS))
    for name, fields in proxy_fields(FACTS).items():
        if name.capitalize() in merged:
            assert fields.items() <= merged[name.capitalize()].items()
        else:
            assert name not in sections
    # The servers' other fields are still there.
    for name, fields in sections.items():
        assert fields.keys() <= merged[name.capitalize()].keys()
