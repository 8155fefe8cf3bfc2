"""Tests for shared.net: gradients against finite differences, the GD loop, records, failures."""

import itertools

import numpy as np
import pytest
import threadpoolctl

from shared import _engine as _step
from shared import data, kernels, net


def _problem(rng, n=6, d=4, m=10, dtype=np.float64):
    X = data.unit_sphere(n, d, rng=rng, dtype=dtype)
    y = data.gaussian_labels(n, rng=rng, dtype=dtype)
    W, a = net.init_net(d, m, rng=rng, dtype=dtype)
    return X, y, W, a


def _naive_gd(X, y, W, a, *, eta, steps, train_a=False, scale=1.0):
    """Reference loop through the public gradients: ``theta(k+1) = theta(k) - eta grad``."""
    W, a, losses = W.copy(), a.copy(), []
    for k in range(steps + 1):
        L, gW, ga, u = net.gradients(X, y, W, a, scale=scale)
        losses.append(L)
        if k < steps:
            W -= eta * gW
            if train_a:
                a -= eta * ga
    return np.array(losses), W, a, u


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("scale", [1.0, 0.3, 4.0])
def test_gradients_match_central_differences(rng, scale):
    X, y, W, a = _problem(rng)
    a = a * rng.uniform(0.5, 1.5, size=a.shape)  # a general output layer, not only +-1
    Z = X @ W.T
    # keep every pre-activation away from the ReLU kink, so no step of size h crosses it
    W[np.abs(Z).min(axis=0) < 1e-2] += 0.1
    assert np.abs(X @ W.T).min() > 1e-3
    h = 1e-6
    L, gW, ga, u = net.gradients(X, y, W, a, scale=scale)
    np.testing.assert_allclose(u, net.predict(X, W, a, scale=scale), rtol=1e-14)
    np.testing.assert_allclose(L, net.loss(u, y), rtol=1e-14)

    def loss_at(W_, a_):
        return net.loss(net.predict(X, W_, a_, scale=scale), y)

    fd_W = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        fd_W[idx] = (loss_at(W + E, a) - loss_at(W - E, a)) / (2 * h)
    fd_a = np.array(
        [(loss_at(W, a + h * e) - loss_at(W, a - h * e)) / (2 * h) for e in np.eye(a.size)]
    )
    # Away from kinks L is a quadratic in (W, a) along each coordinate, so central
    # differences have no truncation error (the third derivative vanishes); what is
    # left is rounding, ~ eps |L| / h ~ 1e-10 |L|.
    tol = 1e-8 * max(1.0, L)
    np.testing.assert_allclose(gW, fd_W, rtol=0, atol=tol)
    np.testing.assert_allclose(ga, fd_a, rtol=0, atol=tol)


def test_jacobian_matches_gradient_chain_rule(rng):
    X, y, W, a = _problem(rng)
    _L, gW, _, u = net.gradients(X, y, W, a, scale=2.0)
    J = net.jacobian_W(X, W, a, scale=2.0)  # (n, m d)
    np.testing.assert_allclose(J.T @ (u - y), gW.ravel(), rtol=1e-12, atol=1e-14)


def test_init_net_reproducible_and_antisymmetric(rng):
    W1, a1 = net.init_net(5, 40, rng=np.random.default_rng(3))
    W2, a2 = net.init_net(5, 40, rng=np.random.default_rng(3))
    W3, _a3 = net.init_net(5, 40, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(W1, W3)
    assert set(np.unique(a1)) == {-1.0, 1.0}
    X = data.unit_sphere(7, 5, rng=rng)
    W, a = net.init_net(5, 40, rng=rng, antisymmetric=True)
    # the two halves cancel exactly in exact arithmetic; BLAS summation order leaves ~1e-16
    np.testing.assert_allclose(net.predict(X, W, a), np.zeros(7), atol=1e-14)


@pytest.mark.parametrize("antisymmetric", [False, True])
def test_init_net_scale_is_standard_normal_and_signs_are_fair(antisymmetric):
    """``w_r ~ N(0, I_d)`` entry by entry, ``a_r`` uniform on ``{-1, +1}`` (Du et al. 2019, Sec. 2).

    ``N = 200 000`` independent entries (100 000 with the antisymmetric init, whose second half
    copies the first): the sample mean has sd ``1/sqrt(N)``, the sample variance
    ``sqrt(2/N)``, the fourth moment ``sqrt(96/N)`` (Gaussian: ``E w^4 = 3``,
    ``Var w^4 = 105 - 9``). Bounds at 5 sd fail with probability < 1e-6 each, and reject the
    usual wrong scales: ``1/sqrt(d)`` (variance 0.02), ``1/sqrt(m)`` (2.5e-4), uniform entries of
    variance 1 (fourth moment 1.8), random signs (fourth moment 1).
    """
    d, m = 50, 4000
    W, a = net.init_net(d, m, rng=np.random.default_rng(7), antisymmetric=antisymmetric)
    assert W.shape == (m, d) and a.shape == (m,)
    w = W[: m // 2].ravel() if antisymmetric else W.ravel()
    N = w.size
    assert abs(w.mean()) < 5 / np.sqrt(N)
    assert abs(w.var() - 1.0) < 5 * np.sqrt(2 / N)
    assert abs(np.mean(w**4) - 3.0) < 5 * np.sqrt(96 / N)
    # isotropic: every coordinate has variance 1 over the neurons (sd sqrt(2 / (m/2)) at most)
    assert np.all(np.abs(W.var(axis=0) - 1.0) < 5 * np.sqrt(2 / (m // 2)))
    assert set(np.unique(a)) == {-1.0, 1.0}
    half = a[: m // 2]
    assert abs(half.mean()) < 5 / np.sqrt(half.size)  # fair coin: sd 1/sqrt(m/2)


@pytest.mark.parametrize("block", [None, 1])
def test_relu_tie_counts_as_active_in_gradients_jacobian_and_gram(block):
    """On an exact tie ``w_r . x_i = 0`` the pattern is ``1{w_r . x_i >= 0} = 1`` everywhere.

    ``X = I_2``, ``W = [[0, 1], [1, -1]]``, ``a = (1, -1)``, ``y = (1, 1)``, ``m = 2``,
    ``c = 1/sqrt 2``: ``Z = X W^T = [[0, 1], [1, -1]]``, ``u = c (-1, 1)``, ``r = u - y``.
    By hand, with the tie ``x_0 . w_0 = 0`` counted:
    ``dL/dw_0 = c (r_0 x_0 + r_1 x_1) = (-1/2 - c, 1/2 - c)``,
    ``dL/dw_1 = -c r_0 x_0 = (1/2 + c, 0)``, ``J = [[c, 0, -c, 0], [0, c, 0, 0]]``,
    ``H = J J^T = diag(1, 1/2)``. With ``>`` instead of ``>=`` the tie would drop out:
    ``dL/dw_0 = (0, 1/2 - c)`` and ``H_00 = 1/2``.
    """
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    W = np.array([[0.0, 1.0], [1.0, -1.0]])
    a, y = np.array([1.0, -1.0]), np.array([1.0, 1.0])
    c = 1.0 / np.sqrt(2.0)
    r = c * np.array([-1.0, 1.0]) - y
    grad_W = np.array([[-0.5 - c, 0.5 - c], [0.5 + c, 0.0]])
    J = np.array([[c, 0.0, -c, 0.0], [0.0, c, 0.0, 0.0]])
    L, gW, ga, u = net.gradients(X, y, W, a)
    np.testing.assert_allclose(u, r + y, rtol=1e-15)
    np.testing.assert_allclose(L, 0.5 * r @ r, rtol=1e-15)
    np.testing.assert_allclose(gW, grad_W, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(ga, [c * r[1], c * r[0]], rtol=1e-15)
    np.testing.assert_allclose(net.jacobian_W(X, W, a), J, rtol=1e-15)
    np.testing.assert_allclose(kernels.gram_h(X, W), [[1.0, 0.0], [0.0, 0.5]], rtol=1e-15)
    # the training loop's own pattern: one step of GD, and the step-0 record
    res = net.train(X, y, W, a, eta=0.5, steps=1, block=block, threads=2 if block else 1)
    np.testing.assert_allclose(res.W, W - 0.5 * grad_W, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(res.loss[0], L, rtol=1e-15)


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("train_a", [False, True])
@pytest.mark.parametrize(("block", "threads"), [(None, 1), (7, 1), (64, 1), (7, 3), (9, 2)])
def test_train_equals_plain_gradient_descent(rng, train_a, block, threads):
    X, y, W, a = _problem(rng, n=9, d=3, m=50)
    ref_loss, ref_W, ref_a, ref_u = _naive_gd(
        X, y, W, a, eta=0.3, steps=25, train_a=train_a, scale=1.5
    )
    res = net.train(
        X, y, W, a, eta=0.3, steps=25, train_a=train_a, scale=1.5, block=block, threads=threads
    )
    np.testing.assert_allclose(res.loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(res.W, ref_W, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.a, ref_a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.u, ref_u, rtol=0, atol=1e-12)
    assert not res.diverged and res.diverged_step is None


@pytest.mark.parametrize(
    ("n", "m", "block"), [(1, 1, None), (100, 8000, None), (7, 50, 9), (3, 5, 100)]
)
def test_blocks_tile_the_neurons_in_equal_parts(n, m, block):
    blocks = _step.blocks(n, m, block)
    assert blocks[0][0] == 0 and blocks[-1][1] == m
    assert all(e == s2 for (_, e), (s2, _) in itertools.pairwise(blocks))
    sizes = [e - s for s, e in blocks]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    if block is not None:
        assert max(sizes) <= block and len(blocks) == -(-m // block)
    else:  # one block's pre-activations stay near 2^18 numbers (2 MiB of float64)
        assert n * max(sizes) <= 2**18 or len(blocks) == m


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("train_a", [False, True])
def test_train_numbers_do_not_depend_on_threads(rng, train_a, dtype):
    # The blocks fix the order of every sum, and every block's products run on a
    # one-thread BLAS whichever thread takes them, so the numbers are equal to
    # the last bit for any `threads` and any BLAS thread setting.
    X, y, W, a = _problem(rng, n=20, d=5, m=300, dtype=dtype)
    kw = {"eta": 0.5, "steps": 15, "train_a": train_a, "block": 16, "record_every": 4}
    runs = []
    for blas, threads in [(1, 1), (2, 1), (2, 2), (1, 5)]:
        with threadpoolctl.threadpool_limits(limits=blas, user_api="blas"):
            runs.append(net.train(X, y, W, a, threads=threads, track_kernel=True, **kw))
    for res in runs[1:]:
        for field in ("loss", "W", "a", "u", "flip_fraction", "move_rms", "move_max"):
            np.testing.assert_array_equal(getattr(res, field), getattr(runs[0], field))
        # H(W) is built between steps with the caller's BLAS threads, so its
        # lambda_min agrees to the eigensolver's rounding (float32: ~1e-7 ||H|| / lambda_min)
        np.testing.assert_allclose(res.lambda_min_H, runs[0].lambda_min_H, rtol=1e-5)


def test_train_threads_hold_blas_to_one_thread_and_give_it_back(rng):
    X, y, W, a = _problem(rng, n=10, d=4, m=64)
    seen = []
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = _step.blas_threads()
        net.train(
            X,
            y,
            W,
            a,
            eta=0.1,
            steps=4,
            block=8,
            threads=2,
            progress=lambda k, steps: seen.append(_step.blas_threads()),
        )
        after_run = _step.blas_threads()
        with pytest.raises(ValueError, match="eta: the loss became non-finite"):
            net.train(X, y, W, a, eta=1e6, steps=400, block=8, threads=2)
        after_error = _step.blas_threads()
    assert seen == [1] * 5  # the workers own the cores while the run lasts
    assert after_run == before and after_error == before


def test_train_does_not_modify_inputs(rng):
    X, y, W, a = _problem(rng)
    copies = [A.copy() for A in (X, y, W, a)]
    net.train(X, y, W, a, eta=0.2, steps=5, train_a=True)
    for A, B in zip((X, y, W, a), copies, strict=True):
        np.testing.assert_array_equal(A, B)


def test_train_records_match_direct_computation(rng):
    X, y, W0, a = _problem(rng, n=12, d=5, m=200)
    res = net.train(X, y, W0, a, eta=1.0, steps=20, record_every=6, track_kernel=True)
    np.testing.assert_array_equal(res.recorded_steps, [0, 6, 12, 18, 20])
    mask0 = X @ W0.T >= 0
    for i, k in enumerate(res.recorded_steps):
        W = net.train(X, y, W0, a, eta=1.0, steps=int(k), record_every=max(int(k), 1)).W
        D = np.linalg.norm(W - W0, axis=1)  # (m,)
        assert res.flip_fraction[i] == np.count_nonzero((X @ W.T >= 0) != mask0) / mask0.size
        np.testing.assert_allclose(res.move_rms[i], np.sqrt(np.mean(D**2)), rtol=1e-12)
        np.testing.assert_allclose(res.move_max[i], D.max(), rtol=1e-12)
        np.testing.assert_allclose(res.move_fro[i], np.linalg.norm(W - W0), rtol=1e-12)
        np.testing.assert_allclose(
            res.lambda_min_H[i], kernels.lambda_min(kernels.gram_h(X, W)), rtol=1e-10
        )
    assert res.flip_fraction[0] == 0 and res.move_fro[0] == 0
    assert res.flip_fraction[-1] > 0  # eta = 1 moves some patterns at m = 200


def test_train_converges_linearly_on_wide_net(rng):
    """The science the loop exists for: at large width the loss falls at least as fast as
    Du et al.'s bound (1 - eta lam0 / 2)^k (ICLR 2019, Thm 4.1)."""
    X = data.unit_sphere(10, 8, rng=rng)
    y = data.gaussian_labels(10, rng=rng)
    lam = np.linalg.eigvalsh(kernels.h_inf(X))
    eta = 1.0 / lam[-1]
    W, a = net.init_net(8, 4000, rng=rng)
    res = net.train(X, y, W, a, eta=eta, steps=40, record_every=40)
    k = np.arange(41)
    assert np.all(res.loss / res.loss[0] <= (1 - eta * lam[0] / 2) ** k * (1 + 1e-12))


def test_train_stops_at_the_first_step_that_meets_tol(rng):
    X, y, W, a = _problem(rng, n=10, d=5, m=400)
    full = net.train(X, y, W, a, eta=1.0, steps=300, record_every=7)
    ratio = full.loss / full.loss[0]
    tol = float(np.sqrt(ratio[5] * ratio[200]))  # met somewhere strictly inside the run
    k = int(np.flatnonzero(ratio <= tol)[0])
    res = net.train(X, y, W, a, eta=1.0, steps=300, record_every=7, tol=tol)
    assert res.stopped_step == k and full.stopped_step is None and not res.diverged
    np.testing.assert_array_equal(res.loss, full.loss[: k + 1])
    assert res.recorded_steps[-1] == k  # the stopping step is recorded
    # W and u are the iterate of step k: the same as a run of exactly k steps
    exact = net.train(X, y, W, a, eta=1.0, steps=k, record_every=7)
    np.testing.assert_array_equal(res.W, exact.W)
    np.testing.assert_array_equal(res.u, exact.u)
    # a tol never met runs every step
    never = net.train(X, y, W, a, eta=1.0, steps=30, tol=1e-300)
    assert never.stopped_step is None and never.loss.shape == (31,)


def test_train_float32_end_to_end(rng):
    X, y, W, a = _problem(rng, n=10, d=4, m=300)
    r64 = net.train(X, y, W, a, eta=0.5, steps=30, train_a=True)
    r32 = net.train(*(A.astype(np.float32) for A in (X, y, W, a)), eta=0.5, steps=30, train_a=True)
    for A in (r32.W, r32.a, r32.u):
        assert A.dtype == np.float32
    # float32 rounding (eps ~ 6e-8) amplified by 30 steps of a contraction: ~1e-6 relative
    np.testing.assert_allclose(r32.loss, r64.loss, rtol=1e-4)
    np.testing.assert_allclose(r32.W, r64.W, rtol=0, atol=1e-4)
    np.testing.assert_allclose(r32.u, r64.u, rtol=0, atol=1e-4)
    _L, gW, ga, u = net.gradients(*(A.astype(np.float32) for A in (X, y, W, a)))
    assert gW.dtype == ga.dtype == u.dtype == np.float32
    assert (
        net.predict(X.astype(np.float32), W.astype(np.float32), a.astype(np.float32)).dtype
        == np.float32
    )


# --------------------------------------------------------------------------- callback
def test_callback_sees_each_recorded_iterate_read_only(rng):
    X, y, W0, a0 = _problem(rng, n=8, d=3, m=30)
    seen = []

    def watch(k, W, a, u):
        assert not (W.flags.writeable or a.flags.writeable or u.flags.writeable)
        seen.append((k, W.copy(), a.copy(), u.copy()))

    res = net.train(X, y, W0, a0, eta=0.5, steps=11, train_a=True, record_every=4, callback=watch)
    assert [k for k, *_ in seen] == [0, 4, 8, 11] == list(res.recorded_steps)
    assert not res.stopped_by_callback
    for k, W, a, u in seen:  # the iterate of step k: the same as a run of exactly k steps
        exact = net.train(X, y, W0, a0, eta=0.5, steps=k, train_a=True, record_every=100)
        np.testing.assert_array_equal(W, exact.W)
        np.testing.assert_array_equal(a, exact.a)
        np.testing.assert_array_equal(u, exact.u)
    np.testing.assert_array_equal(seen[0][1], W0)


def test_callback_stops_the_run_after_a_recorded_step(rng):
    X, y, W0, a0 = _problem(rng, n=8, d=3, m=30)
    full = net.train(X, y, W0, a0, eta=0.5, steps=40, record_every=3)
    res = net.train(
        X, y, W0, a0, eta=0.5, steps=40, record_every=3, callback=lambda k, W, a, u: k >= 7
    )
    assert res.stopped_by_callback and res.stopped_step is None and not res.diverged
    assert res.recorded_steps[-1] == 9  # the first recorded step with k >= 7
    np.testing.assert_array_equal(res.loss, full.loss[:10])
    exact = net.train(X, y, W0, a0, eta=0.5, steps=9, record_every=3)
    np.testing.assert_array_equal(res.W, exact.W)
    np.testing.assert_array_equal(res.u, exact.u)
    # a falsy return (None) runs every step
    assert not net.train(
        X, y, W0, a0, eta=0.5, steps=5, callback=lambda *args: None
    ).stopped_by_callback


def test_callback_must_be_callable(rng):
    X, y, W0, a0 = _problem(rng)
    with pytest.raises(TypeError, match="callback: expected a callable"):
        net.train(X, y, W0, a0, eta=0.1, steps=3, callback=[])


# --------------------------------------------------------------------------- divergence
def _diverging(rng):
    X, y, W, a = _problem(rng, n=8, d=3, m=40)
    lam_max = np.linalg.eigvalsh(kernels.gram_h(X, W))[-1]
    return X, y, W, a, 2.0 / lam_max


def test_divergence_raises_naming_step_and_stability_limit(rng):
    X, y, W, a, limit = _diverging(rng)
    with pytest.raises(ValueError, match=r"eta: the loss became non-finite at step \d+") as err:
        net.train(X, y, W, a, eta=20 * limit, steps=2000)
    assert f"2/lambda_max = {limit:g}" in str(err.value)


@pytest.mark.parametrize("threads", [1, 2])
def test_divergence_flag_returns_finite_truncated_history(rng, threads):
    # with threads = 2, overflow in a worker thread follows the run's error state
    # (ignored), so pytest's error::RuntimeWarning filter would catch a stray warning
    X, y, W, a, limit = _diverging(rng)
    res = net.train(
        X,
        y,
        W,
        a,
        eta=20 * limit,
        steps=2000,
        on_divergence="flag",
        record_every=5,
        block=10,
        threads=threads,
    )
    assert res.diverged and res.diverged_step is not None and 0 < res.diverged_step < 2000
    assert res.loss.shape == (res.diverged_step,)
    assert np.all(np.isfinite(res.loss))
    assert res.loss[-1] > 1e100 * res.loss[0]  # it really blew up
    for A in (res.W, res.a, res.u, res.flip_fraction, res.move_fro):
        assert np.all(np.isfinite(A))
    # W and u are the last finite iterate, k = diverged_step - 1
    last = net.train(
        X, y, W, a, eta=20 * limit, steps=res.diverged_step - 1, record_every=1000, block=10
    )
    np.testing.assert_array_equal(res.W, last.W)
    np.testing.assert_array_equal(res.u, last.u)


def test_stable_step_below_limit_converges(rng):
    X, y, W, a, limit = _diverging(rng)
    res = net.train(X, y, W, a, eta=0.5 * limit, steps=200, record_every=200)
    assert res.loss[-1] < res.loss[0]


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"X": np.ones(4)}, "X: expected a 2-D array"),
        ({"W0": np.ones((10, 3))}, r"W: expected shape \(\*, 4\)"),
        ({"a0": np.ones(9)}, r"a: expected shape \(10,\)"),
        ({"y": np.ones(5)}, r"y: expected shape \(6,\)"),
        ({"y": np.full(6, np.nan)}, "y: expected finite values"),
        ({"X": np.full((6, 4), np.inf)}, "X: expected finite values"),
        ({"eta": 0.0}, "eta: expected > 0"),
        ({"eta": -1.0}, "eta: expected > 0"),
        ({"steps": -1}, "steps: expected >= 0"),
        ({"steps": 2.5}, "steps: expected an integer"),
        ({"record_every": 0}, "record_every: expected > 0"),
        ({"scale": 0.0}, "scale: expected > 0"),
        ({"on_divergence": "ignore"}, "on_divergence: expected 'raise' or 'flag'"),
        ({"block": 0}, "block: expected > 0"),
        ({"threads": 0}, "threads: expected > 0"),
        ({"tol": 0.0}, "tol: expected > 0"),
        ({"tol": np.nan}, "tol: expected"),
        ({"threads": 1.5}, "threads: expected an integer"),
    ],
)
def test_train_bad_input(rng, kwargs, match):
    X, y, W, a = _problem(rng)
    args = {"X": X, "y": y, "W0": W, "a0": a, "eta": 0.1, "steps": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        net.train(**args)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: net.init_net(3, 0, rng=np.random.default_rng(0)), "m: expected > 0"),
        (lambda: net.init_net(0, 5, rng=np.random.default_rng(0)), "d: expected > 0"),
        (lambda: net.init_net(3, 5, rng=0), "rng: expected a numpy.random.Generator"),
        (lambda: net.init_net(3, 5, rng=np.random.RandomState(0)), "rng: expected a numpy"),
        (
            lambda: net.init_net(3, 5, rng=np.random.default_rng(0), antisymmetric=True),
            "m: expected an even",
        ),
        (
            lambda: net.predict(np.ones((2, 3)), np.ones((4, 2)), np.ones(4)),
            r"W: expected shape \(\*, 3\)",
        ),
        (lambda: net.predict(np.ones((2, 3)), np.ones((4, 3)), np.ones(4), scale=-1), "scale"),
        (
            lambda: net.gradients(np.ones((2, 3)), np.ones(3), np.ones((4, 3)), np.ones(4)),
            "y: expected shape",
        ),
        (lambda: net.loss(np.ones(3), np.ones(4)), r"y: expected shape \(3,\)"),
        (
            lambda: net.jacobian_W(np.ones((2, 3)), np.ones((4, 3)), np.ones(5)),
            r"a: expected shape \(4,\)",
        ),
    ],
)
def test_net_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_objective_matches_gradients_on_flat_w(rng):
    X = data.unit_sphere(7, 4, rng=rng)
    y = data.gaussian_labels(7, rng=rng)
    W, a = net.init_net(4, 9, rng=rng)
    f, g = net.objective(X, y, a)
    L, gW, _, _ = net.gradients(X, y, W, a)
    np.testing.assert_allclose(f(W.ravel()), L, rtol=1e-14)
    np.testing.assert_allclose(g(W.ravel()), gW.ravel(), rtol=1e-14)
    bad = W.ravel().copy()
    bad[0] = np.nan
    assert f(bad) == np.inf  # a diverged iterate is flagged, never a silent NaN loss
    assert np.all(np.isnan(g(bad)))
