"""Pub/Sub through a 2-server pool, against real redis-servers, compared
with what one redis-server answers directly."""

from __future__ import annotations

import fnmatch
import time
from typing import TYPE_CHECKING

import redis

from corenet.testing.process import connect
from tests.servers import called_later, read_until, spread_keys

if TYPE_CHECKING:
    from tests.integration.conftest import Pair


def _session(address: str, steps: list[bytes]) -> list[bytes]:
    """Send each step on one connection, reading what comes back after each."""
    out = []
    with connect(address, 5) as sock:
        for step in steps:
            sock.sendall(step)
            out.append(read_until(sock, quiet=0.3))
    return out


STEPS = [
    b"SUBSCRIBE a b c\r\n",
    b"SUBSCRIBE b\r\n",
    b"PSUBSCRIBE n* x?\r\n",
    b"PING\r\n",
    b"PING hi\r\n",
    b"GET k\r\n",
    b"UNSUBSCRIBE b zz\r\n",
    b"UNSUBSCRIBE a\r\n",
    b"PUNSUBSCRIBE x?\r\n",
    # With one left each: Redis names what is left in its own hash order.
    b"PUNSUBSCRIBE\r\n",
    b"UNSUBSCRIBE\r\n",
    b"UNSUBSCRIBE\r\n",
    b"PING\r\n",
]


def test_subscription_replies_are_redis_own(pair: Pair) -> None:
    proxy, servers = pair
    direct = _session(servers[2].address, STEPS)
    through = _session(proxy.address(), STEPS)
    assert direct[0].count(b"subscribe") == 3 and b"Can't execute 'get'" in direct[5]
    assert through == direct


def test_resp3_subscriber_gets_push_frames_and_may_run_commands(pair: Pair) -> None:
    proxy, servers = pair
    steps = [b"HELLO 3\r\n", b"SUBSCRIBE news\r\n", b"SET k v\r\nGET k\r\n"]
    direct = _session(servers[2].address, steps)
    through = _session(proxy.address(), steps)
    assert through[1:] == direct[1:]
    assert through[1].startswith(b">3\r\n$9\r\nsubscribe\r\n")
    with proxy.client() as client:
        with connect(proxy.address(), 5) as sock:
            sock.sendall(b"HELLO 3\r\nSUBSCRIBE news\r\n")
            read_until(sock, lambda d: b"subscribe" in d, quiet=2)
            assert client.publish("news", "hello") == 1
            pushed = read_until(sock, lambda d: d.endswith(b"hello\r\n"), quiet=2)
        assert pushed == b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"


def test_every_subscriber_gets_every_message_in_order(pair: Pair) -> None:
    proxy, servers = pair
    channels = spread_keys(20, "ch")  # well mixed, so both servers hold some
    direct = [s.client() for s in servers[:2]]
    holders = [0, 0]
    for ch in channels:  # every channel lives on one server, both servers used
        with proxy.client() as client:
            client.publish(ch, "probe")
    subscribers = []
    for _ in range(3):
        client = redis.Redis.from_url(f"redis://{proxy.address()}")
        pubsub = client.pubsub()
        pubsub.subscribe(*channels)
        pubsub.psubscribe(*PATTERNS)
        for _ in range(22):  # the confirmations
            assert pubsub.get_message(timeout=5) is not None
        subscribers.append((client, pubsub))
    for i, server in enumerate(direct):
        holders[i] = len(server.pubsub_channels())
    assert all(holders) and sum(holders) == len(channels), holders
    total = 1000
    with proxy.client() as publisher:
        for n in range(total):
            ch = channels[n % len(channels)]
            # three subscribers, each on ch and on every pattern ch matches
            assert publisher.publish(ch, str(n)) == 3 * (1 + _patterns_matching(ch))
    for client, pubsub in subscribers:
        got: dict[str, list[int]] = {ch: [] for ch in channels}
        patterned = 0
        deadline = time.monotonic() + 30
        expected = sum(1 + _patterns_matching(channels[n % 20]) for n in range(total))
        received = 0
        while received < expected and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=5)
            if message is None:
                break
            received += 1
            if message["type"] == "pmessage":
                patterned += 1
                continue
            got[message["channel"].decode()].append(int(message["data"]))
        assert received == expected
        for n, ch in enumerate(channels):
            assert got[ch] == list(range(n, total, len(channels)))
        pubsub.close()
        client.close()
    for server in direct:
        server.close()


PATTERNS = ("ch:[0-7]*", "ch:?a*")


def _patterns_matching(channel: str) -> int:
    return sum(fnmatch.fnmatchcase(channel, p) for p in PATTERNS)


def test_a_subscriber_that_leaves_frees_its_connections(pair: Pair) -> None:
    proxy, servers = pair
    with connect(proxy.address(), 5) as sock:
        sock.sendall(b"SUBSCRIBE a b c d e f\r\nPSUBSCRIBE p*\r\n")
        read_until(sock, lambda d: d.count(b"subscribe") >= 7, quiet=2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not any(s.client().pubsub_numpat() for s in servers[:2]):
            break
        time.sleep(0.05)
    assert [s.client().pubsub_numpat() for s in servers[:2]] == [0, 0]
    assert [s.client().pubsub_channels() for s in servers[:2]] == [[], []]


def test_publish_from_another_thread_reaches_a_listening_client(pair: Pair) -> None:
    proxy = pair.proxy
    with proxy.client() as client, proxy.client() as publisher:
        pubsub = client.pubsub()
        pubsub.subscribe("jobs")
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        with called_later(0.2, publisher.publish, "jobs", "go"):
            message = pubsub.get_message(timeout=5)
        assert message is not None and message["data"] == b"go"
        pubsub.unsubscribe()
        assert pubsub.get_message(timeout=5)["type"] == "unsubscribe"
        assert client.ping()


def test_pubsub_introspection_answers_as_one_redis(pair: Pair) -> None:
    proxy, servers = pair
    channels = spread_keys(12, "ch")
    subscribe = ("SUBSCRIBE " + " ".join(channels) + "\r\nPSUBSCRIBE ch:a* ch:b*\r\n").encode()
    questions = (
        b"PUBSUB NUMSUB " + " ".join(channels[:5]).encode() + b" nobody\r\n"
        b"PUBSUB NUMPAT\r\nPUBSUB CHANNELS ch:*\r\nPUBSUB SHARDCHANNELS\r\n"
        b"PUBSUB NUMSUB\r\nPUBSUB SHARDNUMSUB x\r\n"
    )
    answers = []
    for address in (servers[2].address, proxy.address()):
        with connect(address, 5) as one, connect(address, 5) as two:
            for sock in (one, two):  # two subscribers, as counts must add up
                sock.sendall(subscribe)
                read_until(sock, lambda d: d.count(b"psubscribe") >= 2, quiet=3)
            answers.append(_session(address, [questions]))
    direct, through = answers
    assert b":2\r\n" in direct[0]  # each channel has two subscribers
    # CHANNELS lists in each server's own order: compare as sets.
    d_lines, t_lines = direct[0].split(b"\r\n"), through[0].split(b"\r\n")
    assert sorted(d_lines) == sorted(t_lines)
    cut = direct[0].index(b"*12\r\n")  # before CHANNELS, byte for byte
    assert through[0][:cut] == direct[0][:cut]
    assert _session(proxy.address(), [b"PUBSUB HELP\r\n"]) == [
        b"-ERR PUBSUB HELP is not supported by the proxy\r\n"
    ]
