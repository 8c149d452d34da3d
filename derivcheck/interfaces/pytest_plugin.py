"""The pytest plugin: a ``gradcheck`` fixture and ini defaults, registered through ``pytest11``.

A failing check fails the test with the report (table, directions and diagnosis) as its
message, and none of derivcheck's frames in the traceback. A passing check is silent.

Options, in ``pytest.ini`` / ``pyproject.toml`` (``[tool.pytest.ini_options]``):
``derivcheck_seed``, ``derivcheck_rtol``, ``derivcheck_atol``, ``derivcheck_mode``; keyword
arguments of a call override them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import TracebackType
from typing import Any

import pytest

_INI = {
    "derivcheck_seed": ("seed", int, "seed of derivcheck's random directions (default 0)"),
    "derivcheck_rtol": ("rtol", float, "relative tolerance added to derivcheck's error estimate"),
    "derivcheck_atol": ("atol", float, "absolute tolerance added to derivcheck's error estimate"),
    "derivcheck_mode": ("mode", str, "derivcheck's mode: auto, full or directional"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    for name, (_, _, help_text) in _INI.items():
        parser.addini(name, help_text, default=None)


class GradCheck:
    """What the ``gradcheck`` fixture gives: ``gradcheck(loss, grad, params)``, ``gradcheck.backward(...)``."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults

    def __call__(self, loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any, **options: Any) -> Any:
        __tracebackhide__ = True
        from derivcheck.checker.gradient import check_gradient

        return self._judge(_run(check_gradient, loss, grad, params, **{**self.defaults, **options}))

    def backward(self, forward: Callable[..., Any], backward: Callable[..., Any], inputs: Any, **options: Any) -> Any:
        """Check a layer's backward against its forward (see ``derivcheck.check_backward``)."""
        __tracebackhide__ = True
        from derivcheck.checker.backward import check_backward

        defaults = {k: v for k, v in self.defaults.items() if k != "inplace"}
        return self._judge(_run(check_backward, forward, backward, inputs, **{**defaults, **options}))

    @staticmethod
    def _judge(report: Any) -> Any:
        __tracebackhide__ = True
        if not report.ok:
            pytest.fail(str(report), pytrace=False)
        return report


def _run(check: Callable[..., Any], *args: Any, **options: Any) -> Any:
    """Run a check. A wrong shape, a bad option or a non-finite value fails the test with derivcheck's message
    alone; an exception raised inside the user's own function keeps its traceback (it points at their code)."""
    __tracebackhide__ = True
    from derivcheck.errors import DerivcheckError, UserFunctionError

    message, raised = None, None
    try:
        return check(*args, **options)
    except UserFunctionError as exc:
        raised = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
    except DerivcheckError as exc:
        message = f"{type(exc).__name__}: {exc}"
    # Out here, not in the except blocks, so no "during handling" chain is printed.
    if raised is not None:
        raise raised.with_traceback(_user_frames(raised.__traceback__)) from None
    pytest.fail(message, pytrace=False)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame outside derivcheck: the user's own code."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # derivcheck/, not interfaces/
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(package + os.sep):
        tb = tb.tb_next
    return tb


@pytest.fixture
def gradcheck(request: pytest.FixtureRequest) -> GradCheck:
    """Check gradients inside a test: fails the test with derivcheck's report unless the verdict is pass.

    Examples
    --------
    ``def test_dense(gradcheck): gradcheck(loss, grad, params, mode="full")``
    """
    defaults = {}
    for name, (option, kind, _) in _INI.items():
        value = request.config.getini(name)
        if value not in (None, ""):
            try:
                defaults[option] = kind(value)
            except ValueError as exc:
                raise pytest.UsageError(f"ini option {name} = {value!r}: expected {kind.__name__}") from exc
    return GradCheck(defaults)
