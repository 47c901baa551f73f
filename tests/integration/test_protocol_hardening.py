"""Protocol hardening, checked against live servers byte for byte.

* Argument counts: redis-server 7 takes up to INT_MAX arguments and refuses
  more with ``invalid multibulk length``; corenet-proxy answers, waits and
  closes as it does up to 1 048 576 arguments, and refuses more as Redis 6
  did (docs/redis.md).
* A fanned-out request (``MGET``, ``DEL``..., ``MSET``, memcache ``get``)
  with a dead server is answered with one error for the whole request, as
  nutcracker answers, and the connection is kept.
* A memcache connection opening with the binary protocol's magic byte is
  closed at once, instead of hanging.
* Inline commands are split as redis-server splits them, for every control
  byte between, inside and around words, quoted and not; a NUL before the
  end of a line makes both wait, then refuse the request as too big.

The servers and proxies come from the fixtures (``redis_servers``,
``memcached_servers``, ``corenet_proxy_factory``, ``nutcracker_factory``);
the sockets are driven here.
"""

from __future__ import annotations

import hashlib
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocols._helpers import NUL_WAITS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

LOOPBACK = "127.0.0.1"
INLINE_MAX = 64 * 1024  # Redis's PROTO_INLINE_MAX_SIZE

# -- helpers --------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


def pool(servers: Sequence[str], *, redis_pool: bool = True, **keys: Any) -> dict[str, Any]:
    """A one-pool nutcracker.yml ``{"alpha": {...}}`` over ``host:port`` servers."""
    body: dict[str, Any] = {
        "listen": f"{LOOPBACK}:{free_port()}",
        "redis": redis_pool,
        "hash": "fnv1a_64",
        "distribution": "ketama",
        **keys,
        "servers": [f"{server}:1" for server in servers],
    }
    return {"alpha": body}


def spread(n: int, prefix: str) -> list[bytes]:
    """Well-mixed key names, so that keys land on every server."""
    return [f"{prefix}:{hashlib.sha1(str(i).encode()).hexdigest()[:10]}".encode() for i in range(n)]


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def connect(address: str, timeout: float = 5.0) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def read(
    sock: socket.socket, deadline: float, done: Callable[[bytes], bool] | None = None
) -> tuple[bytes, str]:
    """What arrives on ``sock``: ``(bytes, "done")`` once ``done(bytes)``,
    ``"closed"`` at EOF or reset, ``"open"`` when ``deadline`` passed first."""
    data = b""
    while done is None or not done(data):
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, "open"
        except ConnectionResetError:
            return data, "closed"
        if not chunk:
            return data, "closed"
        data += chunk
    return data, "done"


def exchange_both(
    addresses: Iterable[str],
    payload: bytes,
    *,
    quiet: float = 0.3,
    done: Callable[[bytes], bool] | None = None,
) -> list[tuple[bytes, str]]:
    """Send ``payload`` to every address at once, then read each (see
    :func:`read`) until ``done``, EOF, or ``quiet`` seconds have passed."""
    socks = [connect(address) for address in addresses]
    try:
        for sock in socks:
            sock.sendall(payload)
        deadline = time.monotonic() + quiet
        return [read(sock, deadline, done) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def stored(server: Any) -> dict[bytes, object]:
    """Every key of ``server`` with its value (strings and lists)."""
    client = server.client()
    try:
        out: dict[bytes, object] = {}
        for key in client.keys("*"):
            kind = client.type(key)
            out[key] = client.lrange(key, 0, -1) if kind == b"list" else client.get(key)
        return out
    finally:
        client.close()


def flush(*servers: Any) -> None:
    for server in servers:
        client = server.client()
        try:
            client.flushall()
        finally:
            client.close()


# -- argument counts --------------------------------------------------------------------


INVALID_COUNT = (b"-ERR Protocol error: invalid multibulk length\r\n", "closed")


def test_argument_counts_are_refused_where_redis_7_refuses_them_and_over_the_cap(
    redis_servers, corenet_proxy_factory
):
    direct, backend = redis_servers(2)
    proxy = corenet_proxy_factory(pool([backend.address]))
    same = {
        b"*1048576\r\n": (b"", "open"),
        b"*2147483648\r\n": INVALID_COUNT,
        b"*3000000000\r\n$4\r\nPING\r\n": INVALID_COUNT,
    }
    for payload, expected in same.items():
        ours, theirs = exchange_both([proxy.address("alpha"), direct.address], payload)
        assert ours == theirs == expected, payload
    # Redis 7 waits for up to INT_MAX arguments; corenet keeps Redis 6's cap
    # of 1 048 576 (docs/redis.md), refused as Redis 6 refused it.
    for payload in (
        b"*1048577\r\n",
        b"*1048577\r\n$6\r\nEXISTS\r\n$1\r\nk\r\n",
        b"*2147483647\r\n",
    ):
        ours, theirs = exchange_both([proxy.address("alpha"), direct.address], payload)
        assert (ours, theirs) == (INVALID_COUNT, (b"", "open")), payload


def test_a_million_arguments_are_one_request(redis_servers, corenet_proxy_factory):
    direct, backend = redis_servers(2)
    proxy = corenet_proxy_factory(pool([backend.address]))
    for server in (direct, backend):
        client = server.client()
        try:
            assert client.set(b"k7", b"v") is True
        finally:
            client.close()
    keys = [b"k%d" % (i % 10) for i in range(1_048_575)]  # with EXISTS: the cap
    ours, theirs = exchange_both(
        [proxy.address("alpha"), direct.address],
        command(b"EXISTS", *keys) + b"PING\r\n",
        quiet=30,
        done=lambda data: data.endswith(b"+PONG\r\n"),
    )
    assert ours == theirs == (b":%d\r\n+PONG\r\n" % keys.count(b"k7"), "done")


# -- a fanned-out request with a dead server ---------------------------------------------

REFUSED = b"-ERR Connection refused\r\n"


@pytest.mark.parametrize(
    "name", [b"MGET", b"DEL", b"UNLINK", b"EXISTS", b"TOUCH", b"MSET"], ids=bytes.decode
)
def test_multi_key_request_with_a_dead_server_is_one_error(
    name, redis_servers, corenet_proxy_factory
):
    (live,) = redis_servers(1)
    proxy = corenet_proxy_factory(pool([live.address, f"{LOOPBACK}:{free_port()}"]))
    keys = spread(40, "dead")
    args = [x for k in keys for x in (k, b"v")] if name == b"MSET" else keys
    ((reply, state),) = exchange_both(
        [proxy.address("alpha")],
        command(name, *args) + b"PING\r\n",
        quiet=5,
        done=lambda data: data.endswith(b"+PONG\r\n"),
    )
    # One error for the whole request, then the connection goes on.
    assert (reply, state) == (REFUSED + b"+PONG\r\n", "done")


def test_mget_with_a_dead_server_raises_in_redis_py(redis_servers, corenet_proxy_factory):
    (live,) = redis_servers(1)
    proxy = corenet_proxy_factory(pool([live.address, f"{LOOPBACK}:{free_port()}"]))
    client = proxy.client("alpha")
    try:
        # Not a list holding exception objects, which callers take for values.
        with pytest.raises(redis.ResponseError, match="^Connection refused$"):
            client.mget(spread(40, "py"))
        assert client.ping() is True
    finally:
        client.close()


def test_mget_with_a_dead_server_answers_the_error_nutcracker_answers(
    redis_servers, corenet_proxy_factory, nutcracker_factory
):
    (live,) = redis_servers(1)
    config = pool([live.address, f"{LOOPBACK}:{free_port()}"])
    ours = corenet_proxy_factory(config)
    config["alpha"]["listen"] = f"{LOOPBACK}:{free_port()}"
    theirs = nutcracker_factory(config)
    payload = command(b"MGET", *spread(40, "nc"))
    replies = exchange_both(
        [ours.address("alpha"), theirs.address("alpha")],
        payload,
        quiet=5,
        done=lambda data: data.endswith(b"\r\n"),
    )
    # (nutcracker then closes the connection; corenet keeps it.)
    assert replies == [(REFUSED, "done"), (REFUSED, "done")]


def test_memcache_multi_get_with_a_dead_server_is_one_error(
    memcached_servers, corenet_proxy_factory, nutcracker_factory
):
    (live,) = memcached_servers(1)
    config = pool([live.address, f"{LOOPBACK}:{free_port()}"], redis_pool=False)
    ours = corenet_proxy_factory(config)
    config["alpha"]["listen"] = f"{LOOPBACK}:{free_port()}"
    theirs = nutcracker_factory(config)
    refused = b"SERVER_ERROR Connection refused\r\n"
    get = b"get " + b" ".join(spread(40, "mc")) + b"\r\n"
    ((reply, state),) = exchange_both(
        [ours.address("alpha")], get + b"foo\r\n", quiet=5, done=lambda d: d.endswith(b"ERROR\r\n")
    )
    assert (reply, state) == (refused + b"ERROR\r\n", "done")  # and the connection goes on
    ((reply, _),) = exchange_both(
        [theirs.address("alpha")], get, quiet=5, done=lambda d: d.endswith(b"\r\n")
    )
    assert reply == refused  # nutcracker: the same line (then it closes)


# -- the memcache binary protocol --------------------------------------------------------

BINARY_GET = bytes([0x80, 0x00, 0x00, 0x03]) + bytes(4) + bytes([0, 0, 0, 3]) + bytes(12) + b"foo"


def test_memcache_binary_request_gets_eof_at_once(memcached_servers, corenet_proxy_factory):
    (backend,) = memcached_servers(1)
    proxy = corenet_proxy_factory(pool([backend.address], redis_pool=False))
    started = time.monotonic()
    ((reply, state),) = exchange_both([proxy.address("alpha")], BINARY_GET, quiet=5)
    assert (reply, state) == (b"", "closed")
    assert time.monotonic() - started < 2.0  # loose: it is immediate
    # The proxy is unharmed, and a text connection works.
    ((reply, state),) = exchange_both(
        [proxy.address("alpha")], b"get foo\r\n", quiet=5, done=lambda d: d.endswith(b"END\r\n")
    )
    assert (reply, state) == (b"END\r\n", "done")


def test_memcache_0x80_later_in_a_connection_is_text_as_in_memcached(
    memcached_servers, corenet_proxy_factory
):
    direct, backend = memcached_servers(2)
    proxy = corenet_proxy_factory(pool([backend.address], redis_pool=False))
    payload = b"get a\r\n\x80foo\r\nget b\r\n"
    ours, theirs = exchange_both(
        [proxy.address("alpha"), direct.address],
        payload,
        quiet=5,
        done=lambda data: data.count(b"\r\n") >= 3,
    )
    assert ours == theirs == (b"END\r\nERROR\r\nEND\r\n", "done")


# -- inline commands -------------------------------------------------------------------

SENTINEL = command(b"ECHO", b"--end--")
SENTINEL_REPLY = b"$7\r\n--end--\r\n"


def inline_outcome(proxy: Any, direct: Any, backend: Any, line: bytes) -> list[object]:
    """What the proxy (over ``backend``) and ``direct`` make of ``line``:
    per side the replies, whether the connection was answered to the end,
    closed, or left waiting, and what got stored."""
    sides = exchange_both(
        [proxy.address("alpha"), direct.address],
        line + SENTINEL,
        done=lambda data: data.endswith(SENTINEL_REPLY),
    )
    outcome = [sides[0], sides[1], stored(backend), stored(direct)]
    flush(backend, direct)
    return outcome


def assert_same(outcome: list[object], line: bytes) -> None:
    ours, theirs, ours_stored, theirs_stored = outcome
    assert ours == theirs, line
    assert ours_stored == theirs_stored, line


# Each template gets one byte (every byte from 0x00 to 0x20, and some more)
# between, inside or around words, in and out of quotes.
TEMPLATES = [
    b"RPUSH L a%sb",
    b"RPUSH L%sa b",
    b"%sRPUSH L a",
    b"RPUSH L a%s",
    b'RPUSH L "a"%sb',
    b"RPUSH L 'a'%s",
    b'RPUSH L "a%sb"',
    b"RPUSH L 'a%sb'",
    b'RPUSH L "\\%s" x',
]
SPECIAL = [bytes([c]) for c in range(0x21)] + [b"\x7f", b"\x80", b"\xa0", b"\xff", b'"', b"'"]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.decode("latin-1"))
def test_inline_blanks_split_as_redis(template, redis_servers, corenet_proxy_factory):
    direct, backend = redis_servers(2)
    proxy = corenet_proxy_factory(pool([backend.address]))
    for byte in SPECIAL:
        line = template.replace(b"%s", byte) + b"\r\n"
        assert_same(inline_outcome(proxy, direct, backend, line), line)


QUOTING = [
    b'RPUSH L "\\x41\\x4a\\x4" "\\xZZ" "\\x4G" "\\n\\r\\t\\b\\a\\q\\\\\\""',
    b"RPUSH L 'it\\'s' 'a\\\\b' '\\x41' '\\n'",
    b"RPUSH L a\"b c\"d e'f g'",
    b"RPUSH L \"\" '' x",
    b'RPUSH L "abc',
    b"RPUSH L 'abc",
    b'RPUSH L "a"b',
    b"RPUSH L 'a'b",
    b'RPUSH L "\\"',
    b'RPUSH L "a\\',
    b'RPUSH L "\\x4',
    b"   ",
    b"",
    b"\r\r",
    b"PING\r",
    b"SET k v\x0c",
    b"SET k \x0cv\x0b",
]


def test_inline_quoting_as_redis(redis_servers, corenet_proxy_factory):
    direct, backend = redis_servers(2)
    proxy = corenet_proxy_factory(pool([backend.address]))
    for line in QUOTING:
        for ending in (b"\r\n", b"\n"):
            assert_same(inline_outcome(proxy, direct, backend, line + ending), line)


_SOUP = [b" ", b"\t", b"\r", b"\x0b", b"\x0c", b'"', b"'", b"\\", b"x", b"4", b"a", b"n", b"\x80"]


@pytest.fixture
def inline_twins(redis_servers, corenet_proxy_factory) -> tuple[Any, Any, Any]:
    """``(proxy, direct, backend)``: a proxy over ``backend``, and a twin
    redis-server spoken to directly.  Function-scoped fixtures are set up
    once per test, not once per hypothesis example: one trio serves them all
    (each example flushes both servers)."""
    direct, backend = redis_servers(2)
    return corenet_proxy_factory(pool([backend.address])), direct, backend


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(words=st.lists(st.sampled_from(_SOUP), max_size=24).map(b"".join))
def test_inline_soup_splits_as_redis(words, inline_twins):
    line = b"RPUSH L " + words + b"\r\n"
    assert_same(inline_outcome(*inline_twins, line), line)


# -- NUL bytes before a line end ---------------------------------------------------------


def test_nul_before_a_line_end_waits_then_is_too_big_as_in_redis(
    redis_servers, corenet_proxy_factory
):
    direct, backend = redis_servers(2)
    proxy = corenet_proxy_factory(pool([backend.address]))
    addresses = [proxy.address("alpha"), direct.address]
    for line, text in NUL_WAITS:
        # Redis's strchr() stops at the NUL: no line end, so no answer, and
        # what follows (the PING) is swallowed.
        payload = b"PING\r\n" + line + b"PING\r\n"
        ours, theirs = exchange_both(addresses, payload)
        assert ours == theirs == (b"+PONG\r\n", "open"), line
        # Past 64 KiB without a (visible) line end: refused, and closed.
        payload = b"PING\r\n" + line + b"x" * (INLINE_MAX + 1)
        ours, theirs = exchange_both(addresses, payload, quiet=5)
        error = b"-ERR Protocol error: " + text + b"\r\n"
        assert ours == theirs == (b"+PONG\r\n" + error, "closed"), line
