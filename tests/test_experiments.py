"""Every experiment's quick mode, on one seed, against its expected.toml.

The several-seed sweep is a harness command (``sandbox check --all --seeds 0-4``),
run by the scheduled workflow and before an experiment is merged.
"""

from pathlib import Path

import numpy as np
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


def test_width_threshold_batched_gd_is_net_train(rng):
    """width_threshold trains its small nets with a GD step vectorised over the inits: it must
    be :func:`shared.net.train`'s step, to rounding, for every init, and its stop must fire at
    the first step where every init is below the target."""
    from shared import data, net

    mod = next(e for e in EXPERIMENTS if e.name == "width_threshold").load_module()
    n, d, m, inits, steps, eta = 12, 4, 7, 3, 60, 0.4
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    y = data.gaussian_labels(n, rng=rng)  # (n,)
    nets = [net.init_net(d, m, rng=rng) for _ in range(inits)]
    W0 = np.stack([W for W, _ in nets])  # (J, m, d)
    a0 = np.stack([a for _, a in nets])  # (J, m)
    got = mod.log_loss_ratios(X, y, W0, a0, eta=eta, steps=steps)  # (steps + 1, J)
    for j, (W, a) in enumerate(nets):
        loss = net.train(X, y, W, a, eta=eta, steps=steps, record_every=steps).loss
        np.testing.assert_allclose(got[:, j], np.log10(loss / loss[0]), rtol=0, atol=1e-12)
    target = float(np.max(got[-1])) + 0.1  # every init is below it by the last step
    stopped = mod.log_loss_ratios(X, y, W0, a0, eta=eta, steps=steps, stop_at=target)
    k = int(np.argmax(np.all(got <= target, axis=1)))
    assert stopped.shape == (k + 1, inits)
    np.testing.assert_array_equal(stopped, got[: k + 1])
