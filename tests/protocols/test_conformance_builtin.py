"""The built-in Redis and memcache parsers pass the plugin conformance suite.

The same suite a third-party protocol plugin runs (corenet.testing.conformance,
docs/plugins.md): round trip, any split, pipelining, garbage, bounded
buffering and the ``need`` contract for large messages.
"""

from __future__ import annotations

from hypothesis import strategies as st

from corenet.protocols import memcache, redis
from corenet.testing.conformance import ReplyParserConformance, RequestParserConformance
from corenet.testing.memcache_strategies import (
    memcache_meta_replies,
    memcache_meta_requests,
    memcache_replies,
    memcache_requests,
    memcache_value_block,
)
from corenet.testing.strategies import encoded_commands, redis_key_commands, resp3_replies


def redis_large_request(size: int) -> bytes:
    return redis.encode_command([b"SET", b"big", b"v" * size])


def redis_large_reply(size: int) -> bytes:
    return b"$%d\r\n%s\r\n" % (size, b"v" * size)


def memcache_large_request(size: int) -> bytes:
    size = min(size, memcache.VALUE_MAX)
    return b"set big 0 0 %d\r\n%s\r\n" % (size, b"v" * size)


def memcache_large_reply(size: int) -> bytes:
    return memcache_value_block(b"big", b"v" * size) + b"END\r\n"


def meta_large_request(size: int) -> bytes:
    size = min(size, memcache.VALUE_MAX)
    return b"ms big %d T0 F1\r\n%s\r\n" % (size, b"v" * size)


def meta_large_reply(size: int) -> bytes:
    return b"VA %d f1 kbig\r\n%s\r\n" % (size, b"v" * size)


class _Builtin:
    # Four parsers and their meta variants share the suite's time: fewer examples each.
    max_examples = 50


class TestRedisRequests(_Builtin, RequestParserConformance):
    make_parser = redis.RequestParser
    messages = st.one_of(encoded_commands(), redis_key_commands().map(redis.encode_command))
    large_message = redis_large_request


class TestRedisReplies(_Builtin, ReplyParserConformance):
    make_parser = redis.ReplyParser
    replies = resp3_replies()
    large_message = redis_large_reply
    # A reply line may be up to 1 MiB (REPLY_LINE_MAX) before it is refused.
    max_pending = 2 << 20


class TestMemcacheRequests(_Builtin, RequestParserConformance):
    make_parser = memcache.RequestParser
    messages = memcache_requests().map(lambda r: r.wire)
    large_message = memcache_large_request


class TestMemcacheReplies(_Builtin, ReplyParserConformance):
    make_parser = memcache.ReplyParser
    replies = memcache_replies()
    large_message = memcache_large_reply


class TestMemcacheMetaRequests(TestMemcacheRequests):
    messages = memcache_meta_requests().map(lambda r: r.wire)
    large_message = meta_large_request
    # A quiet request goes out without its q flag (docs/memcache.md, "Meta commands").
    forwards_verbatim = False


class TestMemcacheMetaReplies(TestMemcacheReplies):
    replies = memcache_meta_replies()
    large_message = meta_large_reply
