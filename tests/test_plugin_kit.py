"""The plugin authors' kit (docs/plugins.md): example plugin, conformance suite, backends.

* The example plugin (docs/examples/corenet-kv) pip-installed into a fresh
  virtualenv makes ``protocol: kv`` valid for corenet-proxy there (and only
  there), and the proxy serves kv end to end over two reference kv servers.
* The conformance suite fails on deliberately broken parsers.
* A third-party event backend registered by a plugin is selectable by name.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import site
import subprocess
import sys
import types
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import strategies as st

from corenet.errors import BackendError, ProtocolError
from corenet.event import PollBackend, select_backend
from corenet.plugin import hookimpl
from corenet.protocols import memcache, redis
from corenet.proxy.plugins import load_plugins
from corenet.testing import check_reply_parser, check_request_parser
from corenet.testing.memcache_strategies import memcache_requests
from corenet.testing.strategies import encoded_commands
from tests.servers import (
    dump_config,
    pool_config,
)

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "corenet-kv"
BIN = "Scripts" if sys.platform == "win32" else "bin"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORENET_")}
    env.pop("PYTHONPATH", None)
    return env


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=_clean_env(), **kwargs
    )


@pytest.fixture(scope="module")
def kv_venv(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A fresh venv seeing the test interpreter's site-packages (the repo's editable corenet),
    with only the example plugin installed into it; returns its python."""
    base = tmp_path_factory.mktemp("kv-venv")
    # Install from a copy: an in-tree build would leave build/ and *.egg-info
    # in the repository.
    source = base / "corenet-kv"
    shutil.copytree(
        EXAMPLE,
        source,
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".*_cache", ".hypothesis"),
    )
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", venv])
    assert made.returncode == 0, made.stderr
    python = venv / BIN / "python"
    # See exactly the packages of the interpreter running the tests (the
    # repository's editable corenet, pip, setuptools and wheel), whatever
    # python3 that venv was made from.
    target = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    assert target.returncode == 0, target.stderr
    (pathlib.Path(target.stdout.strip()) / "_corenet_parent.pth").write_text(
        # addsitedir, not a bare path: the editable install's own .pth must run too.
        "".join(f"import site; site.addsitedir({path!r})\n" for path in site.getsitepackages())
    )
    # The system pip installs into the venv that runs it (its sys.prefix).
    installed = _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            source,
        ]
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


@pytest.fixture
def kv_config(tmp_path: pathlib.Path) -> pathlib.Path:
    conf = tmp_path / "kv.yml"
    conf.write_text(
        dump_config(pool_config("kv", None, ["127.0.0.1:7001"], redis=False, protocol="kv"))
    )
    return conf


def test_venv_uses_the_repositorys_corenet(kv_venv: pathlib.Path) -> None:
    found = _run([kv_venv, "-c", "import corenet, corenet_kv; print(corenet.__file__)"])
    assert found.returncode == 0, found.stderr
    assert pathlib.Path(found.stdout.strip()) == ROOT / "corenet" / "__init__.py"


def test_protocol_kv_is_valid_only_where_the_plugin_is_installed(
    kv_venv: pathlib.Path, kv_config: pathlib.Path
) -> None:
    inside = _run([kv_venv, "-m", "corenet", "-t", "-c", kv_config])
    assert inside.returncode == 0, inside.stdout + inside.stderr
    outside = _run([sys.executable, "-m", "corenet", "-t", "-c", kv_config], cwd=ROOT)
    assert outside.returncode != 0
    assert '"kv" is not a valid protocol' in outside.stdout + outside.stderr


def test_environment_controls_apply_to_the_installed_plugin(
    kv_venv: pathlib.Path, kv_config: pathlib.Path
) -> None:
    for name, value in (
        ("CORENET_DISABLED_PLUGINS", "kv"),
        ("CORENET_DISABLE_PLUGIN_AUTOLOAD", "1"),
    ):
        env = {**_clean_env(), name: value}
        result = subprocess.run(
            [kv_venv, "-m", "corenet", "-t", "-c", kv_config],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode != 0, f"{name}={value} did not hide the plugin"


def test_the_example_test_suite_passes_in_the_venv(kv_venv: pathlib.Path) -> None:
    tests = kv_venv.parents[2] / "corenet-kv" / "tests"
    result = _run(
        [kv_venv, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests], cwd=tests.parent
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "skipped" not in result.stdout, result.stdout[-2000:]


# -- the conformance suite catches broken parsers -------------------------------


class Broken:
    """A parser wrapper whose ``spoil`` hook breaks the contract on purpose."""

    def __init__(self, inner: Any, spoil: Callable[[Broken, bytes, int], None]) -> None:
        self.inner = inner
        self.spoil = spoil
        self.resume_at = 0
        self.need = 0
        self.variant = 0

    def parse(self, buf: bytes, pos: int) -> Any:
        result = self.inner.parse(buf, pos)
        self.resume_at = self.inner.resume_at
        self.need = self.inner.need
        self.spoil(self, buf, pos)
        return result


def _loses_a_byte(parser: Broken, buf: bytes, pos: int) -> None:
    # Keeps one byte too few of an incomplete message.
    if parser.resume_at < len(buf):
        parser.resume_at += 1


def _ignores_need(parser: Broken, buf: bytes, pos: int) -> None:
    parser.need = 0


def _crashes_on_high_bytes(parser: Broken, buf: bytes, pos: int) -> None:
    if any(b >= 0x80 for b in buf[pos:]):
        raise IndexError("oops")


MEMCACHE_WIRES = memcache_requests().map(lambda r: r.wire)


def test_suite_catches_a_parser_that_loses_bytes_at_a_split() -> None:
    with pytest.raises(AssertionError):
        check_request_parser(
            lambda: Broken(memcache.RequestParser(), _loses_a_byte),
            MEMCACHE_WIRES,
            checks=("any_split",),
            max_examples=50,
        )


def test_suite_catches_an_unexpected_exception_on_garbage() -> None:
    with pytest.raises(AssertionError, match="IndexError"):
        check_request_parser(
            lambda: Broken(redis.RequestParser(), _crashes_on_high_bytes),
            encoded_commands(),
            checks=("garbage",),
            max_examples=50,
        )


def test_suite_catches_a_parser_that_ignores_need() -> None:
    def large(size: int) -> bytes:
        return redis.encode_command([b"SET", b"k", b"v" * size])

    with pytest.raises(AssertionError, match="parse calls"):
        check_request_parser(
            lambda: Broken(redis.RequestParser(), _ignores_need),
            encoded_commands(),
            large_message=large,
            checks=("need",),
        )


class UnboundedLines:
    """Replies are lines; the scan resumes, but a line may grow without limit."""

    def __init__(self) -> None:
        self.resume_at = 0
        self.need = 0
        self._scanned = 0

    def parse(self, buf: bytes, pos: int) -> int:
        nl = buf.find(b"\n", pos + self._scanned)
        if nl < 0:
            self._scanned = len(buf) - pos
            self.resume_at = pos
            return -1
        self._scanned = 0
        if not buf[pos:nl].endswith(b"\r"):
            raise ProtocolError("no CRLF")
        return nl + 1


def test_suite_catches_unbounded_buffering_and_passes_the_rest() -> None:
    lines = st.binary(max_size=30).map(
        lambda b: b.replace(b"\n", b"").replace(b"\r", b"") + b"\r\n"
    )
    check_reply_parser(UnboundedLines, lines, max_examples=30, checks=("round_trip", "any_split"))
    with pytest.raises(AssertionError, match="still buffered"):
        check_reply_parser(UnboundedLines, lines, checks=("bounded",))


def test_unknown_check_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown checks"):
        check_reply_parser(UnboundedLines, st.just(b"+\r\n"), checks=("roundtrip",))


# -- event backends from plugins ------------------------------------------------


class LoggingPollBackend(PollBackend):
    """The poll backend under another name, as a third-party plugin would ship it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        self.waits += 1
        return super().wait(timeout)


def _backend_plugin() -> types.ModuleType:
    module = types.ModuleType("corenet_logging_poll")

    @hookimpl
    def corenet_register_event_backends(registry: Any) -> None:
        registry.add("logging-poll", LoggingPollBackend, priority=-1)

    module.corenet_register_event_backends = corenet_register_event_backends  # type: ignore[attr-defined]
    return module


@pytest.mark.skipif(not hasattr(__import__("select"), "poll"), reason="no poll() on this OS")
def test_a_plugin_event_backend_is_selectable_by_name() -> None:
    plugins = load_plugins(extra={"logging-poll": _backend_plugin()}, autoload=False)
    assert plugins.event_backends.owner("logging-poll") == "logging-poll"
    backend = select_backend("logging-poll", plugins.event_backends)
    try:
        assert isinstance(backend, LoggingPollBackend)
        before = backend.waits
        assert backend.wait(0) == []
        assert backend.waits == before + 1
    finally:
        backend.close()
    # priority -1: "auto" still prefers the built-ins
    auto = select_backend("auto", plugins.event_backends)
    try:
        assert not isinstance(auto, LoggingPollBackend)
    finally:
        auto.close()
    with pytest.raises(BackendError, match="logging-poll"):
        select_backend("nope", plugins.event_backends)


def test_a_plugin_event_backend_name_clash_is_an_error() -> None:
    from corenet.errors import PluginError

    module = types.ModuleType("corenet_clash")

    @hookimpl
    def corenet_register_event_backends(registry: Any) -> None:
        registry.add("poll", LoggingPollBackend)

    module.corenet_register_event_backends = corenet_register_event_backends  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match="'poll' is registered by both"):
        load_plugins(extra={"clash": module}, autoload=False)


# -- invalid plugins get clear errors -------------------------------------------


def _plugin_adding(hook: str, name: object, item: object) -> types.ModuleType:
    module = types.ModuleType(f"corenet_bad_{hook}")

    def impl(registry: Any) -> None:
        registry.add(name, item)

    impl.__name__ = hook
    setattr(module, hook, hookimpl(impl))
    return module


@pytest.mark.parametrize(
    ("hook", "name", "item", "message"),
    [
        ("corenet_register_hash_functions", "", len, "invalid name ''"),
        ("corenet_register_hash_functions", None, len, "invalid name None"),
        ("corenet_register_hash_functions", "h", 42, "hash function 'h' from 'bad' is not"),
        ("corenet_register_distributions", "d", "nope", "distribution 'd' from 'bad' is not"),
        ("corenet_register_event_backends", "e", None, "event backend 'e' from 'bad' is not"),
        ("corenet_register_protocols", "p", object(), "protocol 'p' from 'bad' lacks"),
        ("corenet_register_protocols", "redis", redis.RedisProtocol(), "both plugin 'redis'"),
    ],
)
def test_invalid_registrations_name_the_plugin(
    hook: str, name: object, item: object, message: str
) -> None:
    from corenet.errors import PluginError

    with pytest.raises(PluginError, match=message.replace("(", r"\(")):
        load_plugins(extra={"bad": _plugin_adding(hook, name, item)}, autoload=False)
