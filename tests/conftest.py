"""Hypothesis profiles and the one seed fixture.

HYPOTHESIS_PROFILE=nightly runs many more examples; the default ``ci`` profile keeps
``make test`` within a few minutes on two cores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=15, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "nightly", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SEED = int(os.environ.get("DERIVCHECK_TEST_SEED", "20261123"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"derivcheck: seed {SEED}, hypothesis profile {settings().max_examples} examples"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@pytest.fixture(scope="module")
def user_layers() -> Iterator[list[str]]:
    """The six user-layer fixtures of test_user_layers, declared for one module and removed after it."""
    import test_user_layers

    from derivcheck.catalog import registry
    from derivcheck.symbolic.derive import _derive

    names = test_user_layers._declare()
    yield names
    for name in names:
        registry.LAYERS.pop(name, None)
    _derive.cache_clear()


def layers_declared_by(declare: Callable[[], list[str]]) -> Iterator[list[str]]:
    """The layers a test module declares, beside the whole catalog, for one module; removed after it."""
    from derivcheck.catalog import registry

    registry._load()
    names = declare()
    yield names
    for name in names:
        registry.LAYERS.pop(name, None)
