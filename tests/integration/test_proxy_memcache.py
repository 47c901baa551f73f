"""corenet-proxy in front of real memcached servers, driven by real clients.

The differential tests send the same bytes to a memcached directly and to a
twin memcached through a one-backend corenet pool, and compare the replies
byte for byte.  The twins see the same commands in the same order, so even
``gets`` cas values agree.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corenet.testing.memcache_strategies import MemcacheRequest, memcache_requests
from tests.conftest import need_binary
from tests.servers import (
    CorenetProxy,
    Memcached,
    Nutcracker,
    free_port,
    memcache_client,
    memcache_raw,
    pool_config,
    read_until,
    spread_keys,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pymemcache.client.base import Client as PymemcacheClient

K251 = b"k" * 251
ONE_MIB = 1 << 20


def keys(n: int, prefix: str = "key") -> list[str]:
    return spread_keys(n, prefix, digits=12)


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def exchange(
    address: str,
    payload: bytes,
    *,
    until: bytes | None = None,
    quiet: float = 0.3,
    timeout: float = 5.0,
) -> bytes:
    """Send ``payload``; read until the reply ends with ``until``, the peer
    closes (``<closed>`` is appended), or nothing came for ``quiet`` s."""
    received = b""
    with socket.create_connection(host_port(address), timeout=timeout) as sock:
        sock.sendall(payload)
        deadline = time.monotonic() + timeout
        sock.settimeout(quiet if until is None else timeout)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                break
            except ConnectionResetError:
                return received + b"<closed>"
            if not chunk:
                return received + b"<closed>"
            received += chunk
            if until is not None and received.endswith(until):
                break
    return received


# -- differential: memcached directly vs through the proxy -----------------------


MARKER = b"set end-of-test-marker 0 0 6\r\nMARKER\r\nget end-of-test-marker\r\n"
MARKER_REPLY = b"STORED\r\nVALUE end-of-test-marker 0 6\r\nMARKER\r\nEND\r\n"


class Twins:
    """A memcached reached directly, and its twin behind a corenet pool."""

    def __init__(self, direct: Memcached, behind: Memcached, proxy: CorenetProxy) -> None:
        self.direct = direct
        self.behind = behind
        self.proxy = proxy
        self.version = memcache_raw(direct.address, b"version\r\n", expect_lines=1)

    def sync_cas(self) -> None:
        """Bring both servers' cas counters level (tests that reach only one
        of them move it on), so that ``gets`` answers compare equal."""
        last = []
        for server in (self.direct, self.behind):
            reply = memcache_raw(
                server.address, b"set cas-sync 0 0 0\r\n\r\ngets cas-sync\r\n", until=b"END\r\n"
            )
            last.append(int(reply.split(b"\r\n")[1].split(b" ")[4]))
        behind = self.behind if last[0] > last[1] else self.direct
        bump = b"set cas-sync 0 0 0 noreply\r\n\r\n" * abs(last[0] - last[1])
        memcache_raw(behind.address, bump + b"version\r\n", expect_lines=None, until=self.version)

    def both(self, payload: bytes) -> tuple[bytes, bytes]:
        """The replies to ``payload`` (then MARKER) from both, state reset first."""
        self.sync_cas()
        for server in (self.direct, self.behind):
            server.reset()
        marked = payload + MARKER
        direct = exchange(self.direct.address, marked, until=MARKER_REPLY)
        through = exchange(self.proxy.address("mc"), marked, until=MARKER_REPLY)
        return direct, through


@contextlib.contextmanager
def running_twins() -> Iterator[Twins]:
    """Two memcached, one behind a one-server corenet pool; all stopped after."""
    direct = Memcached()
    behind = Memcached()
    proxy = None
    try:
        proxy = CorenetProxy(pool_config("mc", None, [behind.address], redis=False))
        yield Twins(direct, behind, proxy)
    finally:
        if proxy is not None:
            proxy.stop()
        behind.stop()
        direct.stop()


@pytest.fixture(scope="module")
def twins(request: pytest.FixtureRequest) -> Iterator[Twins]:
    need_binary(request.config, "memcached")
    with running_twins() as started:
        yield started


def storage_cases() -> list[bytes]:
    cases = [
        setup + cmd + b" k 7 0 3" + noreply + b"\r\nxyz\r\nget k\r\n"
        for cmd in (b"set", b"add", b"replace", b"append", b"prepend")
        for noreply in (b"", b" noreply")
        for setup in (b"", b"set k 1 0 2\r\nab\r\n")
    ]
    for noreply in (b"", b" noreply"):
        cases.append(b"cas k 0 0 1 1" + noreply + b"\r\nx\r\nget k\r\n")  # NOT_FOUND
        cases.append(
            b"set k 0 0 1\r\nx\r\ngets k\r\ncas k 0 0 1 999" + noreply + b"\r\ny\r\ngets k\r\n"
        )
    return cases


DIFFERENTIAL = [
    *storage_cases(),
    # retrieval
    b"get nope\r\n",
    b"set a 0 0 1\r\n1\r\nset b 5 0 2\r\n22\r\nget a b nope a\r\ngets a b\r\n",
    b"set e 0 0 0\r\n\r\nget e\r\n",
    b"set bin 0 0 8\r\n\r\nEND\r\n\r\nget bin\r\n",
    b"set m 4294967295 -1 1\r\nx\r\nget m\r\n",
    b"set u\x10\x7f\xc3\xa9 3 0 1\r\nx\r\nget u\x10\x7f\xc3\xa9\r\n",
    b"set " + b"k" * 250 + b" 0 0 1\r\nx\r\nget " + b"k" * 250 + b"\r\n",
    # arithmetic
    b"incr n 1\r\nset n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n 18446744073709551615\r\n"
    b"incr n 1\r\nget n\r\n",
    b"set n 0 0 1\r\n5\r\nincr n 1 noreply\r\ndecr n 2 noreply\r\nget n\r\n",
    b"set s 0 0 1\r\nx\r\nincr s 1\r\n",
    # delete, touch
    b"set d 0 0 1\r\nx\r\ndelete d\r\ndelete d\r\nget d\r\n",
    b"set d 0 0 1\r\nx\r\ndelete d noreply\r\nget d\r\n",
    b"set d 0 0 1\r\nx\r\ndelete d 0\r\ndelete d 0 noreply\r\nget d\r\n",
    b"set t 0 0 1\r\nx\r\ntouch t 100\r\ntouch t 100 noreply\r\ntouch nope 1\r\n",
    # lenient forms memcached reads as canonical ones
    b"set k 0 0 3\nabc\r\nget  k\n",
    b" set  k 0 0  3 \r\nabc\r\nget k\r\n",
    b"set k 0 0 03\r\nabc\r\nget k\r\n",
    # unknown and malformed commands
    b"foo\r\n",
    b"a\r\n",
    b"\r\n",
    b"\n",
    b"SET k 0 0 1\r\nx\r\n",
    b"get\r\n",
    b"x HTTP/1.0\r\n",
    b"gfoo HTTP/1.0\r\n",
    b"get / HTTP/1.0\r\n",
    b"x" * 3000 + b"\r\n",
    b"set k0 0 0 1\r\nx\r\nget " + b" ".join(b"k%d" % i for i in range(5000)) + b"\r\n",
    b"x" * 16382 + b"\r\n",
    # token counts
    b"set k 0 0\r\nabc\r\n",
    b"set k 0 0 3 noreply extra\r\nabc\r\n",
    b"cas k 0 0 1\r\nx\r\n",
    b"incr n\r\n",
    b"incr n 1 2 3\r\n",
    b"touch k\r\n",
    b"delete\r\n",
    b"delete k 0 noreply x\r\n",
    # bad keys and numbers: CLIENT_ERROR, the data block is then a command
    b"set " + K251 + b" 0 0 3\r\nabc\r\n",
    b"set " + b"k" * 3000 + b" 0 0 3\r\nabc\r\n",
    b"set k 0 0 -1\r\nabc\r\n",
    b"set k 0 0 abc\r\nabc\r\n",
    b"set k x 0 3\r\nabc\r\n",
    b"set k -1 0 3\r\nabc\r\n",
    b"set k 0 x 3\r\nabc\r\n",
    b"set k 0 0 2147483646\r\nabc\r\n",
    b"set k 0 0 2147483648\r\nabc\r\n",
    b"set k 0 0 " + b"1" * 5000 + b"\r\nabc\r\n",
    b"cas k 0 0 1 x\r\nx\r\n",
    b"cas k 0 0 1 -1\r\nx\r\n",
    b"incr n x\r\nincr n -1\r\nincr n 18446744073709551616\r\n",
    b"decr " + K251 + b" 1\r\n",
    b"touch k x\r\ntouch " + K251 + b" 1\r\n",
    b"delete k 1\r\ndelete k 0 x\r\ndelete " + K251 + b"\r\n",
    b"get a " + K251 + b" b\r\n",
    # bad data blocks
    b"set k 0 0 3\r\nabcXYget k\r\n",
    b"set k 0 0 3\r\nabcX\r\nget k\r\n",
    b"set k 0 0 3\r\nabc\nget k\r\n",
    # too large: answered, the block swallowed
    b"set k 0 0 1048577\r\n" + b"v" * 1048577 + b"\r\nget k\r\n",
    # noreply mixed with errors: no stray replies, later replies aligned
    b"set k 0 0 abc noreply\r\nabc\r\nset k 0 0 noreply\r\nabc\r\nget k\r\n",
    b"set " + K251 + b" 0 0 3 noreply\r\nabc\r\nincr n noreply\r\ntouch k noreply\r\n"
    b"delete k x noreply\r\ndelete " + K251 + b" noreply\r\nset k 0 0 1 noreply\r\nz\r\nget k\r\n",
    b"set k 0 0 3 noreply\r\nabcXYget k\r\n",
    b"set k 0 0 1048577 noreply\r\n" + b"v" * 1048577 + b"\r\nget k\r\n",
    b"set a 0 0 1 noreply\r\n1\r\nfoo\r\nadd a 0 0 1 noreply\r\n2\r\n"
    b"append a 0 0 1 noreply\r\n3\r\nprepend a 0 0 1 noreply\r\n0\r\n"
    b"replace b 0 0 1 noreply\r\nx\r\nget a b\r\n",
    # quit and HTTP close the connection
    b"set k 0 0 1\r\nx\r\nget k\r\nquit\r\n",
    b"quit extra words\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"POST /x HTTP/1.1\r\n",
    b"rfoo HTTP/1.0\r\n",
    b"x" * 20000 + b"\r\n",
]


@pytest.mark.parametrize("payload", DIFFERENTIAL, ids=lambda p: repr(p[:40])[2:-1])
def test_replies_match_memcached_byte_for_byte(twins: Twins, payload: bytes) -> None:
    direct, through = twins.both(payload)
    assert through == direct
    # Unless the connection was closed, the marker's reply came last.
    assert direct.endswith((MARKER_REPLY, b"<closed>"))


_SOUP = [
    b"get ", b"set ", b"k ", b"0 ", b"3 ", b"-1 ", b"noreply", b"HTTP/1.0", b"abc",
    b"\r\n", b"\r\n", b"\n", b"\r", b"\0", b"\t", b" ", b"quit", b"incr ", b"delete ",
]  # fmt: skip


def test_live_garbage_leaves_a_steady_client_error_free(twins: Twins) -> None:
    rng = random.Random(20240611)
    address = twins.proxy.address("mc")
    steady = memcache_client(address, default_noreply=False)
    try:
        for i in range(40):
            if i % 4 == 0:
                garbage = rng.randbytes(rng.randrange(1, 400))
            else:
                garbage = b"".join(rng.choice(_SOUP) for _ in range(rng.randrange(1, 60)))
            exchange(address, garbage, quiet=0.02)
            assert steady.set(f"steady{i}", b"v%d" % i) is True
            assert steady.get(f"steady{i}") == b"v%d" % i
    finally:
        steady.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(memcache_requests(), min_size=1, max_size=12))
def test_random_valid_pipelines_match_memcached(
    twins: Twins, requests: list[MemcacheRequest]
) -> None:
    # Write every key first, so reads, increments and cas have something to hit.
    setup = b"".join(b"set " + key + b" 0 0 1\r\n1\r\n" for req in requests for key in req.keys)
    direct, through = twins.both(setup + b"".join(r.wire for r in requests))
    assert through == direct


def test_a_fresh_client_is_served_after_all_that(twins: Twins) -> None:
    assert memcache_raw(twins.proxy.address("mc"), b"version\r\n", expect_lines=1) == twins.version
    log = twins.proxy.log_text()
    assert "Traceback" not in log
    assert "unexpected error" not in log


# Where corenet deliberately differs from memcached (docs/memcache.md).
DIFFERENCES = [
    # memcached ignores an odd last token, truncates numbers to 32 bits and
    # reads "+3": corenet refuses such lines and skips their data block.
    (
        b"set k 0 0 3 foo\r\nabc\r\nget k\r\n",
        b"STORED\r\nVALUE k 0 3\r\nabc\r\nEND\r\n",
        b"CLIENT_ERROR bad command line format\r\nEND\r\n",
    ),
    (
        b"set k 0 0 4294967299\r\nabc\r\nget k\r\n",
        b"STORED\r\nVALUE k 0 3\r\nabc\r\nEND\r\n",
        b"CLIENT_ERROR bad command line format\r\nEND\r\n",
    ),
    (
        b"set k 0 0 +3\r\nabc\r\nget k\r\n",
        b"STORED\r\nVALUE k 0 3\r\nabc\r\nEND\r\n",
        b"CLIENT_ERROR bad command line format\r\nEND\r\n",
    ),
    (b"incr n 1 2\r\n", b"NOT_FOUND\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"get k\x00junk\r\n", b"END\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    # commands corenet does not proxy are unknown to it
    (b"stats detail\r\n", b"CLIENT_ERROR usage: stats detail on|off|dump\r\n", b"ERROR\r\n"),
    (b"flush_all noreply\r\n", b"", b"ERROR\r\n"),
]


@pytest.mark.parametrize(("payload", "memcached", "corenet"), DIFFERENCES)
def test_documented_differences(
    twins: Twins, payload: bytes, memcached: bytes, corenet: bytes
) -> None:
    direct, through = twins.both(payload)
    if memcached != b"<closed>":
        memcached += MARKER_REPLY
        corenet += MARKER_REPLY
    assert (direct, through) == (memcached, corenet)


def test_long_line_trickled_in_is_answered(twins: Twins) -> None:
    # memcached closes once 2048 bytes wait without a newline; corenet's limit
    # does not depend on how the line is cut, so it answers like memcached
    # does to the same line sent at once.
    with socket.create_connection(host_port(twins.proxy.address("mc")), timeout=5) as sock:
        sock.sendall(b"x" * 3000)
        time.sleep(0.05)
        sock.sendall(b"\r\nversion\r\n")
        data = read_until(sock, lambda data: data.endswith(twins.version))
    assert data == b"ERROR\r\n" + twins.version


def test_bad_clients_leave_no_descriptors_behind(twins: Twins) -> None:
    fd_dir = f"/proc/{twins.proxy.pid}/fd"
    if not os.path.isdir(fd_dir):
        pytest.skip("needs /proc")
    before = len(os.listdir(fd_dir))
    for payload in (
        b"GET / HTTP/1.0\r\n",
        b"x" * 20000,
        b"quit\r\n",
        b"set k 0 0 5\r\nab",
        b"foo\r\n",
    ):
        exchange(twins.proxy.address("mc"), payload, quiet=0.05)
    # <=: a client of an earlier test may still have been closing at "before".
    assert wait_for(lambda: len(os.listdir(fd_dir)) <= before, timeout=5)


# -- real clients over four backends ---------------------------------------------


@pytest.fixture(scope="module")
def four_backends(request: pytest.FixtureRequest) -> Iterator[list[Memcached]]:
    # -I 2m, so that a value of exactly 1 MiB (plus item header) fits.
    need_binary(request.config, "memcached")
    servers: list[Memcached] = []
    try:
        while len(servers) < 4:
            servers.append(Memcached(extra_args=["-I", "2m"]))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def four(four_backends: list[Memcached]) -> Iterator[list[Memcached]]:
    """Four empty memcached servers (emptied again after the test)."""
    for server in four_backends:
        server.reset()
    yield four_backends
    for server in four_backends:
        if server.alive():
            server.reset()


@pytest.fixture(scope="module")
def module_proxy(four_backends: list[Memcached]) -> Iterator[CorenetProxy]:
    proxy = CorenetProxy(pool_config("mc", None, [s.address for s in four_backends], redis=False))
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxy(module_proxy: CorenetProxy, four: list[Memcached]) -> CorenetProxy:
    """corenet-proxy over the four servers (shared by the module's tests)."""
    return module_proxy


SIZES = [0, 1, 2, 100, 1000, 16383, 16384, 16385, 65536, 100_000, 500_000, ONE_MIB - 1, ONE_MIB]


def test_pymemcache_set_many_get_many_values_up_to_one_mib(
    proxy: CorenetProxy, four: list[Memcached]
) -> None:
    names = keys(60, "many")
    values = {k: os.urandom(SIZES[i % len(SIZES)]) for i, k in enumerate(names)}
    client = proxy.memcache_client("mc")
    try:
        assert client.set_many(values, noreply=False) == []
        assert client.get_many(names + ["missing"]) == values
        # noreply (pymemcache's default) pipelines: replies stay aligned.
        assert client.set_many({k: v[::-1] for k, v in values.items()}) == []
        assert client.get_many(names) == {k: v[::-1] for k, v in values.items()}
        # Every backend holds a share, each key on exactly one of them.
        spread = []
        for server in four:
            with server_client(server) as direct:
                spread.append(set(direct.get_many(names)))
        assert all(spread)
        assert sum(map(len, spread)) == len(names)
        assert set().union(*spread) == set(names)
    finally:
        client.close()


def server_client(server: Memcached, **kwargs: Any) -> contextlib.closing[PymemcacheClient]:
    """A pymemcache client talking to ``server`` directly."""
    return contextlib.closing(memcache_client(server.address, **kwargs))


def test_pymemcache_every_command(proxy: CorenetProxy) -> None:
    from pymemcache.exceptions import MemcacheServerError

    client = proxy.memcache_client("mc", default_noreply=False)
    try:
        assert client.set("a", b"1", expire=100) is True
        assert client.add("a", b"2") is False
        assert client.add("b", b"2") is True
        assert client.replace("a", b"10") is True
        assert client.replace("zz", b"x") is False
        assert client.append("a", b"0") is True
        assert client.prepend("a", b"1") is True
        assert client.get("a") == b"1100"
        assert client.incr("a", 11) == 1111
        assert client.decr("a", 2000) == 0
        assert client.incr("zz", 1) is None
        value, cas = client.gets("a")
        assert value.rstrip() == b"0"  # decr keeps the length, padding with spaces
        assert client.cas("a", b"new", cas) is True
        assert client.cas("a", b"newer", cas) is False
        assert client.cas("zz", b"x", cas) is None
        assert client.gets_many(["a", "b", "zz"]).keys() == {"a", "b"}
        assert client.touch("a", 100) is True
        assert client.touch("zz", 100) is False
        assert client.delete("a") is True
        assert client.delete("a") is False
        assert client.delete_many(["b", "zz"]) is True
        assert client.get_many(["a", "b"]) == {}
        assert client.version().startswith(b"1.6")
        with pytest.raises(MemcacheServerError, match="object too large for cache"):
            client.set("huge", b"x" * (ONE_MIB + 1))
        assert client.set("after", b"ok") is True
        assert client.get("after") == b"ok"
    finally:
        client.close()


@pytest.mark.skipif(shutil.which("memcslap") is None, reason="needs memcslap (libmemcached-tools)")
def test_memcslap_and_memcaslap_run_without_errors(proxy: CorenetProxy) -> None:
    address = proxy.address("mc")
    runs = [
        ["memcslap", "-s", address, "-t", "set", "-c", "2", "-e", "300"],
        ["memcslap", "-s", address, "-t", "get", "-c", "2", "-e", "300"],
        ["memcslap", "-s", address, "-t", "mget", "-c", "2", "-e", "300"],
        ["memcslap", "-s", address, "-t", "set", "-R", "-c", "2", "-e", "300"],
    ]
    if shutil.which("memcaslap"):
        # Keys with control bytes, 10% sets, multi-gets of 4, data verified.
        runs.append(
            ["memcaslap", "-s", address, "-x", "2000", "-T", "1", "-c", "4", "-d", "4", "-v", "0.1"]
        )
    for argv in runs:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "rror" not in output, output  # error, ERROR, CLIENT_ERROR, SERVER_ERROR
        if argv[0] == "memcaslap":
            assert "verify_failed: 0" in output, output
            assert "get_misses: 0" in output, output


def test_key_placement_equals_nutcracker(
    four: list[Memcached],
    corenet_proxy_factory: Callable[..., CorenetProxy],
    nutcracker_factory: Callable[..., Nutcracker],
) -> None:
    config = pool_config("mc", None, [s.address for s in four], redis=False, hash_tag="{}")
    names = keys(400, "place") + ["{tag}a", "{tag}b", "x{}y", "k" * 250, "\u00e9t\u00e9"]
    placements = []
    factories: list[Callable[..., Nutcracker | CorenetProxy]] = [
        nutcracker_factory,
        corenet_proxy_factory,
    ]
    for factory in factories:
        proxy = factory(config)
        client = proxy.memcache_client("mc", allow_unicode_keys=True)
        try:
            assert client.set_many({k: k.encode() for k in names}, noreply=False) == []
            # Multi-get through the proxy agrees too.
            assert client.get_many(names) == {k: k.encode() for k in names}
        finally:
            client.close()
        where = []
        for server in four:
            with server_client(server, allow_unicode_keys=True) as direct:
                where.append(direct.get_many(names))
            server.reset()
        placements.append([tuple(k in found for found in where) for k in names])
        proxy.stop()
    nutcracker, corenet = placements
    assert all(sum(p) == 1 for p in nutcracker)
    assert [k for k, a, b in zip(names, nutcracker, corenet, strict=True) if a != b] == []
    assert len({p.index(True) for p in nutcracker}) == 4


# -- backend failures ---------------------------------------------------------------


def dead_address() -> str:
    return f"127.0.0.1:{free_port()}"


def test_dead_server_answers_connection_refused_and_keeps_the_client(
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    proxy = corenet_proxy_factory(pool_config("mc", None, [dead_address()], redis=False))
    payload = b"get k\r\nfoo\r\nset k 0 0 1\r\nx\r\nversion\r\n"
    reply = memcache_raw(proxy.address("mc"), payload, expect_lines=4)
    assert (
        reply
        == b"SERVER_ERROR Connection refused\r\nERROR\r\n"
        + b"SERVER_ERROR Connection refused\r\n" * 2
    )


def test_noreply_to_a_dead_server_sends_nothing_on_first_contact(
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    proxy = corenet_proxy_factory(pool_config("mc", None, [dead_address()], redis=False))
    payload = b"set k 0 0 1 noreply\r\nx\r\ndelete k noreply\r\nincr k 1 noreply\r\nget k\r\n"
    reply = exchange(proxy.address("mc"), payload)
    assert reply == b"SERVER_ERROR Connection refused\r\n"


def test_noreply_to_an_ejected_server_sends_nothing(
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    config = pool_config(
        "mc",
        None,
        [dead_address()],
        redis=False,
        auto_eject_hosts=True,
        server_failure_limit=1,
        server_retry_timeout=30000,
    )
    proxy = corenet_proxy_factory(config)
    with socket.create_connection(host_port(proxy.address("mc")), timeout=5) as sock:
        sock.sendall(b"get k\r\n")  # fails and ejects the only server
        assert sock.recv(4096) == b"SERVER_ERROR Connection refused\r\n"
        sock.sendall(b"set k 0 0 1 noreply\r\nx\r\ndelete k noreply\r\nget k\r\n")
        data = read_until(sock, quiet=0.5)
    assert data == b"SERVER_ERROR Connection refused\r\n"


def test_long_run_of_noreply_requests_does_not_stall(proxy: CorenetProxy) -> None:
    with socket.create_connection(host_port(proxy.address("mc")), timeout=5) as sock:
        # More than twice client_max_pending (1024) requests with no reply.
        sock.sendall(b"".join(b"set k%d 0 0 1 noreply\r\nx\r\n" % i for i in range(3000)))
        sock.sendall(b"get k2999\r\n")
        data = read_until(sock, lambda data: data.endswith(b"END\r\n"), quiet=2)
    assert data == b"VALUE k2999 0 1\r\nx\r\nEND\r\n"


def test_multi_get_with_one_shard_down_gets_one_error(
    memcached_server: Memcached, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    proxy = corenet_proxy_factory(
        pool_config("mc", None, [memcached_server.address, dead_address()], redis=False)
    )
    names = [k.encode() for k in keys(20, "shard")]
    payload = b"get " + b" ".join(names) + b"\r\nfoo\r\n"
    # One error for the whole get (there is no per-key error slot), and the
    # connection is kept.
    reply = exchange(proxy.address("mc"), payload, until=b"refused\r\nERROR\r\n")
    assert reply == b"SERVER_ERROR Connection refused\r\nERROR\r\n"
    # Keys on the live shard still read, one by one.
    with server_client(memcached_server) as direct:
        assert direct.set_many({k.decode(): b"v" for k in names}, noreply=False) == []
    singles = b"".join(b"get " + k + b"\r\n" for k in names)
    replies = exchange(proxy.address("mc"), singles, quiet=0.5)
    assert replies.count(b"VALUE ") + replies.count(b"SERVER_ERROR Connection refused\r\n") == len(
        names
    )
    assert 0 < replies.count(b"VALUE ") < len(names)


class FakeBackend:
    """A listening socket that misbehaves: ``silent`` never answers, ``reset``
    answers each read with a TCP RST, ``garbage`` answers nonsense."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(10)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.conns.append(conn)
        if self.mode == "silent":
            return
        conn.settimeout(10)
        try:
            conn.recv(4096)
        except OSError:
            return
        if self.mode == "reset":
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            conn.close()
        else:
            conn.sendall(b"HELLO THERE\r\n")

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()
        self.thread.join(timeout=5)


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("silent", b"SERVER_ERROR Connection timed out\r\n"),
        ("reset", b"SERVER_ERROR Connection reset by peer\r\n"),
        ("garbage", b"SERVER_ERROR Protocol error\r\n"),
    ],
)
def test_backend_faults_become_server_errors(
    mode: str, error: bytes, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    backend = FakeBackend(mode)
    try:
        proxy = corenet_proxy_factory(
            pool_config("mc", None, [backend.address], redis=False, timeout=300)
        )
        payload = b"get k\r\nset k 0 0 1 noreply\r\nx\r\nincr k 1\r\nfoo\r\n"
        reply = memcache_raw(proxy.address("mc"), payload, expect_lines=3, timeout=5)
        assert reply == error * 2 + b"ERROR\r\n"
    finally:
        backend.close()
