"""Tests for shared.data: geometry of the generated inputs, labels, reproducibility, bad input."""

import numpy as np
import pytest

from shared import data, kernels


def _gens(seed):
    rng = np.random.default_rng(seed)
    X = data.unit_sphere(30, 6, rng=rng)
    return [
        X,
        data.pairs_at_angle(30, 6, angle=0.2, rng=rng),
        data.duplicate_inputs(30, 6, n_copies=3, rng=rng),
        data.antipodal_inputs(30, 6, n_pairs=3, rng=rng),
        data.gaussian_labels(30, rng=rng),
        data.teacher_labels(X, m_teacher=20, rng=rng),
        *data.two_clusters(30, 6, margin=0.2, rng=rng),
        data.corrupt_labels(np.ones(30), fraction=0.3, rng=rng)[0],
    ]


def test_same_seed_same_numbers_different_seed_different_numbers():
    first, again, other = _gens(5), _gens(5), _gens(6)
    for A, B, C in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(A, B)
        assert not np.array_equal(A, C)


def test_unit_sphere_rows_have_unit_norm_and_dtype(rng):
    for dtype in (np.float64, np.float32):
        X = data.unit_sphere(200, 7, rng=rng, dtype=dtype)
        assert X.shape == (200, 7) and X.dtype == dtype
        np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=4 * np.finfo(dtype).eps)
    # uniform on the sphere: the mean direction is ~0 (each coordinate has sd 1/sqrt(d n))
    assert np.abs(data.unit_sphere(5000, 7, rng=rng).mean(axis=0)).max() < 5 / np.sqrt(7 * 5000)


@pytest.mark.parametrize("angle", [1e-6, 1e-3, 0.3])
def test_pairs_at_angle_gives_the_exact_angle(rng, angle):
    X = data.pairs_at_angle(21, 30, angle=angle, rng=rng)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-15)
    u, w = X[0:-1:2], X[1::2]  # partners (the 21st row has none)
    got = 2 * np.arctan2(np.linalg.norm(u - w, axis=1), np.linalg.norm(u + w, axis=1))
    np.testing.assert_allclose(got, angle, rtol=1e-9)
    # random points in d = 30 are far apart, so the partners are the closest pairs
    np.testing.assert_allclose(data.min_pairwise_angle(X), angle, rtol=1e-9)


def test_min_pairwise_angle_counts_antipodal_as_parallel(rng):
    x = data.unit_sphere(1, 3, rng=rng)[0]
    e = np.cross(x, [0.0, 0.0, 1.0])
    e /= np.linalg.norm(e)
    t = 0.01
    X = np.stack([x, -(np.cos(t) * x + np.sin(t) * e), e])  # x and the second row: angle pi - t
    np.testing.assert_allclose(data.min_pairwise_angle(X), t, rtol=1e-10)


def test_degenerate_inputs_make_lambda0_vanish(rng):
    lam_generic = kernels.lambda_min(kernels.h_inf(data.unit_sphere(20, 4, rng=rng)))
    lam_dup = kernels.lambda_min(kernels.h_inf(data.duplicate_inputs(20, 4, n_copies=2, rng=rng)))
    # d + 1 antipodal pairs: the d + 1 difference vectors X x_i / 2 are dependent in R^d
    lam_anti = kernels.lambda_min(kernels.h_inf(data.antipodal_inputs(20, 4, n_pairs=5, rng=rng)))
    lam_one_pair = kernels.lambda_min(
        kernels.h_inf(data.antipodal_inputs(20, 4, n_pairs=1, rng=rng))
    )
    assert lam_generic > 1e-3
    assert abs(lam_dup) < 1e-13 and abs(lam_anti) < 1e-13  # zero up to rounding (~1e-16 n)
    assert lam_one_pair > 1e-4  # a single pair keeps H_inf positive definite


def test_two_clusters_margin_and_labels(rng):
    X, y = data.two_clusters(500, 5, margin=0.3, rng=rng)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-14)
    assert set(np.unique(y)) == {-1.0, 1.0}
    assert np.all(y * X[:, 0] >= 0.3)
    assert 200 < np.sum(y > 0) < 300  # fair coin, 500 draws: sd 11


@pytest.mark.parametrize(("n", "fraction"), [(50, 0.0), (50, 0.3), (51, 0.5), (40, 1.0), (7, 0.5)])
def test_corrupt_labels_flips_exactly_round_fraction_n(rng, n, fraction):
    y = rng.choice([-1.0, 1.0], size=n)
    y_c, flipped = data.corrupt_labels(y, fraction=fraction, rng=rng)
    assert np.count_nonzero(flipped) == round(fraction * n)
    np.testing.assert_array_equal(y_c[flipped], -y[flipped])
    np.testing.assert_array_equal(y_c[~flipped], y[~flipped])


def test_corrupt_labels_does_not_modify_input(rng):
    y = np.ones(10)
    data.corrupt_labels(y, fraction=0.5, rng=rng)
    np.testing.assert_array_equal(y, np.ones(10))


def test_teacher_labels_are_standardised(rng):
    X = data.unit_sphere(300, 5, rng=rng)
    y = data.teacher_labels(X, m_teacher=50, rng=rng)
    np.testing.assert_allclose([y.mean(), y.std()], [0.0, 1.0], atol=1e-12)
    assert data.teacher_labels(X.astype(np.float32), m_teacher=50, rng=rng).dtype == np.float32


def test_gaussian_labels(rng):
    y = data.gaussian_labels(20_000, rng=rng)
    assert abs(y.mean()) < 5 / np.sqrt(20_000) and abs(y.std() - 1) < 0.03


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda g: data.unit_sphere(0, 3, rng=g), "n: expected > 0"),
        (lambda g: data.unit_sphere(5, 2.0, rng=g), "d: expected an integer"),
        (lambda g: data.unit_sphere(5, 3, rng=42), "rng: expected a numpy.random.Generator"),
        (lambda g: data.pairs_at_angle(4, 1, angle=0.1, rng=g), "d: expected >= 2"),
        (lambda g: data.pairs_at_angle(4, 3, angle=0.0, rng=g), "angle: expected > 0"),
        (lambda g: data.pairs_at_angle(4, 3, angle=4.0, rng=g), r"angle: expected a number in \[0"),
        (lambda g: data.min_pairwise_angle(np.ones((1, 3))), "X: expected at least 2 rows"),
        (
            lambda g: data.min_pairwise_angle(np.array([[1.0, 0], [0, 0]])),
            "X: expected non-zero rows",
        ),
        (lambda g: data.duplicate_inputs(5, 3, n_copies=5, rng=g), "n_copies: expected fewer than"),
        (lambda g: data.antipodal_inputs(5, 3, n_pairs=3, rng=g), "n_pairs: expected at most"),
        (lambda g: data.teacher_labels(np.ones((3, 2)), m_teacher=0, rng=g), "m_teacher"),
        (lambda g: data.two_clusters(5, 3, margin=1.0, rng=g), "margin"),
        (
            lambda g: data.corrupt_labels(np.array([1.0, 0.5]), fraction=0.5, rng=g),
            r"y: expected labels",
        ),
        (lambda g: data.corrupt_labels(np.ones(3), fraction=1.5, rng=g), "fraction"),
        (lambda g: data.corrupt_labels(np.ones((3, 1)), fraction=0.5, rng=g), "y: expected a 1-D"),
        (lambda g: data.gaussian_labels(3, rng=np.random.RandomState(0)), "rng: expected a numpy"),
    ],
)
def test_bad_input_raises_naming_the_argument(rng, call, match):
    with pytest.raises(ValueError, match=match):
        call(rng)


def test_rotated_quadratic_has_the_spectrum_and_an_even_start(rng):
    lam = np.array([0.01, 0.3, 0.7, 1.0])
    A, Q, x0 = data.rotated_quadratic(lam, rng=rng)
    np.testing.assert_allclose(np.linalg.eigvalsh(A), lam, atol=1e-14)  # rounding of Q diag Q^T
    np.testing.assert_allclose(Q.T @ Q, np.eye(4), atol=1e-14)
    np.testing.assert_allclose(np.abs(Q.T @ x0), 0.5, rtol=1e-12)  # weight 1/sqrt(d) on each mode
    with pytest.raises(ValueError, match="lam"):
        data.rotated_quadratic(np.ones((2, 2)), rng=rng)


GENERATORS = {
    "unit_sphere": lambda g, dt: data.unit_sphere(3, 3, rng=g, dtype=dt),
    "pairs_at_angle": lambda g, dt: data.pairs_at_angle(4, 3, angle=0.1, rng=g, dtype=dt),
    "duplicate_inputs": lambda g, dt: data.duplicate_inputs(4, 3, n_copies=1, rng=g, dtype=dt),
    "antipodal_inputs": lambda g, dt: data.antipodal_inputs(4, 3, n_pairs=1, rng=g, dtype=dt),
    "gaussian_labels": lambda g, dt: data.gaussian_labels(4, rng=g, dtype=dt),
}


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("dtype", [int, np.int32, bool, complex, np.float16, object, "garbage"])
def test_generators_refuse_dtypes_other_than_float32_and_float64(rng, name, dtype):
    # an integer dtype truncated the unit vectors to zeros, complex and float16 passed silently
    with pytest.raises(ValueError, match=r"dtype: expected np\.float32 or np\.float64"):
        GENERATORS[name](rng, dtype)


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("dtype", [np.float32, "float32", np.float64, float, "f8"])
def test_generators_accept_the_float_dtypes_by_any_name(name, dtype):
    out = GENERATORS[name](np.random.default_rng(0), dtype)
    assert out.dtype == np.dtype(dtype) and np.all(np.isfinite(out))


@pytest.mark.parametrize("c", [2.0**600, 2.0**-600, 1e200, 1e-200])
def test_min_pairwise_angle_and_teacher_labels_do_not_depend_on_the_scale(rng, c):
    """Both are invariant under ``X -> c X``; the norms used to overflow or underflow
    (``min_pairwise_angle`` warned, ``teacher_labels`` returned NaN for ``1e200 X``).
    A power of two scales exactly, so the numbers are then equal to the last bit."""
    X = data.unit_sphere(20, 5, rng=rng)
    exact = np.log2(c).is_integer()
    for f in (
        data.min_pairwise_angle,
        lambda A: data.teacher_labels(A, m_teacher=30, rng=np.random.default_rng(1)),
    ):
        want, got = f(X), f(c * X)
        if exact:
            np.testing.assert_array_equal(got, want)
        else:  # c X rounds each entry (relative 1e-16), which moves the result by ~1e-15
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda g: data.min_pairwise_angle(np.eye(3, dtype=bool)), "X: expected a real numeric"),
        (lambda g: data.min_pairwise_angle(np.empty((3, 0))), "X: expected non-zero rows"),
        (
            lambda g: data.teacher_labels(np.empty((0, 3)), m_teacher=4, rng=g),
            "X: expected a non-empty array",
        ),
        (lambda g: data.corrupt_labels(np.ones(3, dtype=bool), fraction=0.5, rng=g), "y: expected"),
        (lambda g: data.rotated_quadratic(np.empty(0), rng=g), "lam: expected a non-empty array"),
        (lambda g: data.rotated_quadratic(np.array([1.0, np.inf]), rng=g), "lam: expected finite"),
        (lambda g: data.pairs_at_angle(4, 3, angle=float("nan"), rng=g), "angle: expected"),
        (lambda g: data.unit_sphere(True, 3, rng=g), "n: expected an integer"),
    ],
)
def test_more_bad_input_raises_naming_the_argument(rng, call, match):
    with pytest.raises(ValueError, match=match):
        call(rng)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_sparse_parity_is_a_product_of_k_signs_on_the_sphere(rng, k):
    X, y = data.sparse_parity(500, 12, k=k, rng=rng)
    assert X.shape == (500, 12) and y.shape == (500,)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(np.abs(X) * np.sqrt(12), 1.0)
    np.testing.assert_array_equal(y, np.prod(np.sign(X[:, :k]), axis=1))
    assert abs(y.mean()) < 5 / np.sqrt(500)  # balanced labels
    with pytest.raises(ValueError, match="k: expected at most d=12"):
        data.sparse_parity(5, 12, k=13, rng=rng)


def test_digits_split_unit_rows_and_labels(rng):
    X, y, Xt, yt = data.digits((3, 8), n=50, rng=rng)
    assert X.shape == (50, 64) and y.shape == (50,)
    assert Xt.shape[0] == yt.shape[0] == 183 + 174 - 50  # every 3 and 8 of the set is used
    np.testing.assert_allclose(np.linalg.norm(np.vstack([X, Xt]), axis=1), 1.0, rtol=1e-14)
    assert np.all(X >= 0)  # raw pixels, not centred
    assert set(np.unique(np.concatenate([y, yt]))) == {-1.0, 1.0}
    again = data.digits((3, 8), n=50, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(
        again[0], data.digits((3, 8), n=50, rng=np.random.default_rng(7))[0]
    )
    with pytest.raises(ValueError, match="n: expected fewer than the 357 images"):
        data.digits((3, 8), n=357, rng=rng)
    with pytest.raises(ValueError, match="pair: expected two different digits"):
        data.digits((3, 3), n=5, rng=rng)
