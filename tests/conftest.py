"""Hypothesis profiles and the one seed fixture.

HYPOTHESIS_PROFILE=nightly runs many more examples; the default ``ci`` profile keeps
``make test`` within a few minutes on two cores.
"""

from __future__ import annotations

import os

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
