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


def test_kernel_stability_drift_split_recovers_shared_and_own_parts(rng):
    """drift_split's estimates of ||M||_F and ||N||_F from dH_j = M + N_j are unbiased: on
    synthetic drifts with known parts, their average over repetitions recovers both norms."""
    mod = next(e for e in EXPERIMENTS if e.name == "kernel_stability").load_module()
    n, inits, reps = 20, 4, 400
    M = rng.standard_normal((n, n))
    M *= 0.3 / np.linalg.norm(M)  # ||M||_F = 0.3
    sigma = 1.0 / n  # ||N_j||_F ~ sigma n = 1
    shared_sq, own_sq = [], []
    for _ in range(reps):
        dH = M + sigma * rng.standard_normal((inits, n, n))  # (R, n, n)
        shared, own = mod.drift_split(dH)
        shared_sq.append(shared**2 if np.isfinite(shared) else 0.0)
        own_sq.append(own**2)
    np.testing.assert_allclose(np.sqrt(np.mean(own_sq)), 1.0, rtol=0.02)
    np.testing.assert_allclose(np.sqrt(np.mean(shared_sq)), 0.3, rtol=0.1)
    with pytest.raises(ValueError, match="at least 2 inits"):
        mod.drift_split(dH[:1])


def test_kernel_stability_squared_gradient_is_the_kernel_quadratic_form(rng):
    """With a_r^2 = 1 and the 1/sqrt(m) of shared.net, ||grad_W L||^2 = r^T H(W) r exactly,
    the identity behind the PL inequality ||grad_W L||^2 >= 2 lambda_min(H) L."""
    from shared import data, kernels, net

    n, d, m = 9, 5, 40
    X = data.unit_sphere(n, d, rng=rng)
    y = data.gaussian_labels(n, rng=rng)
    W, a = net.init_net(d, m, rng=rng)
    L, grad_W, _, _ = net.gradients(X, y, W, a)
    r = net.predict(X, W, a) - y  # (n,)
    H = kernels.gram_h(X, W)  # (n, n)
    np.testing.assert_allclose(np.sum(grad_W**2), r @ H @ r, rtol=1e-12)
    np.testing.assert_allclose(L, 0.5 * r @ r, rtol=1e-12)
    assert np.sum(grad_W**2) >= 2.0 * np.linalg.eigvalsh(H)[0] * L


def test_catapult_window_end_bisects_between_a_converged_and_a_failed_step(rng):
    """window_end returns the geometric mean of a converged and a failed step, 4^(1/32) apart,
    and every step it tried below the end converged and every one above did not."""
    from shared import data, net

    mod = next(e for e in EXPERIMENTS if e.name == "catapult").load_module()
    X = data.unit_sphere(16, 16, rng=rng)
    y = data.gaussian_labels(16, rng=rng)
    W0, a = net.init_net(16, 1000, rng=rng)
    lam_max0 = mod.lambda_max(X, W0)
    end, tried = mod.window_end(
        X, y, W0, a, lam_max0=lam_max0, steps=300, converged_at_catapult=True
    )
    assert len(tried) == 1 + mod.BISECTIONS
    ratios = np.array([t[0] for t in tried])
    ok = np.array([t[1] for t in tried])
    assert np.all(ok[ratios < end]) and not np.any(ok[ratios > end])
    lo = max([mod.RATIO_CATAPULT, *ratios[ok]])
    hi = min(ratios[~ok])
    np.testing.assert_allclose(hi / lo, 4.0 ** (1 / 2**mod.BISECTIONS), rtol=1e-12)
    np.testing.assert_allclose(end, np.sqrt(lo * hi), rtol=1e-12)
    assert mod.window_end(
        X, y, W0, a, lam_max0=lam_max0, steps=300, converged_at_catapult=False
    ) == (
        mod.RATIO_CATAPULT,
        [],
    )
