"""Inputs and labels for the two-layer ReLU experiments.

All randomness comes from an explicit ``rng: np.random.Generator``; nothing
touches global state. Inputs are ``X (n, d)`` with unit rows unless stated,
labels are ``y (n,)``.
"""

from __future__ import annotations

import numpy as np

from shared import _validate as v


def unit_sphere(n: int, d: int, *, rng: np.random.Generator, dtype=np.float64) -> np.ndarray:
    """``n`` points uniform on the unit sphere ``S^{d-1}``.

    Returns
    -------
    X : (n, d) ndarray of ``dtype`` (float32 or float64)
        Gaussian draws normalised per row (never by the Frobenius norm of ``X``).
    """
    v.positive("n", n, integer=True)
    v.positive("d", d, integer=True)
    dtype = v.float_dtype("dtype", dtype)
    v.rng("rng", rng)
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(dtype, copy=False)


def pairs_at_angle(
    n: int, d: int, *, angle: float, rng: np.random.Generator, dtype=np.float64
) -> np.ndarray:
    """Unit inputs in which every point has a partner at exactly ``angle`` radians.

    ``n // 2`` points are uniform on the sphere; each gets a partner rotated by
    ``angle`` inside a random plane through it. For small ``angle`` the minimum
    pairwise angle equals ``angle`` (random points in moderate ``d`` are far
    apart), which drives ``lambda0`` towards 0 as ``angle -> 0``
    (Du et al. 2019, Thm 3.1: ``lambda0 > 0`` if no two inputs are parallel).
    For odd ``n`` the last point has no partner.

    Returns
    -------
    X : (n, d) ndarray, unit rows; partners are rows ``2k`` and ``2k + 1``.
    """
    v.positive("n", n, integer=True)
    v.positive("d", d, integer=True)
    if d < 2:
        raise ValueError(f"d: expected >= 2 to rotate within a plane, got {d!r}")
    v.in_range("angle", angle, 0.0, np.pi)
    if angle == 0.0:
        raise ValueError("angle: expected > 0 (use duplicate_inputs for parallel points), got 0.0")
    dtype = v.float_dtype("dtype", dtype)
    v.rng("rng", rng)
    half = n - n // 2
    base = unit_sphere(half, d, rng=rng)
    # a random direction orthogonal to each base point: (half, d)
    z = rng.standard_normal((half, d))
    z -= np.sum(z * base, axis=1, keepdims=True) * base
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    partner = np.cos(angle) * base + np.sin(angle) * z
    X = np.empty((n, d))
    X[0::2] = base
    X[1::2] = partner[: n // 2]
    return X.astype(dtype, copy=False)


def min_pairwise_angle(X: np.ndarray) -> float:
    """Smallest angle (radians) between two rows of ``X``, counting ``x`` and ``-x`` as parallel.

    Du et al.'s non-parallel condition is about lines through the origin, so the
    angle of a pair is ``min(t, pi - t)``. The closest pair is found from the
    cosines; its angle is then evaluated as ``2 arctan(|u - v| / |u + v|)`` for
    the unit vectors ``u``, ``v`` (sign-aligned), which stays accurate for tiny
    angles where ``arccos`` of a cosine near 1 loses half the digits.
    """
    X = v.array("X", X, ndim=2)
    if X.shape[0] < 2:
        raise ValueError(f"X: expected at least 2 rows to form a pair, got shape {X.shape}")
    _, Xn = v.unit_rows("X", X)  # (n, d), exact at any scale
    c = np.abs(Xn @ Xn.T)  # (n, n)
    np.fill_diagonal(c, -1.0)
    i, j = np.unravel_index(np.argmax(c), c.shape)
    u, w = Xn[i], Xn[j] * np.sign(Xn[i] @ Xn[j] or 1.0)
    return float(2.0 * np.arctan2(np.linalg.norm(u - w), np.linalg.norm(u + w)))


def duplicate_inputs(
    n: int, d: int, *, n_copies: int, rng: np.random.Generator, dtype=np.float64
) -> np.ndarray:
    """Unit inputs whose last ``n_copies`` rows repeat earlier rows exactly (``H_inf`` singular).

    Row ``n - n_copies + i`` is a copy of row ``i mod (n - n_copies)``, so the first
    ``n - n_copies`` rows are distinct and every later row repeats one of them.
    Two equal rows make two equal rows of ``H_inf``, so ``lambda_min(H_inf) = 0``
    up to rounding (Du et al. 2019, Thm 3.1 needs no two parallel inputs).
    """
    v.positive("n", n, integer=True)
    v.positive("n_copies", n_copies, integer=True)
    v.float_dtype("dtype", dtype)
    if n_copies >= n:
        raise ValueError(f"n_copies: expected fewer than n={n}, got {n_copies}")
    X = unit_sphere(n, d, rng=rng, dtype=dtype)
    # from the distinct rows only: X[n - k:] = X[:k] would overlap when k > n / 2
    X[n - n_copies :] = X[np.arange(n_copies) % (n - n_copies)]
    return X


def antipodal_inputs(
    n: int, d: int, *, n_pairs: int, rng: np.random.Generator, dtype=np.float64
) -> np.ndarray:
    """Unit inputs whose last ``n_pairs`` rows are the negatives of earlier rows.

    A single pair ``{x, -x}`` keeps ``H_inf`` positive definite (the pair is
    "parallel" for Du et al.'s condition but ``H_inf`` stays invertible); with
    ``n_pairs >= d + 1`` pairs the vectors ``(x_i, -x_i)`` are linearly dependent
    and ``lambda_min(H_inf) = 0`` up to rounding: for a pair, row ``x_i`` minus
    row ``-x_i`` of ``H_inf`` is ``X x_i / 2`` (since ``arccos(-c) = pi - arccos(c)``),
    so ``d + 1`` such differences are linearly dependent.
    """
    v.positive("n", n, integer=True)
    v.positive("n_pairs", n_pairs, integer=True)
    v.float_dtype("dtype", dtype)
    if 2 * n_pairs > n:
        raise ValueError(f"n_pairs: expected at most n/2={n // 2}, got {n_pairs}")
    X = unit_sphere(n, d, rng=rng, dtype=dtype)
    X[n - n_pairs :] = -X[:n_pairs]
    return X


def gaussian_labels(n: int, *, rng: np.random.Generator, dtype=np.float64) -> np.ndarray:
    """``y ~ N(0, I_n)``, the labels of Du et al. (2019), Figure 1; ``(n,)`` of ``dtype``."""
    v.positive("n", n, integer=True)
    dtype = v.float_dtype("dtype", dtype)
    return v.rng("rng", rng).standard_normal(n).astype(dtype, copy=False)


def teacher_labels(X: np.ndarray, *, m_teacher: int, rng: np.random.Generator) -> np.ndarray:
    """Labels from a random two-layer ReLU teacher, standardised to mean 0, variance 1.

    ``y_i = sum_r b_r relu(v_r . x_i)`` with ``v_r ~ N(0, I)``, ``b_r ~ N(0, 1)``.
    Such labels are "structured": they lie mostly on the top eigenvectors of
    ``H_inf`` (Arora et al. 2019, Sec. 4).

    The standardised labels do not change when ``X`` is multiplied by a constant
    (the teacher is positively homogeneous), so ``X`` is first scaled by the power
    of two that brings its largest entry into ``[0.5, 1)``: exact, identical
    numbers in the usual range, and no overflow for inputs of any finite size.
    """
    X = v.array("X", X, ndim=2, nonempty=True)
    v.positive("m_teacher", m_teacher, integer=True)
    v.rng("rng", rng)
    V = rng.standard_normal((m_teacher, X.shape[1]))
    b = rng.standard_normal(m_teacher)
    _, e = np.frexp(np.abs(X).max())
    y = np.maximum(np.ldexp(X, -e) @ V.T, 0.0) @ b  # (n,), up to the factor 2^-e
    y -= y.mean()
    sd = y.std()
    if sd == 0:
        raise ValueError("X: teacher labels are constant on these inputs; use more points")
    return (y / sd).astype(X.dtype, copy=False)


def two_clusters(
    n: int, d: int, *, margin: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two classes on the unit sphere separated by a margin along ``e_1``.

    The label ``y_i`` is a fair coin in ``{-1, +1}``; ``|x_1|`` is uniform on
    ``[margin, 1)`` with sign ``y_i``, and the other coordinates are a uniform
    direction of length ``sqrt(1 - x_1^2)``. So every row has unit norm and
    ``y_i x_i . e_1 >= margin``: the classes are separated by the hyperplane
    ``x_1 = 0`` with margin ``margin``. (For ``d = 3`` this is exactly the
    uniform law on the sphere conditioned on ``|x_1| >= margin``.)
    Returns ``X (n, d)`` and ``y (n,)`` in ``{-1, +1}``.
    """
    v.positive("n", n, integer=True)
    v.positive("d", d, integer=True)
    if d < 2:
        raise ValueError(f"d: expected >= 2, got {d!r}")
    v.in_range("margin", margin, 0.0, 0.999)
    v.rng("rng", rng)
    y = rng.choice([-1.0, 1.0], size=n)
    # first coordinate uniform in [margin, 1) in absolute value, rest on the sphere
    x1 = rng.uniform(margin, 1.0, size=n)
    rest = rng.standard_normal((n, d - 1))
    rest *= (np.sqrt(1.0 - x1**2) / np.linalg.norm(rest, axis=1))[:, None]
    X = np.column_stack([y * x1, rest])
    return X, y


def corrupt_labels(
    y: np.ndarray, *, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Flip the sign of exactly ``round(fraction * n)`` labels chosen at random.

    Parameters
    ----------
    y : (n,) ndarray with entries in ``{-1, +1}``.
    fraction : float in [0, 1].

    Returns
    -------
    y_corrupt : (n,) ndarray, a new array (``y`` is not modified).
    flipped : (n,) bool ndarray, which labels were flipped.
    """
    y = v.array("y", y, ndim=1)
    if not np.all(np.abs(y) == 1):
        raise ValueError("y: expected labels in {-1, +1}")
    v.in_range("fraction", fraction, 0.0, 1.0)
    v.rng("rng", rng)
    n = y.shape[0]
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=round(fraction * n), replace=False)] = True
    return np.where(flipped, -y, y), flipped


def rotated_quadratic(
    lam: np.ndarray, *, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A quadratic ``f(x) = 1/2 x^T A x`` with spectrum ``lam``, randomly rotated, and a start.

    ``A = Q diag(lam) Q^T`` with ``Q`` a random orthogonal matrix (QR of a Gaussian);
    ``x0 = Q s / sqrt(d)`` with random signs ``s``, so every eigen-direction carries the
    same weight and the slowest mode is excited (a rate is a worst case over ``x0``).
    In the kernel regime the two-layer net is this problem with ``A = H``.

    Parameters
    ----------
    lam : (d,) ndarray of eigenvalues, ``d >= 1``, finite with ``Q diag(lam) Q^T`` finite.

    Returns
    -------
    A : (d, d) ndarray
    Q : (d, d) ndarray, eigenvectors (columns) in the order of ``lam``.
    x0 : (d,) ndarray of unit norm.
    """
    lam = v.array("lam", lam, ndim=1, nonempty=True)
    v.rng("rng", rng)
    d = lam.shape[0]
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))  # (d, d)
    s = rng.choice([-1.0, 1.0], size=d)
    with np.errstate(over="ignore", invalid="ignore"):
        A = (Q * lam) @ Q.T  # (d, d), entries at most max |lam| up to rounding
    if not np.all(np.isfinite(A)):
        raise ValueError(
            f"lam: eigenvalues up to {np.abs(lam).max():.3g} overflow A = Q diag(lam) Q^T"
        )
    return A, Q, Q @ s / np.sqrt(d)


def sparse_parity(
    n: int, d: int, *, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A ``k``-sparse parity on the hypercube, scaled to the unit sphere.

    ``s ~ unif{-1, +1}^d``, ``x = s / sqrt(d)`` (unit rows) and ``y = s_1 s_2 ... s_k``.
    The label depends on ``k`` of the ``d`` coordinates only; it is a degree-``k``
    polynomial orthogonal to every polynomial of lower degree, so a rotation-invariant
    kernel needs of order ``d^k`` samples to learn it (Ghorbani, Mei, Misiakiewicz, Montanari,
    Ann. Statist. 2021). Only even ``k`` (or ``k = 1``) can be fitted by the bias-free ReLU net of
    :mod:`shared.net`: ``relu(z) = (z + |z|) / 2`` makes every such net a linear function
    plus an even one.

    Returns
    -------
    X : (n, d) ndarray, unit rows; y : (n,) ndarray in ``{-1, +1}``.
    """
    v.positive("n", n, integer=True)
    v.positive("d", d, integer=True)
    v.positive("k", k, integer=True)
    if k > d:
        raise ValueError(f"k: expected at most d={d} relevant coordinates, got {k}")
    v.rng("rng", rng)
    S = rng.choice([-1.0, 1.0], size=(n, d))
    return S / np.sqrt(d), np.prod(S[:, :k], axis=1)


def digits(
    pair: tuple[int, int], *, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two classes of scikit-learn's 8x8 handwritten digits, rows on the unit sphere.

    The 64 raw pixels (0..16) of each image are divided by the image's norm (per row,
    never by the Frobenius norm of ``X``); nothing is centred, so every input lies in the
    positive orthant. The images of the two classes are shuffled with ``rng`` and split
    into ``n`` training points and the rest for testing. The data ship inside
    scikit-learn (``sklearn.datasets.load_digits``, the ``data`` extra); nothing is
    downloaded.

    Returns
    -------
    X : (n, 64) ndarray; y : (n,) ndarray; X_test : (n_test, 64) ndarray;
    y_test : (n_test,) ndarray. Label ``+1`` for ``pair[0]``, ``-1`` for ``pair[1]``.
    """
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(c, int | np.integer) and 0 <= c <= 9 for c in pair)
        or pair[0] == pair[1]
    ):
        raise ValueError(f"pair: expected two different digits in 0..9, got {pair!r}")
    v.positive("n", n, integer=True)
    v.rng("rng", rng)
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "data.digits needs scikit-learn (the 'data' extra): pip install -e \".[data]\""
        ) from err
    images = load_digits()
    keep = np.isin(images.target, pair)
    total = int(np.count_nonzero(keep))
    if n >= total:
        raise ValueError(f"n: expected fewer than the {total} images of {pair}, got {n}")
    order = rng.permutation(total)
    X = images.data[keep][order].astype(np.float64)  # (total, 64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(images.target[keep][order] == pair[0], 1.0, -1.0)  # (total,)
    return X[:n], y[:n], X[n:], y[n:]
