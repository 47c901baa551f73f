"""INFO merged over servers: the sans-IO merge of protocols/redis/_info.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from corenet.protocols.redis._info import merge_info


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
