"""Commands the proxy answers itself: HELLO, CLIENT, SELECT, AUTH, deny-list."""

from __future__ import annotations

import hiredis
import pytest

from corenet.msg import ACTION_FORWARD, ACTION_LOCAL
from corenet.protocols.redis import RequestParser, encode_command
from corenet.protocols.redis._local import Session
from corenet.testing import drive_requests


def replies(parser: RequestParser, *commands: list[bytes]) -> list[bytes | None]:
    msgs, err, left = drive_requests(parser, [b"".join(encode_command(c) for c in commands)])
    assert err is None and left == 0
    return [m.reply for m in msgs]


def decode(reply: bytes) -> object:
    reader = hiredis.Reader(notEnoughData=False)
    reader.feed(reply)
    return reader.gets()


def test_hello_3_switches_protocol_and_variant():
    parser = RequestParser(Session(client_id=7, proxy_version=b"0.1.0"))
    assert parser.variant == 0
    (reply,) = replies(parser, [b"HELLO", b"3"])
    assert reply.startswith(b"%8\r\n")
    fields = decode(reply)
    assert fields[b"proto"] == 3 and fields[b"id"] == 7 and fields[b"server"] == b"redis"
    assert parser.variant == 1
    (null,) = replies(parser, [b"CLIENT", b"GETNAME"])
    assert null == b"_\r\n"
    (two,) = replies(parser, [b"HELLO", b"2"])
    assert two.startswith(b"*16\r\n") and parser.variant == 0


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ([b"HELLO", b"4"], b"-NOPROTO unsupported protocol version\r\n"),
        ([b"HELLO", b"x"], b"-ERR Protocol version is not an integer or out of range\r\n"),
        ([b"HELLO", b"3", b"BOGUS"], b"-ERR Syntax error in HELLO option 'BOGUS'\r\n"),
        ([b"CLIENT", b"SETINFO", b"LIB-NAME", b"redis-py"], b"+OK\r\n"),
        ([b"CLIENT", b"SETINFO", b"LIB-VER", b"8.1.0"], b"+OK\r\n"),
        ([b"CLIENT", b"KILL", b"ID", b"1"], b"-ERR CLIENT KILL is not supported by the proxy\r\n"),
        ([b"SELECT", b"0"], b"+OK\r\n"),
        ([b"SELECT", b"16"], b"-ERR DB index is out of range\r\n"),
        ([b"SELECT", b"x"], b"-ERR value is not an integer or out of range\r\n"),
        ([b"PING", b"a", b"b"], b"-ERR wrong number of arguments for 'ping' command\r\n"),
        ([b"WAIT", b"0", b"0"], b"-ERR command 'wait' is not supported by the proxy\r\n"),
        ([b"EXEC"], b"-ERR EXEC without MULTI\r\n"),
    ],
)
def test_local_replies(command, reply):
    assert replies(RequestParser(), command) == [reply]


def test_client_setname_getname():
    parser = RequestParser()
    assert replies(parser, [b"CLIENT", b"SETNAME", b"worker-1"], [b"CLIENT", b"GETNAME"]) == [
        b"+OK\r\n",
        b"$8\r\nworker-1\r\n",
    ]
    assert replies(parser, [b"CLIENT", b"SETNAME", b"a b"]) == [
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    ]


def test_hello_auth_with_a_password():
    parser = RequestParser(Session(password=b"pw", authenticated=False))
    assert replies(parser, [b"HELLO", b"3"])[0].startswith(b"-NOAUTH HELLO must be called")
    assert replies(parser, [b"HELLO", b"3", b"AUTH", b"default", b"no"]) == [
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    ]
    assert parser.variant == 0
    assert replies(parser, [b"HELLO", b"3", b"AUTH", b"default", b"pw"])[0].startswith(b"%8\r\n")
    msgs, _, _ = drive_requests(parser, [encode_command([b"GET", b"k"])])
    assert msgs[0].action == ACTION_FORWARD and parser.variant == 1


def test_unauthenticated_clients_cannot_send_big_requests():
    parser = RequestParser(Session(password=b"pw", authenticated=False))
    _, err, _ = drive_requests(parser, [b"*11\r\n"])
    assert (
        err is not None
        and err.reply == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    )
    parser = RequestParser(Session(password=b"pw", authenticated=False))
    _, err, _ = drive_requests(parser, [b"*2\r\n$3\r\nGET\r\n$16385\r\n"])
    assert err is not None and err.reply == b"-ERR Protocol error: unauthenticated bulk length\r\n"


def test_deny_list():
    parser = RequestParser(denied=frozenset([b"flushall", b"get"]))
    msgs, _, _ = drive_requests(
        parser, [encode_command([b"get", b"k"]) + encode_command([b"FLUSHALL"])]
    )
    assert [m.action for m in msgs] == [ACTION_LOCAL, ACTION_LOCAL]
    assert [m.reply for m in msgs] == [
        b"-ERR command 'GET' is not allowed\r\n",
        b"-ERR command 'FLUSHALL' is not allowed\r\n",
    ]
