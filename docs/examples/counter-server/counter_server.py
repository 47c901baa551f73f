"""A line-protocol counter server on corenet's framework alone (no proxy).

    INCR name   ->  the counter's new value      GET name  ->  its value (0 if unseen)
    anything else -> "ERR unknown command"       a line over 1 KiB -> "ERR line too long", close

Run it with ``python counter_server.py [PORT]`` and talk to it with
``printf 'INCR a\\nINCR a\\nGET a\\n' | nc -N 127.0.0.1 PORT``.  It shows, in one
page, the pieces of the framework: an event backend chosen through the plugin
registry, the loop, a listener with the accept loop, streams with batched
output, and the sans-IO framer around a parser.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from corenet.errors import ProtocolError
from corenet.event import EV_READ, select_backend
from corenet.framing import Framer
from corenet.loop import Loop
from corenet.net import ListenAddress, Listener
from corenet.plugin import Plugins
from corenet.stream import Stream

if TYPE_CHECKING:
    import socket

LINE_MAX = 1024


class LineParser:
    """Sans-IO: one frame per ``\\n``-terminated line (frames are end offsets)."""

    frames = "offsets"

    def __init__(self) -> None:
        self.resume_at = 0
        self.need = 0

    def parse(self, buf: bytes, pos: int) -> int | None:
        end = buf.find(b"\n", pos, pos + LINE_MAX + 1)
        if end >= 0:
            return end + 1
        if len(buf) - pos > LINE_MAX:
            raise ProtocolError("line too long", reply=b"ERR line too long\n")
        self.resume_at, self.need = pos, 0
        return None


class CounterConn(Stream):
    """One client: every line read gets one answer, all of a read's answers in one send."""

    def __init__(self, loop: Loop, sock: socket.socket, counters: dict[bytes, int]) -> None:
        super().__init__(loop, sock)
        self.framer: Framer[bytes] = Framer(LineParser())
        self.counters = counters
        self.out: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        for line in self.framer.feed(data):
            self.out.append(self.answer(line.split()))
        if self.framer.error is not None:
            self.out.append(self.framer.error.reply)
            self.pause_reading()
        self.loop.schedule_flush(self)

    def answer(self, words: list[bytes]) -> bytes:
        if len(words) == 2 and words[0].upper() == b"INCR":
            self.counters[words[1]] = self.counters.get(words[1], 0) + 1
            return b"%d\n" % self.counters[words[1]]
        if len(words) == 2 and words[0].upper() == b"GET":
            return b"%d\n" % self.counters.get(words[1], 0)
        return b"ERR unknown command\n"

    def flush(self) -> None:
        if self.out:
            self.send_bytes(b"".join(self.out))
            self.out = []
        if not self.reading and not self.writing:
            self.close()  # after a protocol error, once its reply is out

    def output_drained(self) -> None:
        if not self.reading:
            self.close()


def serve(loop: Loop, port: int, counters: dict[bytes, int]) -> Listener:
    """Start accepting counter clients on 127.0.0.1:``port`` (0: any free port)."""

    def accept(sock: socket.socket) -> None:
        sock.setblocking(False)
        CounterConn(loop, sock, counters).register(EV_READ)

    return Listener.listen(loop, ListenAddress("127.0.0.1", port), accept, name="counters")


def main(argv: list[str]) -> int:
    loop = Loop(select_backend(None, Plugins().event_backends))
    listener = serve(loop, int(argv[1]) if len(argv) > 1 else 7070, {})
    print(f"listening on 127.0.0.1:{listener.port}", flush=True)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        loop.backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
