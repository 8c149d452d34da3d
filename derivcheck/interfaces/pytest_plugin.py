"""The pytest plugin: a ``gradcheck`` fixture and ini defaults, registered through ``pytest11``.

A failing check fails the test at the user's own line (``>`` in pytest's traceback) with the
report (table, directions and diagnosis) as its message, and none of derivcheck's frames; the
short summary names the failing parameters and the cause. A pass is silent, except for its
warnings, which go through ``warnings.warn`` as ``DerivcheckWarning`` (pytest's warnings summary).
The fixture is session-scoped and holds no per-test state, so it works inside ``@given``.

Options, in ``pytest.ini`` / ``pyproject.toml`` (``[tool.pytest.ini_options]``):
``derivcheck_seed``, ``derivcheck_rtol``, ``derivcheck_atol``, ``derivcheck_mode``; keyword
arguments of a call override them. They are read and validated once, when pytest starts: a bad
value is one usage error.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any

import pytest

from derivcheck.errors import DerivcheckError, DerivcheckWarning, UserFunctionError

_MODES = ("auto", "full", "directional")

# ini name -> (keyword of the checks, pytest's ini type, help)
_INI = {
    "derivcheck_seed": ("seed", "int", "seed of derivcheck's random directions (default 0)"),
    "derivcheck_rtol": ("rtol", "float", "relative tolerance added to derivcheck's error estimate"),
    "derivcheck_atol": ("atol", "float", "absolute tolerance added to derivcheck's error estimate"),
    "derivcheck_mode": ("mode", "string", f"derivcheck's mode: {', '.join(_MODES)}"),
}
_DEFAULTS = pytest.StashKey[dict[str, Any]]()


# pytest 8.4 gave addini its "int" and "float" types; an older pytest reads strings, converted here.
_TYPED_INI = tuple(pytest.version_tuple[:2]) >= (8, 4)
_CONVERT = {"int": int, "float": float, "string": str}


def pytest_addoption(parser: pytest.Parser) -> None:
    for name, (_, kind, help_text) in _INI.items():
        parser.addini(name, help_text, type=kind if _TYPED_INI else "string", default=None)  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_DEFAULTS] = ini_defaults(config)


def ini_defaults(config: pytest.Config) -> dict[str, Any]:
    """The ini options as keyword defaults; a value that is not of the option's type is a usage error."""
    defaults: dict[str, Any] = {}
    for name, (option, kind, _) in _INI.items():
        try:
            value = config.getini(name)
        except (TypeError, ValueError, pytest.UsageError) as exc:  # pytest's own words name the value that came
            raise pytest.UsageError(f"ini option {name}: expected {kind_name(kind)} ({exc})") from None
        if value in (None, ""):
            continue
        if isinstance(value, str) and kind != "string":
            try:
                value = _CONVERT[kind](value)
            except ValueError:
                raise pytest.UsageError(f"ini option {name}: expected {kind_name(kind)} (got {value!r})") from None
        if option == "mode" and value not in _MODES:
            raise pytest.UsageError(f"ini option {name} = {value!r}: expected one of {', '.join(_MODES)}")
        defaults[option] = value
    return defaults


def kind_name(kind: str) -> str:
    return {"int": "an integer", "float": "a number", "string": "a string"}[kind]


class GradCheck:
    """What the ``gradcheck`` fixture gives: ``gradcheck(loss, grad, params)``, ``gradcheck.backward(...)``."""

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults

    def __repr__(self) -> str:  # how Hypothesis prints the fixture in a failing example
        return f"gradcheck({', '.join(f'{k}={v!r}' for k, v in self.defaults.items())})"

    def __call__(self, loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any, **options: Any) -> Any:
        """Check ``grad`` against ``loss`` at ``params`` (see ``derivcheck.check_gradient``)."""
        __tracebackhide__ = True
        from derivcheck.checker.gradient import check_gradient

        return _judge(_run(check_gradient, loss, grad, params, **{**self.defaults, **options}))

    def backward(self, forward: Callable[..., Any], backward: Callable[..., Any], inputs: Any, **options: Any) -> Any:
        """Check a layer's backward against its forward (see ``derivcheck.check_backward``)."""
        __tracebackhide__ = True
        from derivcheck.checker.backward import check_backward

        return _judge(_run(check_backward, forward, backward, inputs, **{**self.defaults, **options}))


def _judge(report: Any) -> Any:
    """Fail at the caller's line unless the verdict is pass; a pass's warnings become Python warnings."""
    __tracebackhide__ = True
    from derivcheck.report.gradient import summary_line

    if not report.ok:
        # An AssertionError, like a failing assert: Hypothesis adds its falsifying example to it, and pytest
        # marks the caller's line. The first line is what the short summary shows: parameters and cause.
        failure = AssertionError(f"{summary_line(report)}\n\n{report}")
        failure.report = report  # type: ignore[attr-defined]
        raise failure
    for finding in report.findings:
        if finding.severity == "warning":
            warnings.warn(DerivcheckWarning(finding.message), stacklevel=3)
    return report


def _run(check: Callable[..., Any], *args: Any, **options: Any) -> Any:
    """Run a check. A wrong shape, a bad option or a non-finite value fails the test at the caller's line with
    derivcheck's error alone; an exception raised inside the user's own function keeps the frames of their code."""
    __tracebackhide__ = True
    raised: BaseException | None = None
    try:
        return check(*args, **options)
    except UserFunctionError as exc:
        raised = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        frames = _user_frames(raised.__traceback__)
    except DerivcheckError as exc:
        raised, frames = exc, None
    # Out here, not in the except blocks, so no "during handling" chain is printed.
    raise raised.with_traceback(frames) from None


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame outside derivcheck: the user's own code."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # derivcheck/, not interfaces/
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(package + os.sep):
        tb = tb.tb_next
    return tb


@pytest.fixture(scope="session")
def gradcheck(pytestconfig: pytest.Config) -> GradCheck:
    """Check gradients inside a test: fails the test with derivcheck's report unless the verdict is pass.

    Session-scoped and stateless (the ini defaults only), so Hypothesis accepts it inside ``@given``.

    Examples
    --------
    ``def test_dense(gradcheck): gradcheck(loss, grad, params, mode="full")``
    """
    defaults = pytestconfig.stash.get(_DEFAULTS, None)
    return GradCheck(ini_defaults(pytestconfig) if defaults is None else defaults)
