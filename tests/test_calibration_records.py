"""Every experiment ships a calibration record that vouches for its current checks.

``experiments/<name>/calibration.json`` is written by ``sandbox calibrate NAME
--seeds 0-199`` (``sandbox/calibrate.py``). For each experiment, two tests:

- *fresh*: the record exists, its stamp matches ``expected.toml`` and the
  experiment's own ``*.py`` files, and it holds exactly the current checks with
  their current bounds (a bound edited after the calibration is caught even if
  someone recomputed the stamp by hand);
- *on target*: in quick mode every check held on every calibrated seed, no seed
  ended in an error, and every estimated false-failure rate is below ``1e-4``
  per seed (CONTRIBUTING, "Tolerances and seeds").

The synthetic folders at the end show that both tests can fail, and why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sandbox.cli import main
from sandbox.record import RECORD, load_record, record_problems, stamp, target_problems
from sandbox.registry import experiment_dirs, load

ROOT = Path(__file__).resolve().parents[1]
DIRS = experiment_dirs(ROOT)

# Experiments whose calibration record is missing or older than their code: the 200-seed run of
# the current code has not been made yet. Both tests are strict xfails for them, so an entry
# whose record becomes fresh fails until it is removed: the set can only shrink.
UNCALIBRATED: set[str] = set()

# Experiments with a fresh record on which every check held on every seed, but some check's
# estimated false-failure rate is still above the target; each README names those checks and the
# sharper measurement that would bring them under it. The target test is a strict xfail for them.
ABOVE_TARGET: set[str] = {
    "catapult",
    "condition_number",
    "depth",
    "failure_modes",
    "kernel_stability",
    "lazy_training",
    "lr_schedules",
    "mean_field_vs_ntk",
    "smooth_activation",
    "spectral_prediction",
    "step_size_regimes",
    "symmetry",
}


def _cases(*pending: set[str]):
    return [
        pytest.param(
            d,
            id=d.name,
            marks=pytest.mark.xfail(
                any(d.name in p for p in pending), reason="calibration pending", strict=True
            ),
        )
        for d in DIRS
    ]


def test_the_pending_sets_name_real_experiments():
    names = {d.name for d in DIRS}
    assert UNCALIBRATED <= names and ABOVE_TARGET <= names
    assert not UNCALIBRATED & ABOVE_TARGET


def freshness(folder: Path) -> list[str]:
    exp = load(folder)
    found = record_problems(exp, "quick")
    if not found and "full" in (load_record(folder) or {}):
        found += record_problems(exp, "full")
    return found


@pytest.mark.parametrize("folder", _cases(UNCALIBRATED))
def test_calibration_record_is_fresh(folder):
    found = freshness(folder)
    assert not found, f"experiments/{folder.name}:\n  - " + "\n  - ".join(found)


@pytest.mark.parametrize("folder", _cases(UNCALIBRATED, ABOVE_TARGET))
def test_calibrated_checks_meet_the_target(folder):
    exp = load(folder)
    if record_problems(exp, "quick"):
        pytest.fail(f"experiments/{folder.name}: no fresh calibration record (see the test above)")
    found = target_problems(exp, "quick")
    assert not found, f"experiments/{folder.name}:\n  - " + "\n  - ".join(found)


# ---------------------------------------------------------------- the tests can fail

EXACT_PY = """
import numpy as np
from shared.plotting import subplots


def run(*, quick, seed, progress=None):
    rng = np.random.default_rng(seed)
    return {"identity_error": 0.25, "coin": bool(rng.random() < 2.0), "curve": np.zeros(2)}


def plot(result):
    fig, ax = subplots()
    ax.plot(result["curve"])
    return fig
"""

EXACT_TOML = """
[experiment]
title = "exact: a deterministic quantity"
question = "Does the record test pass for a check that holds exactly?"
claim = "identity_error is 0.25 on every seed."

[[check]]
quantity = "identity_error"
at_most = 0.5
reason = "0.25 by construction: identical on every seed."
"""


@pytest.fixture
def root(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "sandbox-under-test"\n')
    folder = tmp_path / "experiments" / "exact"
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("# exact\n")
    (folder / "experiment.py").write_text(EXACT_PY)
    (folder / "expected.toml").write_text(EXACT_TOML)
    return tmp_path


def test_the_record_tests_pass_for_a_fresh_record_on_target(root):
    folder = root / "experiments" / "exact"
    with pytest.raises(AssertionError, match=r"calibration\.json is missing: run `sandbox"):
        test_calibration_record_is_fresh(folder)
    with pytest.raises(pytest.fail.Exception, match="no fresh calibration record"):
        test_calibrated_checks_meet_the_target(folder)
    assert main(["--root", str(root), "calibrate", "exact", "--seeds", "0-9"]) == 0
    test_calibration_record_is_fresh(folder)
    test_calibrated_checks_meet_the_target(folder)
    assert load_record(folder)["quick"]["checks"][0]["method"] == "identical on every seed"


def test_the_record_tests_fail_for_a_stale_record_or_a_changed_bound(root):
    folder = root / "experiments" / "exact"
    assert main(["--root", str(root), "calibrate", "exact", "--seeds", "0-9"]) == 0
    toml = folder / "expected.toml"
    toml.write_text(toml.read_text().replace("at_most = 0.5", "at_most = 5.0"))
    with pytest.raises(AssertionError, match=r"expected\.toml changed since the quick calibration"):
        test_calibration_record_is_fresh(folder)
    record = load_record(folder)
    record["quick"]["stamp"] = stamp(folder)  # a hand-made "fix" of the stamp
    (folder / RECORD).write_text(json.dumps(record))
    with pytest.raises(AssertionError, match="the bound of 'identity_error' is <= 5 but was"):
        test_calibration_record_is_fresh(folder)
    shutil.copy(folder / "experiment.py", folder / "helper.py")  # new code in the folder
    with pytest.raises(AssertionError, match=r"the experiment's \*.py files changed"):
        test_calibration_record_is_fresh(folder)


def test_the_target_test_fails_for_a_discrete_claim_on_200_seeds(root):
    """A boolean that held on every seed still cannot show 1e-4 from 200 seeds."""
    folder = root / "experiments" / "exact"
    toml = folder / "expected.toml"
    toml.write_text(
        toml.read_text() + '\n[[check]]\nquantity = "coin"\nequals = true\n'
        'reason = "always true: rng.random() < 2."\n'
    )
    assert main(["--root", str(root), "calibrate", "exact", "--seeds", "0-9"]) == 1
    test_calibration_record_is_fresh(folder)
    with pytest.raises(AssertionError, match=r"'coin': estimated false-failure rate 0.259 per"):
        test_calibrated_checks_meet_the_target(folder)
