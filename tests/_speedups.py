"""What the tests of the optional C accelerators share.

A missing extension skips the C tests, unless ``CORENET_REQUIRE_SPEEDUPS``
is set (CI sets it): then they fail, so a broken build cannot pass as
"skipped".  ``selection_in_subprocess`` runs a fresh interpreter to see what
an accelerated module selected at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from hypothesis import strategies as st

from corenet import accel
from corenet.accel import NO_SPEEDUPS_ENV
from corenet.env import env_flag
from corenet.framing import Framer

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "REQUIRE_SPEEDUPS_ENV",
    "framed",
    "import_time_cases",
    "needs_c",
    "not_built",
    "require_built",
    "selection_in_subprocess",
    "speedups",
    "speedups_required",
    "split_points",
]

REQUIRE_SPEEDUPS_ENV = "CORENET_REQUIRE_SPEEDUPS"

T = TypeVar("T")


def speedups_required() -> bool:
    return env_flag(REQUIRE_SPEEDUPS_ENV)


def not_built(module: str) -> str:
    return f"{module} is not built (no C compiler or Python headers at install time?)"


def needs_c(built: object, module: str) -> pytest.MarkDecorator:
    """Skip at collection when ``built`` is None, unless the speedups are
    required: then the tests run and :func:`require_built` fails them."""
    return pytest.mark.skipif(built is None and not speedups_required(), reason=not_built(module))


def require_built(built: T | None, module: str) -> T:
    """``built``; skip the test, or fail it under ``CORENET_REQUIRE_SPEEDUPS``, when None."""
    if built is None:
        if speedups_required():
            pytest.fail(f"{not_built(module)}; {REQUIRE_SPEEDUPS_ENV} is set", pytrace=False)
        pytest.skip(not_built(module))
    return built


import_time_cases = pytest.mark.parametrize(
    ("env_value", "block", "pure"),
    [
        ("1", False, True),
        ("on", False, True),
        (None, True, True),
        (None, False, False),
        ("0", False, False),
    ],
    ids=["env-off", "env-on-word", "not-built", "default", "env-zero"],
)
"""The cases of an import-time selection test (see :func:`selection_in_subprocess`):
``env_value`` for ``CORENET_NO_SPEEDUPS`` (None: unset), whether to ``block``
the extension, and whether the pure paths must then be chosen (``pure``).
A test checks the extension is built before a case that is not ``pure``, so
that case skips, or fails under ``CORENET_REQUIRE_SPEEDUPS``."""


def selection_in_subprocess(code: str, env_value: str | None, block: str | None = None) -> str:
    """Run ``code`` in a fresh interpreter with ``CORENET_NO_SPEEDUPS`` set to
    ``env_value`` (None: unset) and the module ``block`` made unimportable;
    return its stripped stdout."""
    prelude = "import sys\n"
    if block is not None:
        prelude += f"sys.modules[{block!r}] = None\n"
    env = {k: v for k, v in os.environ.items() if k != NO_SPEEDUPS_ENV}
    if env_value is not None:
        env[NO_SPEEDUPS_ENV] = env_value
    done = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(params=[True, False], ids=["compiled", "pure"])
def speedups(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Run a test once with the compiled paths and once with the pure ones,
    through :func:`corenet.accel.using` (objects built inside choose so).

    The compiled run is skipped when nothing is built (failed under
    ``CORENET_REQUIRE_SPEEDUPS``)."""
    use_compiled: bool = request.param
    if use_compiled:
        require_built(accel.built("corenet._route"), "corenet._route")
    with accel.using(use_compiled):
        yield use_compiled


def framed(parser: Any, chunks: list[bytes], *, batch: bool, replies: bool) -> list[Any]:
    """What a :class:`~corenet.framing.Framer` makes of ``chunks`` with
    ``parser``: through its ``parse_many`` (``batch``) or one ``parse`` per
    frame; requests as their fields, replies as bytes, an error last.  The
    limit varies with each chunk, so that a batch also stops short and
    ``resume`` goes on: the two must give the same list."""
    if not batch:
        parser.parse_many = None  # the framer falls back to one parse per frame
    framer: Framer[Any] = Framer(parser, replies=replies)
    out: list[Any] = []
    for chunk in chunks:
        frames = [*framer.feed(chunk, 1 + len(chunk) % 7), *framer.resume()]
        out.extend(frames if replies else map(_msg_fields, frames))
        if framer.error is not None:
            out.append(("error", framer.error.reply))
            break
    return out


def _msg_fields(msg: Any) -> tuple[Any, ...]:
    return (msg.data, msg.end, msg.key, msg.action, msg.reply, msg.keys, msg.info) + (
        msg.expect_reply,
        msg.done,
    )


def split_points(data: Any, wire: bytes) -> list[int]:
    """Where to cut ``wire`` into reads (``data``: hypothesis's ``st.data()``)."""
    return data.draw(st.lists(st.integers(0, len(wire)), max_size=6))
