import os
import sys
from pathlib import Path

# The checkout first on the path: experiments/NAME/sweep.py is imported as
# experiments.NAME.sweep, here and in the worker processes the tests start.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("MPLBACKEND", "Agg")
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    """A seeded generator per test (SPEC 7: explicit randomness, never global state)."""
    return np.random.default_rng(20190101)
