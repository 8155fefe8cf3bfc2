"""Tests for shared.deep: backprop against finite differences, the NTK against J J^T and the
recursion against quadrature, Monte Carlo and the two-layer kernels of shared.kernels."""

import numpy as np
import pytest
from scipy import integrate

from shared import data, deep, kernels, net


def _small(rng, depth, *, n=5, d=3, m=6):
    X = data.unit_sphere(n, d, rng=rng)
    y = data.gaussian_labels(n, rng=rng)
    return X, y, deep.init_deep(d, m, depth, rng=rng)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_gradients_match_central_differences(rng, depth):
    X, y, params = _small(rng, depth)
    L, grads, u = deep.gradients(X, y, params)
    np.testing.assert_allclose(u, deep.predict(X, params), rtol=0, atol=1e-14)
    np.testing.assert_allclose(L, 0.5 * np.sum((u - y) ** 2), rtol=1e-14)
    h = 1e-6
    for p, g in zip(params, grads, strict=True):
        assert g.shape == p.shape
        for idx in np.ndindex(p.shape):
            plus = [q.copy() for q in params]
            minus = [q.copy() for q in params]
            i = next(k for k, q in enumerate(params) if q is p)
            plus[i][idx] += h
            minus[i][idx] -= h
            fd = (deep.gradients(X, y, plus)[0] - deep.gradients(X, y, minus)[0]) / (2 * h)
            # central differences of a piecewise-quadratic loss: error ~ h^2 away from kinks
            # (no pre-activation lies within 1e-6 of zero for these Gaussian draws)
            np.testing.assert_allclose(g[idx], fd, rtol=1e-6, atol=1e-7)


def _jacobian_by_gradients(X, params):
    """Row ``i`` of ``J`` is ``du_i / dtheta``: the gradient of ``L`` with ``u - y = e_i``."""
    u = deep.predict(X, params)
    rows = []
    for i in range(X.shape[0]):
        e = np.zeros_like(u)
        e[i] = 1.0
        _, grads, _ = deep.gradients(X, u - e, params)
        rows.append(np.concatenate([g.ravel() for g in grads]))
    return np.asarray(rows)  # (n, P)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_ntk_equals_j_jt(rng, depth):
    X, _, params = _small(rng, depth, n=6, d=4, m=7)
    J = _jacobian_by_gradients(X, params)
    np.testing.assert_allclose(deep.ntk(X, params), J @ J.T, rtol=1e-12, atol=1e-12)


def test_one_hidden_layer_is_sqrt2_times_du_et_al_and_its_kernels(rng):
    X = data.unit_sphere(7, 4, rng=rng)
    W, a = rng.standard_normal((9, 4)), rng.standard_normal(9)
    # u = sqrt(2/m) a . relu(W x) = sqrt(2) * (1/sqrt(m)) sum_r a_r relu(w_r . x)
    np.testing.assert_allclose(
        deep.predict(X, [W, a]), np.sqrt(2) * net.predict(X, W, a), rtol=1e-13, atol=1e-15
    )
    # infinite width: Theta^(1) = 2 (H_inf + G_inf), Sigma^(1) = 2 G_inf (kernels.py's closed forms)
    theta, sigma = deep.ntk_inf(X, 1)
    np.testing.assert_allclose(theta, 2 * (kernels.h_inf(X) + kernels.g_inf(X)), atol=1e-14)
    np.testing.assert_allclose(sigma, 2 * kernels.g_inf(X), atol=1e-14)


def _gaussian_pair_expectations(s11, s12, s22):
    """``2 E[relu(u) relu(v)]`` and ``2 P(u > 0, v > 0)`` for ``(u, v) ~ N(0, S)``, by quadrature.

    ``u = a g1``, ``v = b (c g1 + s g2)`` with ``g ~ N(0, I_2)``: a 2-D integral in polar
    coordinates over the cone where both are positive; no angle formula of deep.py is used.
    """
    a, b = np.sqrt(s11), np.sqrt(s22)
    c = s12 / (a * b)
    s = np.sqrt(1 - c * c)

    def integrand(r, phi, kind):
        g1, g2 = r * np.cos(phi), r * np.sin(phi)
        u, v = a * g1, b * (c * g1 + s * g2)
        dens = np.exp(-0.5 * r * r) / (2 * np.pi) * r
        if u <= 0 or v <= 0:
            return 0.0
        return dens * (u * v if kind == "relu" else 1.0)

    out = []
    for kind in ("relu", "step"):
        val, _ = integrate.dblquad(
            lambda r, phi, kind=kind: integrand(r, phi, kind),
            -np.pi,
            np.pi,
            0.0,
            12.0,
            epsabs=1e-11,
            epsrel=1e-10,
        )
        out.append(2 * val)
    return out


@pytest.mark.parametrize(
    ("s11", "s12", "s22"), [(1.0, 0.3, 1.0), (2.0, -0.9, 0.7), (1.5, 1.2, 1.1)]
)
def test_relu_step_matches_quadrature(s11, s12, s22):
    S = np.array([[s11, s12], [s12, s22]])
    sigma, sigma_dot = deep._relu_step(S)
    ref_sigma, ref_dot = _gaussian_pair_expectations(s11, s12, s22)
    np.testing.assert_allclose(sigma[0, 1], ref_sigma, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(sigma_dot[0, 1], ref_dot, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.diag(sigma), [s11, s22], rtol=1e-14)  # c E[relu(u)^2] = S_ii


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_ntk_inf_diagonal_symmetry_and_positive_definite(rng, depth):
    X = data.unit_sphere(12, 5, rng=rng)
    theta, sigma = deep.ntk_inf(X, depth)
    np.testing.assert_allclose(np.diag(theta), depth + 1, rtol=1e-13)  # unit inputs
    np.testing.assert_allclose(np.diag(sigma), 1.0, rtol=1e-13)
    np.testing.assert_array_equal(theta, theta.T)
    assert np.linalg.eigvalsh(theta)[0] > 0


@pytest.mark.parametrize("depth", [2, 3])
def test_empirical_ntk_matches_the_recursion_within_monte_carlo_error(rng, depth):
    """Mean of ``J J^T`` over random nets against ``Theta^(L)``, entry by entry, in standard errors.

    24 nets of width 400: each entry's z-score ``(mean - Theta) / (sd / sqrt(24))`` is O(1) if
    the recursion is the infinite-width mean (the O(L/m) finite-width bias is about a third of
    a standard error here). A wrong layer of the recursion moves entries by 10% of their size,
    which is ~5 standard errors or more. 21 distinct entries: |z| < 5 fails with probability
    ~1e-5 under the claim.
    """
    X = data.unit_sphere(6, 4, rng=rng)
    theta, _ = deep.ntk_inf(X, depth)
    draws = np.array([deep.ntk(X, deep.init_deep(4, 400, depth, rng=rng)) for _ in range(24)])
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))  # (n, n)
    z = (draws.mean(axis=0) - theta) / se
    iu = np.triu_indices(6)
    assert np.max(np.abs(z[iu])) < 5.0
    assert 0.3 < np.sqrt(np.mean(z[iu] ** 2)) < 2.0  # the spread is sampling noise, not zero


def test_empirical_ntk_gap_shrinks_like_inverse_sqrt_width(rng):
    """Relative gap of a single net at m and 16 m (median of 5): the ratio is about 4 = sqrt(16).

    A constant gap (a wrong recursion) gives a ratio near 1; an O(1/m) gap gives 16.
    """
    X = data.unit_sphere(8, 5, rng=rng)
    theta, _ = deep.ntk_inf(X, 2)

    def gap(m):
        return np.median(
            [
                np.linalg.norm(deep.ntk(X, deep.init_deep(5, m, 2, rng=rng)) - theta)
                / np.linalg.norm(theta)
                for _ in range(5)
            ]
        )

    assert 2.0 < gap(50) / gap(800) < 8.0


def test_train_is_plain_gradient_descent_and_stops_at_tol(rng):
    X, y, params = _small(rng, 2, n=6, d=4, m=8)
    eta = 0.05
    loss, out = deep.train(X, y, params, eta=eta, steps=3)
    manual = [p.copy() for p in params]
    for k in range(3):
        Lk, grads, _ = deep.gradients(X, y, manual)
        assert loss[k] == Lk
        for p, g in zip(manual, grads, strict=True):
            p -= eta * g
    for p, q in zip(out, manual, strict=True):
        np.testing.assert_array_equal(p, q)
    loss, _ = deep.train(X, y, params, eta=eta, steps=10_000, tol=0.5)
    assert loss[-1] <= 0.5 * loss[0] < loss[-2]


def test_train_does_not_modify_params_and_raises_on_divergence(rng):
    X, y, params = _small(rng, 2)
    before = [p.copy() for p in params]
    deep.train(X, y, params, eta=0.01, steps=5)
    for p, q in zip(params, before, strict=True):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(ValueError, match="eta: the loss became non-finite at step"):
        with np.errstate(over="ignore", invalid="ignore"):
            deep.train(X, y, params, eta=1e300, steps=5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda g: deep.init_deep(3, 4, 0, rng=g), "depth: expected > 0"),
        (lambda g: deep.init_deep(3, 4, 2, rng=1), "rng: expected a numpy.random.Generator"),
        (lambda g: deep.predict(np.ones((2, 3)), [np.ones((4, 3))]), "params: expected a list"),
        (
            lambda g: deep.predict(np.ones((2, 3)), [np.ones((4, 2)), np.ones(4)]),
            r"params\[0\] \(W_1\): expected shape \(4, 3\)",
        ),
        (
            lambda g: deep.predict(np.ones((2, 3)), [np.ones((4, 3)), np.ones((4, 5)), np.ones(4)]),
            r"params\[1\] \(W_2\): expected shape \(4, 4\)",
        ),
        (
            lambda g: deep.gradients(np.ones((2, 3)), np.ones(3), deep.init_deep(3, 4, 1, rng=g)),
            r"y: expected shape \(2,\)",
        ),
        (
            lambda g: deep.train(
                np.ones((2, 3)), np.ones(2), deep.init_deep(3, 4, 1, rng=g), eta=0, steps=1
            ),
            "eta: expected > 0",
        ),
        (lambda g: deep.ntk_inf(np.zeros((2, 3)), 1), "X: expected non-zero rows"),
        (lambda g: deep.ntk_inf(np.ones((2, 3)), 1.5), "depth: expected an integer"),
    ],
)
def test_bad_input_raises_naming_the_argument(rng, call, match):
    with pytest.raises(ValueError, match=match):
        call(rng)
