"""When a test may skip: outside CI a missing system part skips; in CI (``CI`` set to 1, true or
yes: :func:`grader.sandbox.in_ci`) it fails, because ``make test`` installs everything there."""

from __future__ import annotations

import pytest

from grader.sandbox import in_ci  # the grader's rule (its --unsafe-no-sandbox refusal uses it)

__all__ = ["in_ci", "need_sandbox", "skip_or_fail"]


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``, or fail in CI, where the part must be present."""
    if in_ci():
        pytest.fail(f"must work in CI: {reason}")
    pytest.skip(reason)


def need_sandbox() -> None:
    """The bubblewrap grading sandbox works on this machine, or the test skips (fails in CI)."""
    from grader import sandbox

    ok, why = sandbox.available()
    if not ok:
        skip_or_fail(f"the grading sandbox: {why}")
