"""Tests for shared.features: alignment, cross-kernels against shared.kernels, the interpolant."""

import numpy as np
import pytest

from shared import data, features, kernels, net


def test_alignment_known_values_and_scale_invariance(rng):
    y = rng.choice([-1.0, 1.0], size=9)
    np.testing.assert_allclose(features.kernel_alignment(np.outer(y, y), y), 1.0, rtol=1e-14)
    np.testing.assert_allclose(features.kernel_alignment(-np.outer(y, y), y), -1.0, rtol=1e-14)
    # K = I: y^T y / (sqrt(n) ||y||^2) = 1 / sqrt(n)
    np.testing.assert_allclose(features.kernel_alignment(np.eye(9), y), 1 / 3, rtol=1e-14)
    K = kernels.h_inf(data.unit_sphere(9, 4, rng=rng))
    a = features.kernel_alignment(K, y)
    assert -1 <= a <= 1
    np.testing.assert_allclose(features.kernel_alignment(7.5 * K, 0.2 * y), a, rtol=1e-13)


def test_cross_kernels_match_the_square_ones(rng):
    X = data.unit_sphere(7, 5, rng=rng) * rng.uniform(0.5, 2.0, size=(7, 1))
    W = rng.standard_normal((300, 5))
    np.testing.assert_allclose(features.h_inf_cross(X, X), kernels.h_inf(X), atol=1e-14)
    np.testing.assert_allclose(features.gram_h_cross(X, X, W), kernels.gram_h(X, W), atol=1e-14)
    # an off-diagonal block of the stacked kernel is the cross-kernel
    Xb = data.unit_sphere(4, 5, rng=rng)
    stacked = kernels.h_inf(np.vstack([X, Xb]))
    np.testing.assert_allclose(features.h_inf_cross(Xb, X), stacked[7:, :7], atol=1e-14)
    stacked = kernels.gram_h(np.vstack([X, Xb]), W)
    np.testing.assert_allclose(features.gram_h_cross(Xb, X, W), stacked[7:, :7], atol=1e-14)


def test_kernel_predict_interpolates_and_is_what_lazy_gd_converges_to(rng):
    X = data.unit_sphere(8, 6, rng=rng)
    y = data.gaussian_labels(8, rng=rng)
    Xt = data.unit_sphere(5, 6, rng=rng)
    H = kernels.h_inf(X)
    np.testing.assert_allclose(features.kernel_predict(H, H, y), y, atol=1e-10)
    # a wide net from u(0) = 0 trained to convergence sits near the H_inf interpolant
    W0, a0 = net.init_net(6, 4000, rng=rng, antisymmetric=True)
    res = net.train(X, y, W0, a0, eta=1.0 / np.linalg.eigvalsh(H)[-1], steps=500)
    assert res.loss[-1] < 1e-20 * res.loss[0]
    u_net = net.predict(Xt, res.W, res.a)
    u_ker = features.kernel_predict(H, features.h_inf_cross(Xt, X), y)
    # finite width m = 4000 (2000 distinct neurons): 0.02-0.07 of ||u|| on six seeds tried,
    # where an untrained or a non-kernel predictor is off by O(1)
    assert np.linalg.norm(u_net - u_ker) < 0.15 * np.linalg.norm(u_ker)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: features.kernel_alignment(np.zeros((3, 3)), np.ones(3)), "K, y: expected a non"),
        (lambda: features.kernel_alignment(np.eye(3), np.ones(4)), r"K: expected shape \(4, 4\)"),
        (lambda: features.h_inf_cross(np.ones((2, 3)), np.ones((2, 4))), r"Xb: expected shape"),
        (lambda: features.h_inf_cross(np.zeros((2, 3)), np.ones((2, 3))), "Xa: expected non-zero"),
        (
            lambda: features.gram_h_cross(np.ones((2, 3)), np.ones((2, 3)), np.ones((5, 2))),
            r"W: expected shape \(\*, 3\)",
        ),
        (
            lambda: features.kernel_predict(-np.eye(2), np.ones((3, 2)), np.ones(2)),
            "K: expected a positive-definite",
        ),
        (
            lambda: features.kernel_predict(np.eye(2), np.ones((3, 4)), np.ones(2)),
            r"K_cross: expected shape \(\*, 2\)",
        ),
    ],
)
def test_bad_input_raises_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
