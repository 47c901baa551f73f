"""``--workers N``: one supervisor process and N worker processes.

Theory of operation
-------------------

The process the command line starts becomes the *supervisor*.  It does no
data-path work: it binds the listening sockets, forks the workers, answers
the stats port, forwards signals and restarts workers that die.

Each *worker* is an ordinary :class:`corenet.proxy.Proxy` (its own event
loop, its own backend connections) that adopts listening sockets bound by
the supervisor instead of binding its own, and runs neither the stats port
nor ``/metrics``.

Listeners come in two modes:

* ``reuseport`` (where ``socket.SO_REUSEPORT`` exists, Linux and the BSDs):
  for every TCP pool the supervisor binds N sockets with ``SO_REUSEPORT``,
  one per worker *slot*, and worker ``i`` adopts socket ``i``.  The kernel
  spreads new connections over the N accept queues (on Linux by a hash of
  the 4-tuple), so no two workers wake for the same connection.  The
  supervisor keeps its copy of every socket open: when a worker dies, its
  socket (and the connections already queued on it) waits for the
  replacement, which adopts the same socket, instead of being reset.
* ``shared`` (no ``SO_REUSEPORT``, or ``CORENET_WORKERS_SHARED_SOCKET=1``):
  the supervisor binds one socket per pool and every worker adopts it; each
  worker's loop watches the same socket and whichever ``accept`` wins takes
  the connection (the others get ``EAGAIN``).

Unix-socket listeners cannot use ``SO_REUSEPORT``: they are always shared.

Each worker has a socketpair to the supervisor.  The supervisor writes a
request number and a newline; the worker answers ``<number> <json>\\n``
with its own :func:`corenet.proxy.stats.snapshot`.  On a stats connection the
supervisor asks every worker, waits at most ``QUERY_TIMEOUT`` seconds, and
answers one nutcracker-layout object made by
:func:`corenet.proxy.stats.merge_snapshots` (a worker that did not answer in time
contributes its previous answer).  A worker whose socketpair reaches EOF
(the supervisor was killed) drains and exits.

Signals to the supervisor: SIGTERM closes its listeners, forwards SIGTERM
(each worker drains as a single process does), waits up to the drain
timeout plus ``STOP_GRACE`` seconds, SIGKILLs what is left and exits 0;
SIGINT is forwarded and the supervisor exits 1 (nutcracker's status);
SIGHUP, SIGTTIN and SIGTTOU act on the supervisor's own log and are
forwarded.  A worker that exits while the supervisor is not stopping is
restarted after ``RESTART_MIN`` seconds, doubling up to ``RESTART_MAX`` while
it keeps dying within ``STABLE_AFTER`` seconds of its start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

import attrs

from corenet.env import env_flag
from corenet.errors import CorenetError
from corenet.event import EV_READ, select_backend
from corenet.loop import Loop
from corenet.net import ListenAddress, Listener, bind_listener
from corenet.proxy._slot_sockets import SlotSockets
from corenet.proxy._worker import WorkerTag, worker_main
from corenet.proxy.app import (
    _ACTIONS,
    _HANDLED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    apply_log_signal,
    log_always,
)
from corenet.proxy.config import parse_config, read_config_text
from corenet.proxy.plugins import load_plugins
from corenet.proxy.reload import ReloadState, needs_listener
from corenet.proxy.stats import BACKLOG, encode, merge_snapshots
from corenet.proxy.validate import check_pools
from corenet.watch import FileWatcher

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from types import FrameType

    from corenet.proxy.app import LogControl, ProxyOptions
    from corenet.proxy.config import PoolConfig

__all__ = [
    "ENV_SHARED_SOCKET",
    "MAX_WORKERS",
    "Supervisor",
    "use_reuseport",
]

logger = logging.getLogger("corenet.workers")

ENV_SHARED_SOCKET = "CORENET_WORKERS_SHARED_SOCKET"
MAX_WORKERS = 256
RESTART_MIN = 0.1  # seconds before restarting a worker that died
RESTART_MAX = 5.0  # the back-off's ceiling
STABLE_AFTER = 5.0  # a worker that lived this long resets its back-off
START_TIMEOUT = 15.0  # for every worker to report ready at start-up
QUERY_TIMEOUT = 1.0  # for the workers' stats, per stats connection
STOP_GRACE = 5.0  # beyond the drain timeout, before SIGKILL
_TICK = 0.5  # longest wait of the supervisor's loop between checks
RELOAD_TIMEOUT = 10.0  # for every worker to answer a reload

_FORWARDED = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)
# The supervisor handles what a single proxy handles, and its children's deaths.
_SUPERVISOR_HANDLED = (signal.SIGCHLD, *_HANDLED)


def use_reuseport() -> bool:
    """Whether TCP listeners get one ``SO_REUSEPORT`` socket per worker."""
    return hasattr(socket, "SO_REUSEPORT") and not env_flag(ENV_SHARED_SOCKET)


# -- the supervisor -----------------------------------------------------------------


@attrs.define
class _Worker:
    slot: int
    pid: int
    channel: socket.socket
    started: float  # time.monotonic()
    buf: bytearray = attrs.field(factory=bytearray)
    last: dict[str, Any] | None = None  # the latest stats answer


class Supervisor:
    """Runs ``workers`` :class:`Proxy` processes behind the same listeners.

    Offers what :mod:`corenet.cli` uses of a :class:`Proxy`: :meth:`start`,
    :meth:`run` and :meth:`close`.

    Args:
        pools: the pools, as loaded by :func:`corenet.proxy.config.load_config`.
        options: the command line's settings; the stats port is served here,
            ``metrics_port`` must be None.
        workers: how many worker processes (2 or more makes sense).
        version: corenet's version.
        log: what SIGHUP/SIGTTIN/SIGTTOU act on, here and in each worker.
        close_in_workers: descriptors a worker closes first (the ``-d``
            start-up pipe, which must reach EOF when the supervisor closes it).
        reuseport: force a listener mode (default: :func:`use_reuseport`).
    """

    def __init__(
        self,
        pools: Mapping[str, PoolConfig],
        options: ProxyOptions,
        workers: int,
        *,
        version: str = "",
        log: LogControl | None = None,
        close_in_workers: Iterable[int] = (),
        reuseport: bool | None = None,
    ) -> None:
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be between 1 and {MAX_WORKERS}")
        if options.metrics_port:
            raise CorenetError("--metrics-port is not supported with --workers > 1")
        self.pools = pools
        self.options = options
        # Workers reload when told to, never on their own (SIGUSR1, a watch).
        self.worker_options = attrs.evolve(
            options, stats_port=None, metrics_port=None, config_file=None, watch_config=False
        )
        self.count = workers
        self.version = version
        self.log = log
        self.close_in_workers = list(close_in_workers)
        self.reuseport = use_reuseport() if reuseport is None else reuseport
        self.mode = "reuseport" if self.reuseport else "shared"
        self.started = time.time()
        self.exit_status = EXIT_OK
        self.stopping = False
        self.workers: dict[int, _Worker] = {}  # slot -> running worker
        self.socks = SlotSockets(workers, reuseport=self.reuseport)
        self.stats_sock: socket.socket | None = None
        self._crashes = [0] * workers
        self._restart_at: dict[int, float] = {}
        self._stop_deadline = 0.0
        self._signals: list[int] = []
        self._seq = 0
        self.loop: Loop | None = None
        self._stats_listener: Listener | None = None
        self.reload_state = ReloadState()
        self._watcher: FileWatcher | None = None

    # -- start ------------------------------------------------------------

    def start(self) -> None:
        """Bind every listener and the stats port, fork the workers, wait for them.

        Raises:
            OSError: an address cannot be bound (nothing stays bound).
            CorenetError: a worker failed to start (its reason included).
        """
        try:
            self._bind()
            for slot in range(self.count):
                self._spawn(slot)
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        logger.info(
            "%d workers started (%s listeners): pids %s",
            self.count,
            self.mode,
            " ".join(str(w.pid) for w in self.workers.values()),
        )

    def _bind(self) -> None:
        self.socks.bind_all(self.pools.values())
        if self.options.stats_port:
            host, port = self.options.stats_addr, self.options.stats_port
            self.stats_sock = bind_listener(ListenAddress(host=host, port=port), BACKLOG)

    def _spawn(self, slot: int) -> None:
        parent_end, child_end = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                parent_end.close()
                self._become_worker(slot, child_end)
                status = worker_main(
                    self.pools,
                    self.worker_options,
                    self.version,
                    self.log,
                    self.socks.slots[slot],
                    child_end,
                )
            except BaseException:
                with contextlib.suppress(Exception):
                    logger.critical("worker %d crashed:\n%s", os.getpid(), traceback.format_exc())
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(status)
        child_end.close()
        self.workers[slot] = _Worker(slot, pid, parent_end, time.monotonic())

    def _become_worker(self, slot: int, channel: socket.socket) -> None:
        """In a new worker: drop the supervisor's signal set-up and descriptors."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)
        # Until Proxy.run installs its handlers: SIGTTIN/SIGTTOU would stop
        # the process, SIGHUP end it.  SIGINT stays ignored after run (a
        # terminal's ^C reaches every process of the group; the supervisor
        # forwards it anyway), so no KeyboardInterrupt hits the clean-up.
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        # Tell the workers' lines apart in a log they share with the supervisor.
        tag = WorkerTag(slot)
        for handler in logging.getLogger("corenet").handlers:
            handler.addFilter(tag)
        mine = {id(sock) for sock in self.socks.slots[slot].values()}
        for sock in self.socks.all:
            if id(sock) not in mine:
                sock.close()
        if self.stats_sock is not None:
            self.stats_sock.close()
        for worker in self.workers.values():
            worker.channel.close()
        if self.loop is not None:
            # Close, never unregister: the epoll set is shared with the
            # supervisor across fork, and a DEL here would remove its entries.
            self.loop.backend.close()
        for fd in self.close_in_workers:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        for worker in list(self.workers.values()):
            line = self._read_line(worker, deadline)
            if line == b"ready":
                continue
            if line is not None and line.startswith(b"fail "):
                reason = line[5:].decode("utf-8", "replace")
            elif line is None and time.monotonic() < deadline:
                reason = "exited while starting"
            else:
                reason = f"not ready after {START_TIMEOUT:.0f} s"
            raise CorenetError(f"worker {worker.slot} (pid {worker.pid}): {reason}")

    @staticmethod
    def _read_line(worker: _Worker, deadline: float) -> bytes | None:
        """The next line from ``worker`` (blocking until ``deadline``), None on EOF/timeout."""
        while (end := worker.buf.find(b"\n")) < 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                worker.channel.settimeout(left)
                data = worker.channel.recv(65536)
            except (TimeoutError, BlockingIOError, InterruptedError):
                continue
            except OSError:
                return None
            if not data:
                return None
            worker.buf += data
        line = bytes(worker.buf[:end])
        del worker.buf[: end + 1]
        return line

    # -- run --------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT; return the exit status.

        The supervisor runs on corenet's own :class:`~corenet.loop.Loop`: the
        stats port is a :class:`~corenet.net.Listener`, signal handlers wake
        the loop, and every turn (at most ``_TICK`` apart) reaps, restarts
        and enforces the stop deadline.
        """
        loop = Loop(select_backend(self.options.event_backend, load_plugins().event_backends))
        self.loop = loop
        if self.stats_sock is not None:
            self._stats_listener = Listener(loop, self.stats_sock, self._serve_stats, name="stats")
            self._stats_listener.register(EV_READ)
        if self.options.watch_config and self.options.config_file:
            self._watcher = FileWatcher(loop, self.options.config_file, self.reload)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SUPERVISOR_HANDLED}
        try:
            while self.workers or self._restart_at or not self.stopping:
                self._turn(loop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()
            self.loop = None
            loop.backend.close()
        return self.exit_status

    def _turn(self, loop: Loop) -> None:
        timeout = _TICK
        if self._restart_at:
            timeout = min(timeout, max(0.0, min(self._restart_at.values()) - time.monotonic()))
        loop.run_once(timeout)
        if self._signals:
            self._handle_signals()
        self._reap()
        now = time.monotonic()
        for slot, when in list(self._restart_at.items()):
            if when <= now:
                del self._restart_at[slot]
                self._spawn(slot)
                logger.warning("worker %d restarted: pid %d", slot, self.workers[slot].pid)
        if self.stopping and self.workers and now >= self._stop_deadline:
            pids = " ".join(str(w.pid) for w in self.workers.values())
            logger.warning("workers still running after the drain: killing pids %s", pids)
            self._kill_workers()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs between two bytecodes: record it and wake the loop's wait.
        self._signals.append(signum)
        if self.loop is not None:
            self.loop.backend.wakeup()

    def _handle_signals(self) -> None:
        pending, self._signals = self._signals, []
        for signum in pending:
            if signum == signal.SIGCHLD:
                continue
            name = signal.Signals(signum).name
            log_always("signal %d (%s) received%s", signum, name, _ACTIONS.get(signum, ""))
            if apply_log_signal(self.log, signum):
                pass
            elif signum in (signal.SIGTERM, signal.SIGINT):
                self._stop(signum)
                continue
            elif signum == signal.SIGUSR1:
                self.reload()
                continue
            if signum in _FORWARDED:
                self._signal_workers(signum)

    def _stop(self, signum: int) -> None:
        if signum == signal.SIGINT:
            self.exit_status = EXIT_INTERRUPTED
        grace = self.options.drain_timeout + STOP_GRACE if signum == signal.SIGTERM else STOP_GRACE
        if not self.stopping:
            self.stopping = True
            self._restart_at.clear()
            self._close_listeners()
            self._stop_deadline = time.monotonic() + grace
        self._signal_workers(signum)

    def _signal_workers(self, signum: int) -> None:
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signum)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = next((w for w in self.workers.values() if w.pid == pid), None)
            if worker is None:
                continue
            del self.workers[worker.slot]
            worker.channel.close()
            code = os.waitstatus_to_exitcode(status)
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            if self.stopping:
                logger.info("worker %d (pid %d) %s", worker.slot, pid, how)
                continue
            lived = time.monotonic() - worker.started
            if lived >= STABLE_AFTER:
                self._crashes[worker.slot] = 0
            delay = min(RESTART_MIN * 2 ** self._crashes[worker.slot], RESTART_MAX)
            self._crashes[worker.slot] += 1
            self._restart_at[worker.slot] = time.monotonic() + delay
            logger.error(
                "worker %d (pid %d) %s after %.1f s; restarting in %.1f s",
                worker.slot,
                pid,
                how,
                lived,
                delay,
            )

    # -- reload -------------------------------------------------------------------

    def reload(self) -> bool:
        """Reload ``config_file`` in every worker; True when all of them switched.

        The supervisor validates the file as ``-t`` does and binds the new
        pools' listeners (one per slot with reuseport), then sends each worker
        the file's text and its sockets (SCM_RIGHTS over its socketpair); each
        worker reloads in place (:meth:`corenet.proxy.app.Proxy.reload`) and
        answers.  An invalid file or an address that cannot be bound changes
        nothing anywhere.  A worker that cannot switch is reported, counted
        and restarted on the new configuration, like a worker that died.
        """
        path = self.options.config_file
        try:
            if not path:
                raise CorenetError("no configuration file to reload (-c)")
            text = read_config_text(path)
            configs = parse_config(text, source=path)
            check_pools(configs, load_plugins())
            fresh: dict[str, list[socket.socket]] = {}
            try:
                for name in needs_listener(self.pools, configs):
                    fresh[name] = self.socks.bind(configs[name])
            except OSError:
                self.socks.close([s for socks in fresh.values() for s in socks])
                raise
        except (CorenetError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.reload_state.failed(reason)
            logger.error("reload failed, configuration unchanged: %s", reason)
            return False
        failed = self._reload_workers(text, path, fresh)
        self.socks.adopt(self.pools, configs, fresh)
        self.pools = dict(configs)
        if failed:
            self.reload_state.failed("; ".join(failed))
        self.reload_state.applied()
        if self._watcher is not None:
            self._watcher.accept_current()
        log_always(
            "configuration reloaded in %d of %d workers: generation %d",
            len(self.workers) - len(failed),
            len(self.workers),
            self.reload_state.generation,
        )
        return not failed

    def _reload_workers(
        self, text: str, source: str, fresh: Mapping[str, list[socket.socket]]
    ) -> list[str]:
        """Send the reload to every worker; return why each one that failed did."""
        self._seq += 1
        tag = b"reload %d" % self._seq
        body = json.dumps({"sockets": list(fresh), "text": text, "source": source})
        line = tag + b" " + body.encode() + b"\n"
        asked: list[_Worker] = []
        failed: list[str] = []
        for worker in self.workers.values():
            fds = [socks[worker.slot].fileno() for socks in fresh.values()]
            try:
                worker.channel.settimeout(RELOAD_TIMEOUT)
                # The descriptors ride on the first bytes; the rest follows.
                sent = socket.send_fds(worker.channel, [line], fds)
                worker.channel.sendall(line[sent:])
            except OSError as exc:
                failed.append(f"worker {worker.slot}: {exc}")
                continue
            asked.append(worker)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        for worker in asked:
            answer = None
            while (got := self._read_line(worker, deadline)) is not None:
                if got.startswith(tag + b" "):
                    answer = got[len(tag) + 1 :].decode("utf-8", "replace")
                    break
            if answer is None or not answer.startswith("ok "):
                why = answer[5:] if answer else "no answer"
                failed.append(f"worker {worker.slot}: {why}")
                logger.error(
                    "worker %d (pid %d) failed to reload (%s): restarting it",
                    worker.slot,
                    worker.pid,
                    why,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        return failed

    # -- stats --------------------------------------------------------------------

    def _serve_stats(self, conn: socket.socket) -> None:
        # The supervisor has no data path to keep responsive: answer in place.
        with conn:
            conn.settimeout(1.0)
            with contextlib.suppress(OSError):
                conn.sendall(encode(self.collect_stats()))

    def collect_stats(self, timeout: float = QUERY_TIMEOUT) -> dict[str, Any]:
        """Ask every worker for its stats and merge the answers.

        A worker that does not answer within ``timeout`` seconds counts with
        its previous answer (none for a worker that never answered).
        """
        self._seq += 1
        tag = str(self._seq).encode()
        asked: list[_Worker] = []
        for worker in self.workers.values():
            try:
                worker.channel.sendall(tag + b"\n")
            except OSError:
                continue
            asked.append(worker)
        deadline = time.monotonic() + timeout
        for worker in asked:
            while (line := self._read_line(worker, deadline)) is not None:
                number, _, body = line.partition(b" ")
                if number == tag:
                    with contextlib.suppress(ValueError):
                        worker.last = json.loads(body)
                    break
        answers = [w.last for w in self.workers.values() if w.last is not None]
        merged = merge_snapshots(answers, started=self.started)
        # The reload figures are the supervisor's, after nutcracker's header.
        header = {k: merged.pop(k) for k in list(merged) if not isinstance(merged[k], dict)}
        return {**header, **self.reload_state.figures(), **merged}

    # -- stop ---------------------------------------------------------------------

    def _close_listeners(self) -> None:
        self.socks.close()
        if self._stats_listener is not None:
            self._stats_listener.close()  # closes stats_sock too
            self._stats_listener = None
        elif self.stats_sock is not None:
            self.stats_sock.close()
        self.stats_sock = None

    def close(self) -> None:
        """Close the listeners; SIGKILL and reap any worker still running."""
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        self._close_listeners()
        self._kill_workers()
        self._restart_at.clear()

    def _kill_workers(self) -> None:
        """SIGKILL and reap every worker still running."""
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(worker.pid, 0)
            worker.channel.close()
        self.workers.clear()
