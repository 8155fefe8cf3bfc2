"""Tests for shared.twolayer: gradients, Jacobian and kernel against finite differences and
against shared.net / shared.kernels for ReLU; erf's closed-form kernel against Monte Carlo."""

import numpy as np
import pytest

from shared import data, kernels, net, twolayer

ACTS = ("relu", "tanh", "erf")
SCALINGS = ("ntk", "mean_field")


def _problem(rng, n=5, d=4, m=7):
    X = data.unit_sphere(n, d, rng=rng)
    y = data.gaussian_labels(n, rng=rng)
    W, a = net.init_net(d, m, rng=rng)
    a = a * rng.uniform(0.5, 1.5, size=m)  # a general output layer, not only +-1
    # keep every pre-activation away from the ReLU kink, so no finite-difference step crosses it
    near = np.abs(X @ W.T).min(axis=0) < 0.05  # (m,)
    while near.any():
        W[near] = rng.standard_normal((near.sum(), d))
        near = np.abs(X @ W.T).min(axis=0) < 0.05
    return X, y, W, a


def _fd_jacobian(X, W, a, activation, scaling, h=1e-6):
    """Central-difference Jacobian of ``u`` with respect to ``(vec W, a)``, ``(n, m d + m)``."""
    theta = np.concatenate([W.ravel(), a])

    def u(t):
        return twolayer.predict(
            X, t[: W.size].reshape(W.shape), t[W.size :], activation=activation, scaling=scaling
        )

    cols = [(u(theta + h * e) - u(theta - h * e)) / (2 * h) for e in np.eye(theta.size)]
    return np.stack(cols, axis=1)


# --------------------------------------------------------------------------- activations
@pytest.mark.parametrize("activation", ACTS)
def test_sigma_derivative_matches_central_differences(activation):
    z = np.linspace(-3.0, 3.0, 61) + 0.025  # never exactly at the ReLU kink
    h = 1e-6
    S, Sp = twolayer.sigma(z, activation=activation)
    Sh, _ = twolayer.sigma(z + h, activation=activation)
    Sl, _ = twolayer.sigma(z - h, activation=activation)
    np.testing.assert_allclose(Sp, (Sh - Sl) / (2 * h), rtol=1e-8, atol=1e-9)
    assert S.shape == Sp.shape == z.shape


def test_relu_derivative_at_zero_is_one_as_in_shared_net():
    _, Sp = twolayer.sigma(np.array([-1e-300, 0.0, 1e-300]), activation="relu")
    np.testing.assert_array_equal(Sp, [0.0, 1.0, 1.0])


def test_output_coef():
    assert twolayer.output_coef(400, "ntk") == pytest.approx(1 / 20)
    assert twolayer.output_coef(400, "mean_field") == pytest.approx(1 / 400)


# --------------------------------------------------------------------------- ReLU = shared.net
def test_relu_ntk_scaling_is_shared_net(rng):
    X, y, W, a = _problem(rng, n=8, d=5, m=30)
    u = twolayer.predict(X, W, a)
    np.testing.assert_allclose(u, net.predict(X, W, a), rtol=1e-13)
    L, gW, ga, u2 = twolayer.gradients(X, y, W, a)
    L_ref, gW_ref, ga_ref, _ = net.gradients(X, y, W, a)
    np.testing.assert_allclose(L, L_ref, rtol=1e-13)
    np.testing.assert_allclose(gW, gW_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ga, ga_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(u2, u, rtol=1e-14)


def test_relu_kernels_are_shared_kernels(rng):
    X = data.unit_sphere(8, 5, rng=rng)
    W, a = net.init_net(5, 300, rng=rng)  # a = +-1
    H = kernels.gram_h(X, W)
    np.testing.assert_allclose(twolayer.ntk(X, W, a, train_a=False), H, rtol=1e-12)
    np.testing.assert_allclose(twolayer.ntk(X, W, a), H + kernels.gram_g(X, W), rtol=1e-12)
    J = net.jacobian_W(X, W, a)
    np.testing.assert_allclose(twolayer.ntk(X, W, a, train_a=False), J @ J.T, rtol=1e-12)


def test_relu_train_matches_shared_net_train(rng):
    X, y, W, a = _problem(rng, n=6, d=4, m=40)
    for train_a in (False, True):
        res = twolayer.train(X, y, W, a, eta=0.3, steps=25, train_a=train_a)
        ref = net.train(X, y, W, a, eta=0.3, steps=25, train_a=train_a)
        np.testing.assert_allclose(res.loss, ref.loss, rtol=1e-10)
        np.testing.assert_allclose(res.W, ref.W, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(res.a, ref.a, rtol=1e-10, atol=1e-13)


# --------------------------------------------------------------------------- finite differences
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("scaling", SCALINGS)
def test_gradients_match_central_differences(rng, activation, scaling):
    X, y, W, a = _problem(rng)
    L, gW, ga, u = twolayer.gradients(X, y, W, a, activation=activation, scaling=scaling)
    J = _fd_jacobian(X, W, a, activation, scaling)  # (n, m d + m)
    g = J.T @ (u - y)  # grad L = J^T (u - y)
    # central differences: truncation ~ h^2 sigma''' ~ 1e-12, rounding ~ eps / h ~ 1e-10
    np.testing.assert_allclose(gW.ravel(), g[: W.size], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga, g[W.size :], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(L, 0.5 * np.sum((u - y) ** 2), rtol=1e-14)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("scaling", SCALINGS)
def test_ntk_and_jvp_are_the_jacobian(rng, activation, scaling):
    X, _, W, a = _problem(rng)
    J = _fd_jacobian(X, W, a, activation, scaling)  # (n, m d + m)
    JW = J[:, : W.size]
    np.testing.assert_allclose(
        twolayer.ntk(X, W, a, activation=activation, scaling=scaling), J @ J.T, rtol=1e-6
    )
    np.testing.assert_allclose(
        twolayer.ntk(X, W, a, activation=activation, scaling=scaling, train_a=False),
        JW @ JW.T,
        rtol=1e-6,
    )
    dW, da = rng.standard_normal(W.shape), rng.standard_normal(a.shape)
    np.testing.assert_allclose(
        twolayer.jvp(X, W, a, dW, da, activation=activation, scaling=scaling),
        J @ np.concatenate([dW.ravel(), da]),
        rtol=1e-6,
        atol=1e-9,
    )


def test_mean_field_is_ntk_rescaled(rng):
    """``c_m = 1/m`` is ``c_m = m^-1/2`` times ``m^-1/2``: predictions and kernels follow."""
    X, _, W, a = _problem(rng, m=16)
    for act in ACTS:
        u_ntk = twolayer.predict(X, W, a, activation=act)
        u_mf = twolayer.predict(X, W, a, activation=act, scaling="mean_field")
        np.testing.assert_allclose(u_mf, u_ntk / 4.0, rtol=1e-14)
        K_ntk = twolayer.ntk(X, W, a, activation=act)
        np.testing.assert_allclose(
            twolayer.ntk(X, W, a, activation=act, scaling="mean_field"), K_ntk / 16.0, rtol=1e-14
        )


# --------------------------------------------------------------------------- infinite width
@pytest.mark.parametrize("train_a", [False, True])
def test_erf_closed_form_kernel_matches_monte_carlo(rng, train_a):
    """The empirical kernel of 200000 neurons is within a few ``1/sqrt(m)`` of the closed form."""
    X = data.unit_sphere(6, 3, rng=rng) * rng.uniform(0.5, 2.0, size=(6, 1))  # general norms
    m = 200_000
    W, a = net.init_net(3, m, rng=rng)
    K_inf = twolayer.ntk_inf(X, activation="erf", train_a=train_a)
    K_m = twolayer.ntk(X, W, a, activation="erf", train_a=train_a)
    # each entry is a mean of m bounded terms with O(1) spread: error ~ 1/sqrt(m) ~ 2e-3
    np.testing.assert_allclose(K_m, K_inf, atol=6 / np.sqrt(m))
    assert np.abs(K_m - K_inf).max() > 1e-5  # a Monte Carlo estimate, not the formula itself


def test_relu_ntk_inf_is_shared_kernels(rng):
    X = data.unit_sphere(7, 4, rng=rng)
    np.testing.assert_array_equal(twolayer.ntk_inf(X), kernels.ntk_inf(X))
    np.testing.assert_array_equal(twolayer.ntk_inf(X, train_a=False), kernels.h_inf(X))


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("activation", ACTS)
def test_train_is_the_plain_gd_loop(rng, activation):
    X, y, W, a = _problem(rng)
    res = twolayer.train(
        X, y, W, a, eta=0.5, steps=4, activation=activation, scaling="mean_field", train_a=True
    )
    W_ref, a_ref = W.copy(), a.copy()
    for k in range(5):
        L, gW, ga, u = twolayer.gradients(
            X, y, W_ref, a_ref, activation=activation, scaling="mean_field"
        )
        assert res.loss[k] == pytest.approx(L, rel=1e-13)
        np.testing.assert_allclose(res.u[k], u, rtol=1e-13)
        if k < 4:
            W_ref, a_ref = W_ref - 0.5 * gW, a_ref - 0.5 * ga
    np.testing.assert_allclose(res.W, W_ref, rtol=1e-13)
    np.testing.assert_allclose(res.a, a_ref, rtol=1e-13)
    assert res.u.shape == (5, X.shape[0]) and res.loss.shape == (5,)


def test_train_converges_and_leaves_inputs_alone(rng):
    X = data.unit_sphere(10, 5, rng=rng)
    y = data.gaussian_labels(10, rng=rng)
    W, a = net.init_net(5, 2000, rng=rng)
    W_copy, a_copy = W.copy(), a.copy()
    eta = 1.0 / np.linalg.eigvalsh(twolayer.ntk(X, W, a, activation="tanh", train_a=False))[-1]
    res = twolayer.train(X, y, W, a, eta=eta, steps=300, activation="tanh")
    assert res.loss[-1] < 1e-4 * res.loss[0]
    np.testing.assert_array_equal(W, W_copy)
    np.testing.assert_array_equal(a, a_copy)
    np.testing.assert_array_equal(res.a, a)  # a is not trained by default


def test_train_raises_on_divergence(rng):
    X, y, W, a = _problem(rng)
    with pytest.raises(ValueError, match="non-finite at step"):
        twolayer.train(X, y, W, a, eta=1e3, steps=200)


# --------------------------------------------------------------------------- validation
def test_bad_inputs_raise_clear_errors(rng):
    X, y, W, a = _problem(rng)
    with pytest.raises(ValueError, match="activation: expected one of"):
        twolayer.predict(X, W, a, activation="sigmoid")
    with pytest.raises(ValueError, match="scaling: expected one of"):
        twolayer.predict(X, W, a, scaling="mup")
    with pytest.raises(ValueError, match=r"W: expected shape \(\*, 4\)"):
        twolayer.predict(X, W[:, :3], a)
    with pytest.raises(ValueError, match=r"a: expected shape \(7,\)"):
        twolayer.gradients(X, y, W, a[:3])
    with pytest.raises(ValueError, match=r"y: expected shape \(5,\)"):
        twolayer.train(X, y[:2], W, a, eta=0.1, steps=1)
    with pytest.raises(ValueError, match="dW: expected shape"):
        twolayer.jvp(X, W, a, W[:2], a)
    with pytest.raises(ValueError, match="eta: expected > 0"):
        twolayer.train(X, y, W, a, eta=0.0, steps=1)
    with pytest.raises(ValueError, match="X: expected finite values"):
        twolayer.predict(np.full_like(X, np.nan), W, a)
    with pytest.raises(ValueError, match="closed forms exist for 'relu' and 'erf'"):
        twolayer.ntk_inf(X, activation="tanh")
