"""A real Redis Cluster on loopback for tests, benchmarks and demos."""

from __future__ import annotations

import subprocess
import time

from corenet.proxy._harness_backends import (
    RedisServer,
    encode_command,
    redis_raw,
    resp_reply_end,
)
from corenet.testing.process import find_binary, free_port

__all__ = ["RedisCluster"]


class RedisCluster:
    """A Redis Cluster on loopback: ``masters`` masters with ``replicas`` each.

    Each node is a :class:`RedisServer` with ``--cluster-enabled yes`` (its
    ``nodes.conf`` in its own directory) and a short node timeout, so a
    killed master is failed over in a couple of seconds.  The cluster is
    made by ``redis-cli --cluster create`` and is ready once every node says
    ``cluster_state:ok`` and knows every other node.  ``stop()`` stops every
    node by its PID.  With ``password``, every node requires it (and its
    replicas use it to reach their master); :meth:`ask` sends it first.
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 1,
        *,
        node_timeout_ms: int = 1000,
        password: str | None = None,
    ) -> None:
        self.cli = find_binary("redis-cli") or "redis-cli"
        self.password = password
        args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
        ]
        if password is not None:
            args += ["--requirepass", password, "--masterauth", password]
        self.nodes: list[RedisServer] = []
        try:
            for _ in range(masters * (1 + replicas)):
                # The bus port is given: the default (port + 10000) does not
                # exist for the high ports the harness picks.
                bus = ["--cluster-port", str(free_port())]
                self.nodes.append(RedisServer(extra_args=[*args, *bus]))
            self.run_cli(
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            )
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    def run_cli(self, *args: str, timeout: float = 120.0) -> str:
        """``redis-cli`` with ``args``; its output, or raise with it."""
        auth = [] if self.password is None else ["-a", self.password, "--no-auth-warning"]
        done = subprocess.run(
            [self.cli, *auth, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def ask(self, node: RedisServer, *args: str) -> bytes:
        """One command to ``node`` on a new connection (after AUTH when the
        cluster has a password); its raw reply."""
        if self.password is None:
            return node.raw_command(*args)
        payload = encode_command("AUTH", self.password) + encode_command(*args)
        replies = redis_raw(node.address, payload, expect_replies=2, timeout=5.0)
        end = resp_reply_end(replies)
        if end is None or not replies.startswith(b"+OK"):
            raise RuntimeError(f"{node.describe()} refused AUTH: {replies[:80]!r}")
        return replies[end:]

    def node_lines(self, node: RedisServer | None = None) -> list[list[str]]:
        """``CLUSTER NODES`` of ``node`` (default: the first live one), split."""
        for candidate in [node] if node is not None else self.nodes:
            if candidate is None or not candidate.alive():
                continue
            reply = self.ask(candidate, "CLUSTER", "NODES")
            if reply.startswith(b"$"):
                text = reply.split(b"\r\n", 1)[1].decode()
                return [line.split() for line in text.splitlines() if line.strip()]
        raise RuntimeError("no live cluster node answers CLUSTER NODES")

    def masters(self) -> list[tuple[str, str]]:
        """``(node id, host:port)`` of each master that serves slots, by port."""
        found = []
        for fields in self.node_lines():
            flags = fields[2].split(",")
            if "master" in flags and "fail" not in flags and len(fields) > 8:
                found.append((fields[0], fields[1].split("@")[0]))
        return sorted(found, key=lambda item: int(item[1].rsplit(":", 1)[1]))

    def replicas_of(self, master_id: str) -> list[RedisServer]:
        """The live nodes replicating ``master_id``."""
        ports = {
            int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for fields in self.node_lines()
            if fields[3] == master_id and "fail" not in fields[2]
        }
        return [node for node in self.nodes if node.port in ports and node.alive()]

    def synced_replica(self, master_id: str, timeout: float = 20.0) -> RedisServer:
        """A replica of ``master_id`` whose link to it is up (one that never
        synced does not stand for election), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for replica in self.replicas_of(master_id):
                if b"master_link_status:up" in self.ask(replica, "INFO", "replication"):
                    return replica
            time.sleep(0.05)
        raise RuntimeError(f"no replica of {master_id} in sync after {timeout} s")

    def node_at(self, address: str) -> RedisServer:
        return next(node for node in self.nodes if node.address == address)

    def state_ok(self) -> bool:
        """Every live node says ``cluster_state:ok`` and agrees on the masters."""
        live = [node for node in self.nodes if node.alive()]
        views = []
        for node in live:
            info = self.ask(node, "CLUSTER", "INFO")
            if b"cluster_state:ok" not in info:
                return False
            lines = self.node_lines(node)
            if any("fail?" in f[2] or "handshake" in f[2] for f in lines):
                return False
            views.append(
                sorted(
                    f[1] for f in lines if "master" in f[2] and "fail" not in f[2] and len(f) > 8
                )
            )
        return bool(views) and all(view == views[0] for view in views)

    def wait_ok(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.state_ok():
                    return
            except (OSError, RuntimeError):
                pass
            time.sleep(0.1)
        raise RuntimeError("the cluster did not become ok in time")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
