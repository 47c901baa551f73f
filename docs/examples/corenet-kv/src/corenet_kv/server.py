"""A tiny reference kv server: the example's own backend (loopback only).

Run ``python -m corenet_kv.server --port 7001`` (``--port 0`` picks a free
port).  Once listening it prints ``listening 127.0.0.1:PORT`` on stdout.
Keys live in a dict in memory; nothing is persisted.  It is a test and
tutorial aid, not a product: one asyncio task per client, no limits beyond
the protocol's line length.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from corenet_kv._protocol import ERR_CRLF, ERR_TOO_LONG, LINE_MAX, OK, PONG, decode_request

__all__ = ["answer", "main", "serve"]

LOOPBACK = "127.0.0.1"


def answer(store: dict[bytes, bytes], line: bytes) -> bytes:
    """Execute one request line (without CRLF) against ``store``; return the reply."""
    decoded = decode_request(line)
    if isinstance(decoded, bytes):
        return decoded
    command, key, value = decoded
    if command == b"PING":
        return PONG
    if command == b"QUIT":
        return OK
    assert key is not None
    if command == b"GET":
        found = store.get(key)
        return b"_\r\n" if found is None else b"$" + found + b"\r\n"
    if command == b"SET":
        assert value is not None
        store[key] = value
        return OK
    return b":1\r\n" if store.pop(key, None) is not None else b":0\r\n"  # DEL


async def _client(
    store: dict[bytes, bytes], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            try:
                raw = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                writer.write(ERR_TOO_LONG)
                break
            except asyncio.IncompleteReadError:
                break
            if len(raw) < 2 or raw[-2:] != b"\r\n" or b"\r" in raw[:-2]:
                writer.write(ERR_CRLF)
                break
            line = raw[:-2]
            reply = answer(store, line)
            writer.write(reply)
            if line.upper() == b"QUIT":
                break
            await writer.drain()
    finally:
        writer.close()


async def serve(port: int, *, ready: asyncio.Future[int] | None = None) -> None:
    """Serve on 127.0.0.1:``port`` until cancelled; ``ready`` gets the bound port."""
    store: dict[bytes, bytes] = {}
    server = await asyncio.start_server(
        lambda r, w: _client(store, r, w), LOOPBACK, port, limit=LINE_MAX
    )
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready.set_result(bound)
    print(f"listening {LOOPBACK}:{bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corenet_kv.server", description=__doc__)
    parser.add_argument("--port", type=int, default=7001, help="TCP port on 127.0.0.1 (0: any)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
