"""Errors raised by derivcheck: each names the parameter and what was expected."""

from __future__ import annotations

from typing import Any


class DerivcheckError(Exception):
    """Base class of every error derivcheck raises on bad input or misbehaving user code."""


class InputError(DerivcheckError, ValueError):
    """An argument given to derivcheck has the wrong type, shape or dtype."""


class UnknownOptionError(InputError, TypeError):
    """A keyword that derivcheck does not take; the message lists the ones it does."""


class IntegerDtypeError(InputError):
    """A parameter has an integer or boolean dtype, so it cannot be perturbed."""


class GradientShapeError(DerivcheckError):
    """The user's gradient does not have the structure or shapes of the parameters.

    ``finding`` holds the diagnosis (for example "sum over axis 0") when one was made.
    """

    def __init__(self, message: str, finding: Any = None) -> None:
        super().__init__(message)
        self.finding = finding


class NonFiniteError(DerivcheckError):
    """The loss or the gradient returned NaN or infinity."""


class UserFunctionError(DerivcheckError):
    """The user's loss, gradient, forward or backward raised; the original is chained."""


class GradientMismatch(AssertionError):
    """Raised by the ``assert_*`` functions when a check does not pass; carries ``report``."""

    def __init__(self, report: Any) -> None:
        super().__init__(str(report))
        self.report = report


class ExpressionError(InputError):
    """A matrix-language expression or declaration that cannot be read; ``position`` is the 0-based column."""

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        where = ""
        if position is not None:
            where = f" at column {position + 1}\n    {text}\n    {' ' * position}^"
        super().__init__(message + where)
        self.position = position
        self.text = text


class DerivcheckWarning(UserWarning):
    """A check passed with a caveat (a symmetric point, a unit that gets no gradient); the message says which."""
