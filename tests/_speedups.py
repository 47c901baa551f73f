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
from typing import TYPE_CHECKING, TypeVar

import pytest

from corenet import accel
from corenet.accel import NO_SPEEDUPS_ENV
from corenet.env import env_flag

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "REQUIRE_SPEEDUPS_ENV",
    "import_time_cases",
    "needs_c",
    "not_built",
    "require_built",
    "selection_in_subprocess",
    "speedups",
    "speedups_required",
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
