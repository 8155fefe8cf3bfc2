"""Tests for shared.kernels: closed forms against independent references, finite width, spectra."""

import numpy as np
import pytest
from scipy import integrate

from shared import data, kernels, net


def _unit(rng, n, d):
    return data.unit_sphere(n, d, rng=rng)


def _scaled(rng, n, d):
    """Inputs with norms in [0.3, 3] (the closed forms must not assume unit rows)."""
    return _unit(rng, n, d) * rng.uniform(0.3, 3.0, size=(n, 1))


# --------------------------------------------------------------------------- closed forms
def _plane_integrals(x, xp):
    """``E[1{w.x >= 0, w.x' >= 0}] x.x'`` and ``E[relu(w.x) relu(w.x')]`` by 2-D quadrature.

    The projection of ``w ~ N(0, I_d)`` onto ``span{x, x'}`` is a standard 2-D
    Gaussian, so both expectations are integrals over the cone
    ``{w1 >= 0, alpha w1 + beta w2 >= 0}`` of the plane, with ``x = (p, 0)`` and
    ``x' = (alpha, beta)``, ``beta > 0``, in an orthonormal basis of the span.
    No angle formula is used.
    """
    e1 = x / np.linalg.norm(x)
    rest = xp - (xp @ e1) * e1
    e2 = rest / np.linalg.norm(rest)
    p, alpha, beta = x @ e1, xp @ e1, xp @ e2  # x = (p, 0), x' = (alpha, beta)

    def density(w2, w1):
        return np.exp(-0.5 * (w1 * w1 + w2 * w2)) / (2.0 * np.pi)

    # the Gaussian mass beyond |w_k| = 12 is below 1e-32: finite limits keep quad robust
    big = 12.0

    def lower(w1):
        return max(-alpha * w1 / beta, -big)

    opts = {"epsabs": 1e-13, "epsrel": 1e-12}
    prob, _ = integrate.dblquad(density, 0.0, big, lower, big, **opts)
    g, _ = integrate.dblquad(
        lambda w2, w1: (p * w1) * (alpha * w1 + beta * w2) * density(w2, w1),
        0.0,
        big,
        lower,
        big,
        **opts,
    )
    return prob * (x @ xp), g


@pytest.mark.parametrize("angle", [0.05, 0.5, 1.0, np.pi / 2, 2.0, 3.0])
def test_closed_forms_match_plane_quadrature(rng, angle):
    d = 5
    X = data.pairs_at_angle(2, d, angle=angle, rng=rng) * np.array([[0.7], [2.2]])  # (2, d)
    h_ref, g_ref = _plane_integrals(X[0], X[1])
    # quadrature to ~1e-12; the closed forms are exact up to rounding
    np.testing.assert_allclose(kernels.h_inf(X)[0, 1], h_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(kernels.g_inf(X)[0, 1], g_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(kernels.ntk_inf(X)[0, 1], h_ref + g_ref, rtol=0, atol=2e-9)


def test_h_inf_matches_monte_carlo_within_standard_errors(rng):
    X = _scaled(rng, 8, 4)
    H_hat, se = kernels.h_inf_monte_carlo(X, n_draws=100_000, rng=rng)
    H = kernels.h_inf(X)
    z = (H_hat - H) / se
    # every entry has a positive standard error (no pair is exactly orthogonal);
    # 36 distinct entries, so |z| < 5 fails with probability ~ 2e-5 under the claim
    assert np.all(se > 0)
    assert np.max(np.abs(z)) < 5.0
    # Monte Carlo error shrinks like 1/sqrt(#draws): the z-scores are O(1), not tiny
    assert 0.3 < np.sqrt(np.mean(z**2)) < 2.0


def test_closed_forms_are_symmetric_psd_with_known_diagonal(rng):
    X = _scaled(rng, 60, 6)
    sq = np.sum(X**2, axis=1)
    for K in (kernels.h_inf(X), kernels.g_inf(X)):
        np.testing.assert_array_equal(K, K.T)
        np.testing.assert_allclose(np.diag(K), sq / 2.0, rtol=1e-15)
        assert np.linalg.eigvalsh(K)[0] >= -1e-12 * np.abs(K).max()
    np.testing.assert_allclose(np.diag(kernels.h_inf(_unit(rng, 30, 4))), 0.5, rtol=1e-15)
    np.testing.assert_allclose(np.diag(kernels.ntk_inf(_unit(rng, 30, 4))), 1.0, rtol=1e-15)


@pytest.mark.parametrize("k", [6, 16, 20, 26, 40])
def test_closed_forms_are_accurate_to_rounding_near_parallel(rng, k):
    # Points in a plane at angles 2^-k from parallel and from antiparallel,
    # rotated into R^30 (so the cosines carry the rounding of a real product),
    # The reference angles come from atan2 of the exact plane coordinates, a
    # different route from the implementation's; every entry must agree to a
    # few units of rounding. arccos(cos) alone misses by up to ~1e-16 / angle
    # (2e-9 at k = 26), which is what nearly parallel data's lam0 ~ angle sees.
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    delta = 2.0**-k
    P = np.array([[1.0, 0.0], [1.0, delta], [-1.0, delta], [0.3, -2.0]])  # (4, 2), exact
    # among 596 random rows, spread over the row blocks of the computation
    X = _unit(rng, 600, 30)
    idx = [0, 599, 250, 1]
    X[idx] = P @ Q[:2]
    phi = np.arctan2(P[:, 1], P[:, 0])
    t = np.abs(phi[:, None] - phi[None, :])
    t = np.minimum(t, 2.0 * np.pi - t)  # (4, 4), angles in [0, pi]
    dot = P @ P.T
    cross = np.abs(np.outer(P[:, 0], P[:, 1]) - np.outer(P[:, 1], P[:, 0]))  # |x_i||x_j| sin t
    H = dot * (np.pi - t) / (2.0 * np.pi)
    G = (cross + dot * (np.pi - t)) / (2.0 * np.pi)
    eps = np.finfo(float).eps
    sub = np.ix_(idx, idx)
    np.testing.assert_allclose(kernels.h_inf(X)[sub], H, rtol=0, atol=8 * eps)
    np.testing.assert_allclose(kernels.g_inf(X)[sub], G, rtol=0, atol=8 * eps)
    np.testing.assert_allclose(kernels.ntk_inf(X)[sub], H + G, rtol=0, atol=16 * eps)


def test_closed_forms_handle_parallel_and_antiparallel_rows(rng):
    x = _unit(rng, 1, 4)[0]
    X = np.stack([x, 2.0 * x, -x])  # cosines exactly +-1 (rounding may push them past 1)
    H, G = kernels.h_inf(X), kernels.g_inf(X)
    np.testing.assert_allclose(H[0, 1], 2.0 / 2.0, rtol=1e-12)  # t = 0: x.x' / 2
    np.testing.assert_allclose(H[0, 2], 0.0, atol=1e-12)  # t = pi: never co-active
    np.testing.assert_allclose(G[0, 1], 2.0 / 2.0, rtol=1e-12)
    np.testing.assert_allclose(G[0, 2], 0.0, atol=1e-12)


def test_ntk_matches_finite_difference_jacobian_at_large_width(rng):
    """Empirical NTK from a finite-difference Jacobian over (W, a), not from net.jacobian_W."""
    n, d, m, h = 3, 2, 1000, 1e-6
    X = _scaled(rng, n, d)
    W, a = net.init_net(d, m, rng=rng)
    J = np.empty((n, m, d + 1))  # du_i / d(w_r, a_r)
    for r in range(m):
        for j in range(d + 1):
            Wp, Wm, ap, am = W.copy(), W.copy(), a.copy(), a.copy()
            if j < d:
                Wp[r, j] += h
                Wm[r, j] -= h
            else:
                ap[r] += h
                am[r] -= h
            J[:, r, j] = (net.predict(X, Wp, ap) - net.predict(X, Wm, am)) / (2 * h)
    # per-neuron kernels m J_r J_r^T are i.i.d. over r: their mean is the empirical NTK
    per_neuron = m * np.einsum("irk,jrk->rij", J, J)  # (m, n, n)
    emp = per_neuron.mean(axis=0)
    se = per_neuron.std(axis=0, ddof=1) / np.sqrt(m)
    np.testing.assert_allclose(emp, J.reshape(n, -1) @ J.reshape(n, -1).T, rtol=1e-12)
    z = (emp - kernels.ntk_inf(X)) / se
    assert np.max(np.abs(z)) < 5.0, z  # 6 distinct entries, each ~ N(0, 1) under the claim


# --------------------------------------------------------------------------- finite width
def test_gram_h_equals_jacobian_gram(rng):
    X = _scaled(rng, 12, 5)
    W, a = net.init_net(5, 300, rng=rng)
    J = net.jacobian_W(X, W, a)  # (n, m d)
    np.testing.assert_allclose(kernels.gram_h(X, W), J @ J.T, rtol=1e-13, atol=1e-13)


def test_gram_h_is_symmetric_psd_and_chunk_independent(rng):
    X = _unit(rng, 40, 6)
    W = rng.standard_normal((777, 6))
    H = kernels.gram_h(X, W)
    np.testing.assert_array_equal(H, H.T)
    assert np.linalg.eigvalsh(H)[0] >= -1e-12 * np.abs(H).max()
    # H_ii = ||x_i||^2 (fraction of neurons active on x_i), ~1/2 for unit rows
    active = (X @ W.T >= 0).mean(axis=1)
    np.testing.assert_allclose(np.diag(H), active, rtol=1e-14)
    for chunk in (1, 100, 776, 10_000):  # integer counts: any chunking gives identical numbers
        np.testing.assert_array_equal(kernels.gram_h(X, W, chunk=chunk), H)


def test_gram_g_equals_output_layer_jacobian_gram(rng):
    X = _scaled(rng, 10, 4)
    W = rng.standard_normal((500, 4))
    Ja = np.maximum(X @ W.T, 0.0) / np.sqrt(500)  # du/da (n, m)
    np.testing.assert_allclose(kernels.gram_g(X, W, chunk=77), Ja @ Ja.T, rtol=1e-12)


def test_finite_width_kernels_converge_like_inverse_sqrt_width(rng):
    X = _unit(rng, 20, 5)
    H_inf, G_inf = kernels.h_inf(X), kernels.g_inf(X)
    m0, draws = 100, 12

    def rms_error(m):
        errs = []
        for _ in range(draws):
            W = rng.standard_normal((m, 5))
            errs.append(
                [
                    np.linalg.norm(kernels.gram_h(X, W) - H_inf),
                    np.linalg.norm(kernels.gram_g(X, W) - G_inf),
                ]
            )
        return np.sqrt(np.mean(np.square(errs), axis=0))

    ratio = rms_error(16 * m0) / rms_error(m0)
    # E||H(W) - H_inf||_F^2 = (1/m) sum_ij Var(one neuron's term), so the RMS error
    # over draws falls by sqrt(16) = 4 exactly; 12 draws leave ~10% noise in each RMS
    # (ratios measured over 8 seeds: 0.21-0.28); the band is 1/4 -30%/+40%
    assert np.all((ratio > 0.17) & (ratio < 0.35)), ratio


# ------------------------------------------------------------------------- spectra and predictions
def test_predicted_residuals_equal_linear_recursion(rng):
    X = _unit(rng, 15, 4)
    H = kernels.h_inf(X)
    y, u0 = rng.standard_normal(15), 0.1 * rng.standard_normal(15)
    eta, steps = 1.5 / np.linalg.eigvalsh(H)[-1], 60
    r, norms = y - u0, []
    for _ in range(steps + 1):
        norms.append(np.linalg.norm(r))
        r = r - eta * (H @ r)  # r(k+1) = (I - eta H) r(k)
    pred = kernels.predicted_residuals(H, y, eta=eta, steps=steps, u0=u0)
    np.testing.assert_allclose(pred, norms, rtol=1e-11)
    np.testing.assert_allclose(
        kernels.predicted_residuals(H, y, eta=eta, steps=0), [np.linalg.norm(y)]
    )


def test_complexity_measure_and_rkhs_norm_against_solve(rng):
    X = _unit(rng, 25, 6)
    H, y = kernels.h_inf(X), rng.standard_normal(25)
    q = y @ np.linalg.solve(H, y)
    np.testing.assert_allclose(kernels.rkhs_norm_sq(H, y), q, rtol=1e-10)
    np.testing.assert_allclose(kernels.complexity_measure(H, y), np.sqrt(2 * q / 25), rtol=1e-10)


def test_spectrum_and_lambda_min(rng):
    H = kernels.h_inf(_unit(rng, 30, 5))
    lam, V = kernels.spectrum(H)
    assert np.all(np.diff(lam) >= 0)
    np.testing.assert_allclose(V @ np.diag(lam) @ V.T, H, atol=1e-13)
    np.testing.assert_allclose(kernels.lambda_min(H), lam[0], rtol=1e-12)
    assert lam[0] > 0


def test_float32_kernels_stay_float32_and_agree_with_float64(rng):
    X = _scaled(rng, 30, 5)
    W = rng.standard_normal((400, 5))
    X32, W32 = X.astype(np.float32), W.astype(np.float32)
    for f in (kernels.h_inf, kernels.g_inf, kernels.ntk_inf):
        K32 = f(X32)
        assert K32.dtype == np.float32
        np.testing.assert_allclose(K32, f(X), rtol=1e-4, atol=1e-4 * np.abs(K32).max())
    for f in (kernels.gram_h, kernels.gram_g):
        K32 = f(X32, W32)
        assert K32.dtype == np.float32
        # a pattern may differ where |w.x| ~ 1e-7; each flip moves one count by 1/m
        np.testing.assert_allclose(K32, f(X, W), atol=1e-4 * np.abs(K32).max() + 2.0 / 400)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda X, W: kernels.h_inf(X[0]), "X: expected a 2-D array"),
        (lambda X, W: kernels.h_inf(np.vstack([X, np.zeros(3)])), "X: expected non-zero rows"),
        (lambda X, W: kernels.g_inf(np.where(X > 0.5, np.nan, X)), "X: expected finite values"),
        (lambda X, W: kernels.gram_h(X, W[:, :2]), r"W: expected shape \(\*, 3\)"),
        (lambda X, W: kernels.gram_h(X, np.where(W > 1, np.inf, W)), "W: expected finite"),
        (lambda X, W: kernels.gram_g(X, W, chunk=0), "chunk: expected > 0"),
        (
            lambda X, W: kernels.h_inf_monte_carlo(X, n_draws=0, rng=np.random.default_rng(0)),
            "n_draws",
        ),
        (lambda X, W: kernels.h_inf_monte_carlo(X, n_draws=10, rng=0), "rng: expected a numpy"),
        (lambda X, W: kernels.lambda_min(np.ones((2, 3))), "H: expected a square matrix"),
        (lambda X, W: kernels.spectrum(np.ones((2, 3))), "H: expected a square matrix"),
        (
            lambda X, W: kernels.rkhs_norm_sq(-np.eye(3), np.ones(3)),
            "H: expected a positive-definite",
        ),
        (lambda X, W: kernels.rkhs_norm_sq(np.eye(3), np.ones(4)), r"H: expected shape \(4, 4\)"),
        (lambda X, W: kernels.predicted_residuals(np.eye(3), np.ones(3), eta=0.0, steps=3), "eta"),
        (lambda X, W: kernels.predicted_residuals(np.eye(3), np.ones(3), eta=1, steps=-1), "steps"),
        (lambda X, W: kernels.h_inf(X.astype(complex)), "X: expected a real numeric array"),
    ],
)
def test_bad_input_raises_naming_the_argument(rng, call, match):
    X, W = _unit(rng, 4, 3), rng.standard_normal((5, 3))
    with pytest.raises(ValueError, match=match):
        call(X, W)


def test_duplicate_rows_make_h_inf_singular(rng):
    X = data.duplicate_inputs(20, 5, n_copies=1, rng=rng)
    assert kernels.lambda_min(kernels.h_inf(X)) < 1e-13


# ----------------------------------------------------------------- scale, overflow, symmetry
@pytest.mark.parametrize("k", [-500, -300, 300, 500])
def test_closed_forms_are_homogeneous_of_degree_two_at_any_scale(rng, k):
    """``K(c X) = c^2 K(X)``: angles do not depend on the scale and the norms are computed
    exactly (a power-of-two scaling of each row), so ``c = 2^k`` gives the same numbers times
    ``4^k`` to the last bit, also where ``||x||^2`` over- or underflows float64 (|k| > 511 / 2)."""
    X = _scaled(rng, 12, 4)
    for f in (kernels.h_inf, kernels.g_inf, kernels.ntk_inf):
        np.testing.assert_array_equal(f(2.0**k * X), 4.0**k * f(X))
    np.testing.assert_allclose(
        kernels.h_inf(1e150 * X), 1e300 * kernels.h_inf(X), rtol=1e-14, atol=0
    )  # 1e150 X is rounded entry by entry: a few eps


@pytest.mark.parametrize(
    ("scale", "dtype", "which"),
    [
        (1e200, np.float64, "largest"),
        (1e-200, np.float64, "smallest"),
        (1e25, np.float32, "largest"),
    ],
)
def test_closed_forms_name_x_when_the_diagonal_leaves_the_float_range(rng, scale, dtype, which):
    # they returned inf/nan with a warning (1e200), or called the rows zero (1e-200)
    X = (scale * _unit(rng, 5, 3)).astype(dtype)
    for f in (kernels.h_inf, kernels.g_inf, kernels.ntk_inf):
        with pytest.raises(ValueError, match=f"X: the {which} row norm .* K\\(c X\\) = c\\^2 K"):
            f(X)


def test_gram_tools_keep_the_pattern_of_huge_weights_and_name_overflow(rng):
    X, W = _unit(rng, 6, 3), rng.standard_normal((40, 3))
    # the pattern depends on directions only, and 2^600 scales exactly
    np.testing.assert_array_equal(kernels.gram_h(X, 2.0**600 * W), kernels.gram_h(X, W))
    with pytest.raises(ValueError, match=r"X, W: the largest row norms .* overflow float64"):
        kernels.gram_h(1e10 * X, 1e300 * W)  # each fits, x . w ~ 1e310 does not
    with pytest.raises(ValueError, match=r"X, W: .*and their squared sums"):
        kernels.gram_g(X, 1e200 * W)  # relu(w . x)^2 ~ 1e400
    with pytest.raises(ValueError, match=r"X: the largest row norm 1e\+160 makes x_i \. x_j"):
        kernels.gram_h(1e160 * X, W)


@pytest.mark.parametrize(
    "call",
    [
        lambda X, W: kernels.gram_h(X, W[:0]),
        lambda X, W: kernels.gram_g(X, W[:0]),
        lambda X, W: kernels.gram_h(X[:0], W),
        lambda X, W: kernels.h_inf(X[:0]),
        lambda X, W: kernels.ntk_inf(X[:, :0]),
        lambda X, W: kernels.h_inf_monte_carlo(X[:0], n_draws=3, rng=np.random.default_rng(0)),
    ],
)
def test_empty_inputs_are_named(rng, call):
    # m = 0 gave "range() arg 3 must not be zero", n = 0 a ZeroDivisionError
    X, W = _unit(rng, 4, 3), rng.standard_normal((5, 3))
    with pytest.raises(ValueError, match=r"^[XW]: expected a non-empty array"):
        call(X, W)


def _asymmetric(rng):
    H = kernels.h_inf(_unit(rng, 5, 3))
    H[0, 3] += 0.3  # the upper triangle only: eigh would read the lower one and never notice
    return H


@pytest.mark.parametrize(
    "call",
    [
        kernels.lambda_min,
        kernels.spectrum,
        lambda H: kernels.rkhs_norm_sq(H, np.ones(5)),
        lambda H: kernels.complexity_measure(H, np.ones(5)),
        lambda H: kernels.predicted_residuals(H, np.ones(5), eta=1.0, steps=3),
    ],
)
def test_matrix_functions_require_symmetry(rng, call):
    with pytest.raises(
        ValueError, match=r"H: expected a symmetric matrix .* at \(i, j\) = \(0, 3\)"
    ):
        call(_asymmetric(rng))
    with pytest.raises(ValueError, match="H: expected"):  # n = 0
        call(np.empty((0, 0)))


def test_rounding_level_asymmetry_is_accepted_as_the_symmetric_part(rng):
    """``Q diag(lam) Q^T`` assembled in floating point is symmetric to ~1e-16 only."""
    lam = np.array([0.5, 1.0, 2.0, 3.0])
    A, _, _ = data.rotated_quadratic(lam, rng=rng)
    assert not np.array_equal(A, A.T)
    np.testing.assert_allclose(kernels.spectrum(A)[0], lam, rtol=1e-14)
    np.testing.assert_array_equal(kernels.lambda_min(A), np.linalg.eigvalsh((A + A.T) / 2)[0])


def test_predicted_residuals_growth_is_named_and_unexcited_modes_stay_silent():
    H = np.diag([1.0, 100.0])
    # mode 2 would grow like |1 - 50|^k = 49^k, but y has no component on it: r = 0.5^k, no nan
    r = kernels.predicted_residuals(H, np.array([1.0, 0.0]), eta=0.5, steps=2000)
    np.testing.assert_allclose(r[:500], 0.5 ** np.arange(500), rtol=1e-14)
    assert np.all(r[500:] <= 0.5**499)  # sqrt(0.25^k) underflows to 0 near k = 537
    with pytest.raises(ValueError, match=r"eta: the predicted residual overflows float64 at step"):
        kernels.predicted_residuals(H, np.array([1.0, 1.0]), eta=0.5, steps=2000)


def test_rkhs_norm_overflow_is_named():
    with pytest.raises(ValueError, match=r"H: y\^T H\^-1 y overflows float64"):
        kernels.rkhs_norm_sq(1e-308 * np.eye(3), 1e5 * np.ones(3))
