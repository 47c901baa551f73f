"""How nutcracker names the servers of a pool, and the order it keeps them in.

A server's name is what ketama hashes (``name-0``, ``name-1``, ...) and what
the stats output is keyed by, so it must be spelled exactly as nutcracker
spells it (``conf_add_server`` in nc_conf.c, checked against the 0.5.0
binary's stats output):

* ``host:port:weight name`` -> ``name``;
* ``host:port:weight`` -> ``host:port`` with the port text *as written*
  (``127.0.0.1:06380`` stays ``127.0.0.1:06380``), except that when the port
  is numerically 11211 the name is just ``host``, for compatibility with
  libmemcached's ketama (``10.0.0.1:011211`` is named ``10.0.0.1``);
* ``/path/sock:weight`` -> ``/path/sock:`` with a trailing colon: nutcracker
  appends ``:`` plus the (empty) port text for any server whose port is not
  11211, and a socket has no port.

``conf_validate_server`` then sorts the pool's servers by name, comparing
lengths first and bytes (``strncmp``, i.e. unsigned) only between names of
equal length, so ``b`` < ``Ab`` < ``ab`` < ``zz`` < ``10.0.0.1``.  Every
distribution, and the stats output, sees servers in that order.  Names are
unique within a pool (nutcracker rejects duplicates), so the order is total.
"""

from __future__ import annotations

__all__ = ["KETAMA_DEFAULT_PORT", "server_name", "sort_key"]

KETAMA_DEFAULT_PORT = 11211
"""The port nutcracker leaves out of unnamed servers' names."""


def server_name(host: str, port: int | str | None, name: str | None = None) -> str:
    """Return the name nutcracker gives a configured server.

    Args:
        host: the host (or IP) as written in the config, or the socket path.
        port: the port: preferably the text as written (nutcracker keeps
            leading zeros), else an int; ``None`` for a unix socket.
        name: the optional name after the weight.

    Returns:
        The server's name, as used by ketama and the stats output.

    Raises:
        ValueError: ``port`` is a string that is not a decimal number.
    """
    if name:
        return name
    if port is None:
        return host + ":"
    text = str(port)
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"server port {text!r} is not a decimal number")
    if int(text) == KETAMA_DEFAULT_PORT:
        return host
    return f"{host}:{text}"


def sort_key(name: str) -> tuple[int, bytes]:
    """Key that sorts server names the way nutcracker orders a pool's servers."""
    raw = name.encode()
    return (len(raw), raw)
