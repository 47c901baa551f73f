"""pytest fixtures that start real redis-server, memcached, nutcracker and corenet-proxy.

For corenet's own tests and for plugin authors.  Enable them in a
``conftest.py`` with ``pytest_plugins = ["corenet.proxy.fixtures"]`` (or
``from corenet.proxy.fixtures import *``).  This is the only corenet module
that imports pytest; nothing else imports it.

Fixtures (the classes are in ``corenet.proxy.harness``):

- ``redis_servers(n=1, *, extra_args=(), tls=None) -> list[RedisServer]`` (function scope):
  servers from a session-wide pool (``redis_server_pool``), reset
  (FLUSHALL, SCRIPT/FUNCTION FLUSH, CONFIG RESETSTAT, other clients killed)
  when the test ends; a server that died, or whose CONFIG was changed, is
  stopped instead of reused.  With ``extra_args``, or ``tls`` (a
  ``corenet.testing.tls.ServerTLS``: the port speaks TLS only), the servers
  are new and stopped at the end of the test.
- ``redis_server -> RedisServer``: one server from ``redis_servers``.
- ``memcached_servers(n=1, *, extra_args=(), tls=None) -> list[Memcached]`` and
  ``memcached_server -> Memcached``: likewise (flush_all between tests).
- ``nutcracker_factory(config, extra_args=(), **kw) -> Nutcracker`` and
  ``corenet_proxy_factory(config, extra_args=(), **kw) -> CorenetProxy``
  (function scope): started proxies, stopped by PID at teardown.  A
  plugin's test passes ``autoload_plugins=True`` so the proxy loads it.

A test needing a binary that is not installed is skipped, or fails when
``--require-servers``, ``CORENET_REQUIRE_SERVERS=1`` or ``CI`` is set
(``need_binary`` does that for tests starting servers themselves).  When a
test fails, the log tails of the processes it used are added to the report.
Whatever the harness started is stopped at the end of the session; a process
still running then (a test that started one and did not stop it) is reported
and fails the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from corenet.proxy.harness import CorenetProxy, Memcached, Nutcracker, RedisServer, ServerPool
from corenet.testing.process import Process, find_binary, stop_all

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator, Mapping, Sequence

    from corenet.testing.tls import ServerTLS

__all__ = [
    "corenet_proxy_factory",
    "memcached_server",
    "memcached_server_pool",
    "memcached_servers",
    "need_binary",
    "nutcracker_factory",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
    "pytest_unconfigure",
    "redis_server",
    "redis_server_pool",
    "redis_servers",
    "require_servers",
]

_PROCS_KEY = pytest.StashKey[list[Process]]()
_FALSY = ("", "0", "false", "no", "off")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-servers",
        action="store_true",
        default=False,
        help="fail, instead of skipping, tests whose server binaries "
        "(redis-server, memcached, nutcracker) are missing; "
        "also on with CORENET_REQUIRE_SERVERS=1 or CI set",
    )


def require_servers(config: pytest.Config) -> bool:
    """Whether a missing server binary fails the test instead of skipping it."""
    return (
        bool(config.getoption("--require-servers"))
        or os.environ.get("CORENET_REQUIRE_SERVERS", "").lower() not in _FALSY
        or os.environ.get("CI", "").lower() not in _FALSY
    )


def need_binary(config: pytest.Config, name: str) -> str:
    """Path of ``name``; skip the test (or fail it, see require_servers) if missing."""
    path = find_binary(name)
    if path is None:
        reason = f"{name} is not installed (not on PATH nor in /usr/sbin)"
        if require_servers(config):
            pytest.fail(
                f"{reason}; servers are required (--require-servers, "
                "CORENET_REQUIRE_SERVERS or CI)",
                pytrace=False,
            )
        pytest.skip(reason)
    return path


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A SIGTERMed test run tears its fixtures down (and so stops its servers)
    # like a ^C does, instead of dying with them running.
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leftovers = stop_all()
    if leftovers:
        names = ", ".join(proc.describe() for proc in leftovers)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(
                f"ERROR: tests left processes running (now stopped): {names}", red=True
            )
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_all()


def _track(request: pytest.FixtureRequest, procs: Sequence[Process]) -> None:
    request.node.stash.setdefault(_PROCS_KEY, []).extend(procs)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for proc in item.stash.get(_PROCS_KEY, []):
            report.sections.append((f"log of {proc.describe()}", proc.log_tail(30)))
    return report


# --------------------------------------------------------------------------
# backend servers


@pytest.fixture(scope="session")
def redis_server_pool() -> Iterator[ServerPool[RedisServer]]:
    """The session's reusable redis-servers (``redis_servers`` hands them out)."""
    with ServerPool(RedisServer) as pool:
        yield pool


@pytest.fixture(scope="session")
def memcached_server_pool() -> Iterator[ServerPool[Memcached]]:
    """The session's reusable memcacheds (``memcached_servers`` hands them out)."""
    with ServerPool(Memcached) as pool:
        yield pool


_S = TypeVar("_S", RedisServer, Memcached)
_X = TypeVar("_X", Nutcracker, CorenetProxy)


@contextlib.contextmanager
def _servers_factory(
    request: pytest.FixtureRequest, pool: ServerPool[_S], kind: type[_S], binary: str
) -> Iterator[Callable[..., list[_S]]]:
    """``make(n=1, *, extra_args=(), tls=None)``: pooled servers, or fresh ones
    when ``extra_args`` or ``tls`` change their configuration (stopped at teardown)."""
    need_binary(request.config, binary)
    pooled: list[_S] = []
    owned: list[_S] = []

    def make(
        n: int = 1, *, extra_args: Sequence[str] = (), tls: ServerTLS | None = None
    ) -> list[_S]:
        if extra_args or tls is not None:
            servers = [kind(extra_args=extra_args, tls=tls) for _ in range(n)]
            owned.extend(servers)
        else:
            servers = pool.acquire(n)
            pooled.extend(servers)
        _track(request, servers)
        return servers

    try:
        yield make
    finally:
        for server in owned:
            server.stop()
        pool.release(pooled)


@pytest.fixture
def redis_servers(
    request: pytest.FixtureRequest, redis_server_pool: ServerPool[RedisServer]
) -> Iterator[Callable[..., list[RedisServer]]]:
    """``redis_servers(n=1, *, extra_args=(), tls=None) -> list[RedisServer]``, all started."""
    with _servers_factory(request, redis_server_pool, RedisServer, "redis-server") as make:
        yield make


@pytest.fixture
def redis_server(redis_servers: Callable[..., list[RedisServer]]) -> RedisServer:
    """One started, empty redis-server."""
    return redis_servers(1)[0]


@pytest.fixture
def memcached_servers(
    request: pytest.FixtureRequest, memcached_server_pool: ServerPool[Memcached]
) -> Iterator[Callable[..., list[Memcached]]]:
    """``memcached_servers(n=1, *, extra_args=(), tls=None) -> list[Memcached]``, all started."""
    with _servers_factory(request, memcached_server_pool, Memcached, "memcached") as make:
        yield make


@pytest.fixture
def memcached_server(memcached_servers: Callable[..., list[Memcached]]) -> Memcached:
    """One started, empty memcached."""
    return memcached_servers(1)[0]


# --------------------------------------------------------------------------
# proxies


@contextlib.contextmanager
def _proxy_factory(request: pytest.FixtureRequest, kind: type[_X]) -> Iterator[Callable[..., _X]]:
    """``make(config, extra_args=(), **kw)``: started proxies, stopped at teardown."""
    started: list[_X] = []

    def make(config: Mapping[str, Any] | str, extra_args: Sequence[str] = (), **kwargs: Any) -> _X:
        proxy = kind(config, extra_args, start=False, **kwargs)
        started.append(proxy)
        _track(request, [proxy])
        return proxy.start()

    try:
        yield make
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture
def nutcracker_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Nutcracker]]:
    """``nutcracker_factory(config, extra_args=(), **kw) -> Nutcracker`` (started)."""
    need_binary(request.config, "nutcracker")
    with _proxy_factory(request, Nutcracker) as make:
        yield make


@pytest.fixture
def corenet_proxy_factory(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., CorenetProxy]]:
    """``corenet_proxy_factory(config, extra_args=(), **kw) -> CorenetProxy`` (started)."""
    with _proxy_factory(request, CorenetProxy) as make:
        yield make
