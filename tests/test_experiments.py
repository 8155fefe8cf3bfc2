"""Every experiment's quick mode, on one seed, against its expected.toml.

The several-seed sweep is a harness command (``sandbox check --all --seeds 0-4``),
run by the scheduled workflow and before an experiment is merged.
"""

from pathlib import Path

import pytest

from sandbox.checks import format_table
from sandbox.registry import discover
from sandbox.runner import run_experiment

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = discover(ROOT)


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=[e.name for e in EXPERIMENTS])
def test_quick_mode_checks_pass(exp, tmp_path):
    rec = run_experiment(exp, quick=True, seed=0, out_dir=tmp_path)
    assert (tmp_path / "figure.png").stat().st_size > 0
    assert (tmp_path / "results.json").is_file()
    assert rec.verdicts, f"{exp.name}: no check applies in quick mode"
    assert rec.passed, "\n" + format_table(rec.verdicts, title=exp.name)
