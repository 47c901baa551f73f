"""corenet-proxy's command line: nutcracker's flags and verdicts."""

from __future__ import annotations

import os
import signal

import pytest

from tests.servers import DaemonFiles, exited, free_port, pool_config, redis_raw, wait_for
from tests.servers import run_corenet as run

GOOD = (
    "alpha:\n  listen: 127.0.0.1:{port}\n  redis: true\n  servers:\n    - 127.0.0.1:{backend}:1\n"
)


def test_version_and_describe_stats():
    # nutcracker prints -V, -h and -D on stderr (nothing on stdout) and exits 0.
    version = run("-V")
    assert version.returncode == 0
    assert version.stdout == ""
    assert version.stderr.startswith("This is corenet-proxy-")
    assert "nutcracker-0.5.0 compatible" in version.stderr.splitlines()[0]
    assert version.stderr.splitlines()[1].startswith("async event backend: ")
    described = run("-D")
    assert described.returncode == 0
    assert described.stdout == ""
    for name in (
        "client_eof",
        "forward_error",
        "fragments",
        "server_ejected_at",
        "out_queue_bytes",
    ):
        assert name in described.stderr
    assert '  client_eof          "# eof on client connections"' in described.stderr.splitlines()


def test_help_lists_every_nutcracker_flag():
    result = run("-h")
    assert result.returncode == 0
    assert result.stdout == ""
    out = result.stderr
    assert out.startswith("This is corenet-proxy-")
    for flag in (
        "--test-conf",
        "--daemonize",
        "--describe-stats",
        "--verbose",
        "--output",
        "--conf-file",
        "--stats-port",
        "--stats-addr",
        "--stats-interval",
        "--pid-file",
        "--mbuf-size",
        "--event-backend",
        "--workers",
        "--metrics-port",
        "--metrics-addr",
        "--drain-timeout",
    ):
        assert flag in out
    for short in ("-h", "-V", "-t", "-d", "-D", "-v", "-o", "-c", "-s", "-a", "-i", "-p", "-m"):
        assert f"  {short}" in out


@pytest.mark.parametrize("args", [["-x"], ["-v", "abc"], ["-s", "70000"], ["-i", "-5"], ["-m"]])
def test_bad_options_exit_1_with_usage_on_stderr(args):
    # nutcracker: the reason, then the usage, on stderr; exit status 1.
    result = run(*args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("corenet-proxy: ")
    assert "usage: corenet-proxy" in result.stderr


def test_test_conf_ok_and_invalid_with_reason(tmp_path):
    good = tmp_path / "good.yml"
    good.write_text(GOOD.format(port=free_port(), backend=free_port()))
    ok = run("-t", "-c", str(good))
    assert ok.returncode == 0
    assert f"configuration file '{good}' syntax is ok" in ok.stderr

    bad = tmp_path / "bad.yml"
    bad.write_text(
        "alpha:\n  listen: 127.0.0.1:1\n  hash: sha9\n  redis: true\n"
        "  servers:\n    - 127.0.0.1:2:1\n"
    )
    invalid = run("-t", "-c", str(bad))
    assert invalid.returncode == 1
    assert f"configuration file '{bad}' syntax is invalid" in invalid.stderr
    assert (
        f"{bad}:3: pool 'alpha', key 'hash': \"sha9\" is not a valid hash function"
        in invalid.stderr
    )

    unknown = tmp_path / "unknown.yml"
    unknown.write_text(
        "alpha:\n  listen: 127.0.0.1:1\n  colour: blue\n  servers:\n    - 127.0.0.1:2:1\n"
    )
    invalid = run("-t", "-c", str(unknown))
    assert invalid.returncode == 1
    assert (
        f"{unknown}:3: pool 'alpha', key 'colour': directive \"colour\" is unknown"
        in invalid.stderr
    )


def test_missing_config_file_is_a_clear_error(tmp_path):
    result = run("-c", str(tmp_path / "nope.yml"))
    assert result.returncode == 1
    assert "nope.yml: cannot read configuration file" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers must be between 1 and 256"),
        (["--event-backend", "iouring"], "iouring"),
        (["-m", "100"], "mbuf size must be between 512 and 16777216"),
    ],
)
def test_unsupported_values_fail_clearly(tmp_path, args, message):
    conf = tmp_path / "c.yml"
    conf.write_text(GOOD.format(port=free_port(), backend=free_port()))
    result = run("-c", str(conf), "-s", "0", *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_daemonize_writes_pid_file_and_sigterm_removes_it(tmp_path, redis_server):
    port = free_port()
    daemon = DaemonFiles.write(tmp_path, pool_config("alpha", port, [redis_server.address]))
    pid_file = daemon.pid_file
    result = run(*daemon.args())
    assert result.returncode == 0, result.stderr
    assert wait_for(pid_file.exists, timeout=10)
    pid = int(pid_file.read_text())
    try:
        assert pid != os.getpid()
        assert redis_raw(f"127.0.0.1:{port}", b"PING\r\n", expect_replies=1) == b"+PONG\r\n"
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not pid_file.exists(), timeout=10)
        assert "started on pid" in daemon.log.read_text()
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # exited(): a daemon's zombie waits for PID 1, which may reap it late.
    if not wait_for(lambda: exited(pid), timeout=5):
        pytest.fail(f"daemon {pid} still alive after SIGTERM")


def test_explain_names_the_server_a_key_really_lands_on(
    tmp_path, redis_servers, nutcracker_factory
):
    backends = redis_servers(3)
    servers = [
        f"{b.address}:{w} node{i}" for i, (b, w) in enumerate(zip(backends, (1, 2, 3), strict=True))
    ]
    config_text = (
        f"alpha:\n  listen: 127.0.0.1:{free_port()}\n  redis: true\n  hash: murmur\n"
        "  hash_tag: '{}'\n  servers:\n" + "".join(f"    - {s}\n" for s in servers)
    )
    conf = tmp_path / "c.yml"
    conf.write_text(config_text)
    nutcracker = nutcracker_factory(config_text)
    client = nutcracker.client("alpha")
    for key in ("plain", "user:{7}:name", "\u00e9", "a" * 300):
        client.set(key, "1")
        holder = next(i for i, b in enumerate(backends) if b.client().exists(key))
        result = run("-c", str(conf), "--explain", "alpha", key)
        assert result.returncode == 0, result.stderr
        assert f"node{holder} ({backends[holder].address}" in result.stdout, result.stdout
        assert "murmur(" in result.stdout and "continuum point" in result.stdout
