"""Configuration, start-up and plugin edges found by using corenet as a newcomer would."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from corenet import accel
from corenet.errors import BackendError, ConfigError
from corenet.event import select_backend
from corenet.net import ListenAddress, bind_listener
from corenet.plugin import Plugins, hookimpl
from corenet.proxy import cli
from corenet.proxy.config import parse_config
from corenet.proxy.plugins import load_plugins
from corenet.proxy.pool import bind_pool
from corenet.proxy.validate import check_hash_function, check_pools
from tests._speedups import require_built, speedups_required

if TYPE_CHECKING:
    import pathlib

POOL = "alpha:\n  listen: 127.0.0.1:22999\n  servers:\n    - 127.0.0.1:6379:1\n"


def test_quoted_scalars_are_read_as_nutcracker_reads_them() -> None:
    pool = parse_config(
        POOL
        + '  timeout: "400"\n  auto_eject_hosts: "false"\n'
        + '  redis: \'true\'\n  redis_db: "2"\n  preconnect: "true"\n'
    )["alpha"]
    assert (pool.timeout, pool.auto_eject_hosts, pool.redis, pool.redis_db, pool.preconnect) == (
        400,
        False,
        True,
        2,
        True,
    )


@pytest.mark.parametrize("value", ['"yes please"', '"4x"', '"-1"'])
def test_quoted_nonsense_is_still_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="key 'timeout'|key 'redis'"):
        parse_config(POOL + f"  timeout: {value}\n  redis: {value}\n")


def test_a_server_line_with_trailing_garbage_is_an_error() -> None:
    text = "alpha:\n  listen: 127.0.0.1:22999\n  servers:\n    - 127.0.0.1:6379:1 name extra\n"
    with pytest.raises(ConfigError, match=r"<string>:3: pool 'alpha', key 'servers'.*one name"):
        parse_config(text)


@pytest.mark.parametrize("tag", ["!custom 1", "!!python/object/apply:os.system ['true']"])
def test_yaml_tags_are_a_one_line_error_with_the_line(
    tag: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "tags.yml"
    conf.write_text(POOL + f"  timeout: {tag}\n")
    assert cli.main(["-t", "-c", str(conf)]) == 1
    err = capsys.readouterr().err
    assert f"{conf}:5: pool 'alpha', key 'timeout': cannot read the value" in err
    assert "Traceback" not in err


def test_a_listen_host_that_does_not_resolve_fails_the_check(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "host.yml"
    conf.write_text(POOL.replace("127.0.0.1:22999", "no-such-host.invalid:22999"))
    assert cli.main(["-t", "-c", str(conf)]) == 1
    err = capsys.readouterr().err
    assert f"{conf}:2: pool 'alpha', key 'listen': host \"no-such-host.invalid\"" in err


def test_a_regular_file_at_a_unix_listen_path_is_refused_and_kept(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "precious.txt"
    path.write_text("data")
    with pytest.raises(OSError, match="not a socket"):
        bind_listener(ListenAddress(path=str(path)), 16)
    assert path.read_text() == "data"


def test_a_unix_socket_nobody_listens_on_is_replaced_a_live_one_refused(
    tmp_path: pathlib.Path,
) -> None:
    path = str(tmp_path / "s.sock")
    live = bind_listener(ListenAddress(path=path), 16)
    with pytest.raises(OSError, match="another process listens"):
        bind_listener(ListenAddress(path=path), 16)
    live.close()  # the file stays, now stale
    assert os.path.exists(path)
    bind_listener(ListenAddress(path=path), 16).close()


def test_a_bind_failure_names_the_pool_and_the_address() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    pool = parse_config(POOL.replace("22999", str(port)))["alpha"]
    expected = f"pool alpha: cannot listen on 127.0.0.1:{port}: Address already in use"
    with pytest.raises(OSError, match=re.escape(expected)):
        bind_pool(pool)
    taken.close()


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (lambda key: 1 << 40, "not an integer in 0..2\\*\\*32-1"),
        (lambda key: -1, "not an integer"),
        (lambda key: 1.5, "not an integer"),
        (lambda key: key[0], "fails on"),
        (lambda key, seen=[]: seen.append(0) or len(seen), "two different values"),
    ],
)
def test_hash_functions_are_probed_before_use(fn: object, why: str) -> None:
    problem = check_hash_function("bad", fn)
    assert problem is not None
    assert re.search(why, problem), problem


def test_a_registered_hash_that_misbehaves_fails_the_check() -> None:
    class BadHash:
        @hookimpl
        def corenet_register_hash_functions(self, registry: object) -> None:
            registry.add("wide", lambda key: 1 << 40)  # type: ignore[attr-defined]

    plugins = load_plugins(extra={"bad": BadHash()}, autoload=False)
    pools = parse_config(POOL + "  hash: wide\n")
    with pytest.raises(ConfigError, match="pool 'alpha', key 'hash': hash function 'wide'"):
        check_pools(pools, plugins)
    assert check_hash_function("fnv1a_64", plugins.hash_functions.get("fnv1a_64")) is None


def test_a_backend_this_os_lacks_is_not_available_rather_than_unknown() -> None:
    registry = Plugins(autoload=False).event_backends
    missing = next(n for n in ("kqueue", "epoll") if n not in registry)
    with pytest.raises(BackendError, match=f"event backend '{missing}' is not available here"):
        select_backend(missing, registry)


def test_an_option_error_prints_a_short_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--no-such-option"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "usage: corenet-proxy" in err and "-h" in err
    assert "print stats description" not in err  # not the whole help
    assert len(err.splitlines()) < 12


def test_a_fatal_signal_is_written_to_the_log_before_dying(tmp_path: pathlib.Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp_path / "c.yml"
    conf.write_text(POOL.replace("22999", str(port)))
    log = tmp_path / "corenet.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "corenet", "-c", str(conf), "-o", str(log), "-s", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while "started on pid" not in (log.read_text() if log.exists() else ""):
            assert proc.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGSEGV)
        assert proc.wait(10) == -signal.SIGSEGV
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    text = log.read_text()
    # nutcracker's line first (twemproxy's own test_signal looks for SEGV),
    # then the traceback; the line needs the optional corenet._fatal.
    if accel.built("corenet._fatal") is not None or speedups_required():
        assert "corenet-proxy: signal 11 (SIGSEGV) received, core dumping\n" in text
        assert text.index("SIGSEGV") < text.index("Fatal Python error: Segmentation fault")
    assert "Fatal Python error: Segmentation fault" in text


@pytest.mark.parametrize("fault", ["null read", "abort"])
def test_a_real_fault_is_noted_and_the_process_dies_of_it(
    tmp_path: pathlib.Path, fault: str
) -> None:
    # A real fault, not a kill: the handler must end the process (a handler
    # that returned would fault again forever), after writing its line.
    require_built(accel.built("corenet._fatal"), "corenet._fatal")
    log = tmp_path / "fault.log"
    act = "ctypes.string_at(0)" if fault == "null read" else "os.abort()"
    code = (
        "import ctypes, os, signal\n"
        "from corenet.faults import log_fatal_signals\n"
        f"stream = open({str(log)!r}, 'a')\n"
        "log_fatal_signals(stream, lambda s: f'noted {s.name}\\n')\n"
        f"{act}\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20)
    expected = signal.SIGSEGV if fault == "null read" else signal.SIGABRT
    assert proc.returncode == -expected
    text = log.read_text()
    assert text.startswith(f"noted {expected.name}\n")
    assert "Fatal Python error" in text
