"""Tests for shared._fspace: the function-space GD step against the weight-space step.

The two steps are the same GD iteration in a different order of the sums: the
weight-space step recomputes ``Z = X W^T`` from ``W(k+1) = W(k) - Q^T X``, the
function-space step updates ``Z`` by ``- K Q`` with ``K = X X^T`` and builds
``W = W(0) - C^T X`` from the summed ``C``. They agree to rounding, amplified at
most by the number of steps of a contraction.
"""

import numpy as np
import pytest
import threadpoolctl

from shared import _fspace, data, kernels, net

# Agreement of the two steps, relative (loss) or absolute on O(1) arrays (W, a, u).
# Each step rounds differently (about eps * steps' worth of sums of n and m terms);
# over 25-50 contracting steps the measured differences are at most 3e-15 relative
# at every shape here. 1e-12 leaves room for other BLAS kernels and still catches
# a wrong factor or a missed term (which moves the numbers by O(eta)).
RTOL_STEPS = 1e-12
# The moves come from Z(0) - Z(k), a difference of O(1) numbers that are ~1e-2 apart
# here, so they carry ~eps / 1e-2 relative rounding (measured <= 3e-15); lambda_min(H)
# is the same pattern counts times the same K (measured equal to ~1e-16).
RTOL_RECORDS = 1e-10


def _problem(rng, n, d, m, dtype=np.float64):
    X = data.unit_sphere(n, d, rng=rng, dtype=dtype)
    y = data.gaussian_labels(n, rng=rng, dtype=dtype)
    W, a = net.init_net(d, m, rng=rng, dtype=dtype)
    return X, y, W, a


def _assert_same_losses(L, L_ref):
    """The residual norms ``sqrt(2 L(k))`` agree to ``RTOL_STEPS ||u(0) - y||``.

    ``r = u - y`` carries an absolute rounding error of the size of the predictions
    whatever its norm, so a relative test on ``L(k)`` would tighten as the run
    converges (``L(50) ~ 1e-8 L(0)`` here); this one does not.
    """
    r, r_ref = np.sqrt(2 * L), np.sqrt(2 * L_ref)
    np.testing.assert_allclose(r, r_ref, rtol=RTOL_STEPS, atol=RTOL_STEPS * r_ref[0])


def _both(X, y, W, a, **kw):
    return (net.train(X, y, W, a, step=step, **kw) for step in ("weights", "function"))


@pytest.mark.parametrize("train_a", [False, True])
@pytest.mark.parametrize(
    ("n", "d", "m", "block", "threads"),
    [
        (9, 3, 50, None, 1),  # n > 2d: the auto choice would be the weight-space step
        (5, 8, 33, None, 1),
        (20, 30, 300, 16, 2),
        (20, 30, 300, 7, 3),
        (40, 50, 1000, None, 1),
        (1, 2, 3, None, 1),
    ],
)
def test_function_step_equals_weight_step(rng, n, d, m, block, threads, train_a):
    X, y, W, a = _problem(rng, n, d, m)
    eta = 0.5 / np.linalg.norm(X, 2) ** 2  # below 2/lambda_max for every W
    kw = {"eta": eta, "steps": 50, "train_a": train_a, "block": block, "threads": threads}
    w, f = _both(X, y, W, a, record_every=7, track_kernel=True, **kw)
    _assert_same_losses(f.loss, w.loss)
    for field in ("W", "a", "u"):
        np.testing.assert_allclose(getattr(f, field), getattr(w, field), rtol=0, atol=RTOL_STEPS)
    np.testing.assert_array_equal(f.recorded_steps, w.recorded_steps)
    # the same patterns: no pre-activation lies within rounding of 0 here
    np.testing.assert_array_equal(f.flip_fraction, w.flip_fraction)
    for field in ("move_rms", "move_max", "move_fro", "lambda_min_H"):
        np.testing.assert_allclose(getattr(f, field), getattr(w, field), rtol=RTOL_RECORDS)
    ref_loss, ref_W, _ = net.gd_reference(X, y, W, a, eta=eta, steps=50, train_a=train_a)
    _assert_same_losses(f.loss, ref_loss)
    np.testing.assert_allclose(f.W, ref_W, rtol=0, atol=RTOL_STEPS)


@pytest.mark.parametrize("train_a", [False, True])
def test_refresh_of_z_keeps_the_numbers(rng, monkeypatch, train_a):
    # a refresh every 3 steps replaces Z -= K Q by Z = X W^T on those steps
    monkeypatch.setattr(_fspace, "REFRESH", 3)
    X, y, W, a = _problem(rng, 12, 20, 200)
    w, f = _both(X, y, W, a, eta=0.5, steps=20, train_a=train_a, block=30, record_every=4)
    _assert_same_losses(f.loss, w.loss)
    np.testing.assert_allclose(f.W, w.W, rtol=0, atol=RTOL_STEPS)
    np.testing.assert_allclose(f.move_fro, w.move_fro, rtol=RTOL_RECORDS)


def test_rounding_drift_of_z_stays_bounded_over_ten_thousand_steps(rng, monkeypatch):
    # Z is updated, never recomputed, between refreshes: it drifts from X W^T (W built
    # from C) by a random walk of rounding errors. The drift is read as u(k), which the
    # run computes from Z, against predict(X, W(k), a(k)), computed from W: at steps
    # 997 j, never a refresh step (REFRESH = 200). Both layers trained, eta = 1 /
    # lambda_max(H(0) + G(0)). Measured on 3 data sets, both layers or W alone: 30-51 eps
    # of max |u| with the refresh, 91-428 eps without (122 against 33 on this one).
    X, y, W, a = _problem(rng, 20, 30, 200)
    eta = 1.0 / np.linalg.eigvalsh(kernels.gram_h(X, W) + kernels.gram_g(X, W))[-1]
    eps = np.finfo(X.dtype).eps

    def drift(refresh):
        monkeypatch.setattr(_fspace, "REFRESH", refresh)
        seen = []

        def watch(k, W_k, a_k, u_k):
            seen.append(np.abs(u_k - net.predict(X, W_k, a_k)).max() / np.abs(u_k).max() / eps)

        net.train(
            X,
            y,
            W,
            a,
            eta=eta,
            steps=10**4,
            train_a=True,
            record_every=997,
            step="function",
            callback=watch,
        )
        return np.array(seen[1:])  # steps 997 j; step 0 has no drift

    assert _fspace.REFRESH == 200
    with_refresh, without = drift(200), drift(10**9)
    assert with_refresh.max() <= 100, with_refresh
    assert without.max() > 2 * with_refresh.max(), (without, with_refresh)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("train_a", [False, True])
def test_function_step_numbers_do_not_depend_on_threads(rng, train_a, dtype):
    X, y, W, a = _problem(rng, 20, 30, 300, dtype=dtype)
    kw = {"eta": 0.5, "steps": 15, "train_a": train_a, "block": 16, "record_every": 4}
    runs = []
    for blas, threads in [(1, 1), (2, 1), (2, 2), (1, 5)]:
        with threadpoolctl.threadpool_limits(limits=blas, user_api="blas"):
            runs.append(net.train(X, y, W, a, threads=threads, step="function", **kw))
    for res in runs[1:]:
        for field in ("loss", "W", "a", "u", "flip_fraction", "move_rms", "move_max"):
            np.testing.assert_array_equal(getattr(res, field), getattr(runs[0], field))
    assert runs[0].W.dtype == runs[0].u.dtype == dtype


def test_function_step_float32_agrees_with_weight_step(rng):
    X, y, W, a = (A.astype(np.float32) for A in _problem(rng, 10, 20, 300))
    w, f = _both(X, y, W, a, eta=0.5, steps=30, train_a=True)
    # float32 rounding (eps ~ 1.2e-7) over 30 contracting steps: measured 2e-6 relative
    np.testing.assert_allclose(f.loss, w.loss, rtol=1e-4)
    np.testing.assert_allclose(f.W, w.W, rtol=0, atol=1e-4)


def test_function_step_callback_tol_and_divergence_keep_their_iterates(rng):
    X, y, W0, a0 = _problem(rng, 8, 12, 40)
    seen = []
    kw = {"step": "function", "train_a": True}
    res = net.train(
        X, y, W0, a0, eta=0.5, steps=11, record_every=4,
        callback=lambda k, W, a, u: seen.append((k, W.copy(), a.copy())), **kw,
    )  # fmt: skip
    for k, W, a in seen:  # the iterate of step k: the same as a run of exactly k steps
        exact = net.train(X, y, W0, a0, eta=0.5, steps=k, record_every=100, **kw)
        np.testing.assert_array_equal(W, exact.W)
        np.testing.assert_array_equal(a, exact.a)
    np.testing.assert_array_equal(seen[0][1], W0)
    np.testing.assert_array_equal(res.W, seen[-1][1])
    # stopping at tol: the iterate of the stopping step
    full = net.train(X, y, W0, a0, eta=0.5, steps=60, **kw)
    tol = float(np.sqrt(full.loss[5] * full.loss[40]) / full.loss[0])
    stop = net.train(X, y, W0, a0, eta=0.5, steps=60, tol=tol, **kw)
    exact = net.train(X, y, W0, a0, eta=0.5, steps=stop.stopped_step, **kw)
    np.testing.assert_array_equal(stop.W, exact.W)
    np.testing.assert_array_equal(stop.u, exact.u)
    # divergence: the iterate of the step before, never a non-finite number
    lam_max = np.linalg.eigvalsh(kernels.gram_h(X, W0))[-1]
    bad = net.train(X, y, W0, a0, eta=20 / lam_max, steps=2000, on_divergence="flag", **kw)
    assert bad.diverged and 0 < bad.diverged_step < 2000
    for A in (bad.W, bad.a, bad.u, bad.move_fro):
        assert np.all(np.isfinite(A))
    last = net.train(X, y, W0, a0, eta=20 / lam_max, steps=bad.diverged_step - 1, **kw)
    np.testing.assert_array_equal(bad.W, last.W)
    np.testing.assert_array_equal(bad.a, last.a)
    np.testing.assert_array_equal(bad.u, last.u)
    with pytest.raises(ValueError, match=r"eta: the loss diverged at step \d+"):
        net.train(X, y, W0, a0, eta=20 / lam_max, steps=2000, **kw)


def test_function_step_records_match_direct_computation(rng):
    X, y, W0, a = _problem(rng, 12, 30, 200)
    kw = {"eta": 1.0, "step": "function"}
    res = net.train(X, y, W0, a, steps=20, record_every=6, track_kernel=True, **kw)
    mask0 = X @ W0.T >= 0
    for i, k in enumerate(res.recorded_steps):
        W = net.train(X, y, W0, a, steps=int(k), record_every=max(int(k), 1), **kw).W
        D = np.linalg.norm(W - W0, axis=1)  # (m,)
        assert res.flip_fraction[i] == np.count_nonzero((X @ W.T >= 0) != mask0) / mask0.size
        np.testing.assert_allclose(res.move_rms[i], np.sqrt(np.mean(D**2)), rtol=RTOL_RECORDS)
        np.testing.assert_allclose(res.move_max[i], D.max(), rtol=RTOL_RECORDS)
        np.testing.assert_allclose(res.move_fro[i], np.linalg.norm(W - W0), rtol=RTOL_RECORDS)
        np.testing.assert_allclose(
            res.lambda_min_H[i], kernels.lambda_min(kernels.gram_h(X, W)), rtol=RTOL_RECORDS
        )
    assert res.move_fro[0] == 0 and res.flip_fraction[-1] > 0


# --------------------------------------------------------------------------- the choice
CHOICES = [
    ((1000, 1000, 4096), {}, "function"),  # n = d: half the flops
    ((1000, 600, 4096), {}, "function"),  # n < 2 d
    ((50, 50, 4096), {}, "function"),  # the flagship's quick mode
    ((1000, 450, 4096), {}, "weights"),  # n > 2 d
    ((1000, 100, 4096), {}, "weights"),  # n = 10 d
    ((100, 20, 8000), {}, "weights"),  # small d: the elementwise passes decide
    ((1000, 1000, 4096), {"steps": 0}, "weights"),  # nothing to step
    # W at every step for a callback: one more product per step in function space
    ((1000, 700, 4096), {"record_every": 1, "callback": True}, "weights"),
    ((1000, 700, 4096), {"record_every": 100, "callback": True}, "function"),
]


@pytest.mark.parametrize(("shape", "kw", "expected"), CHOICES)
def test_cost_model_picks_the_cheaper_step(shape, kw, expected):
    n, d, m = shape
    args = {"steps": 100, "record_every": 5, "train_a": False, "track_kernel": False}
    args |= {"callback": False} | kw
    assert _fspace.choose(n=n, d=d, m=m, **args) == expected


def test_auto_runs_the_chosen_step(rng):
    X, y, W, a = _problem(rng, 10, 30, 100)  # n < 2 d: the function-space step
    assert _fspace.choose(
        n=10, d=30, m=100, steps=5, record_every=1, train_a=False, track_kernel=False,
        callback=False,
    ) == "function"  # fmt: skip
    auto, f = (net.train(X, y, W, a, eta=0.5, steps=5, step=s) for s in ("auto", "function"))
    np.testing.assert_array_equal(auto.W, f.W)
    np.testing.assert_array_equal(auto.loss, f.loss)


@pytest.mark.parametrize("step", ["fast", "", 1, None])
def test_step_must_be_named(rng, step):
    X, y, W, a = _problem(rng, 4, 3, 5)
    with pytest.raises(ValueError, match=r"step: expected one of 'auto', 'weights', 'function'"):
        net.train(X, y, W, a, eta=0.1, steps=2, step=step)
