"""Gram matrices of the two-layer ReLU net, finite and infinite width.

Notation (Du, Zhai, Poczos, Singh, ICLR 2019, arXiv 1810.02054):
``X (n, d)`` inputs, ``W (m, d)`` first-layer weights, ``H (n, n)`` Gram
matrices, ``lam0 = lambda_min(H_inf)``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from shared import _validate as v

_TWO_PI = 2.0 * np.pi
# Rows of the (n, n) matrix handled per pass of the closed forms: an (rows, n)
# float64 block of about 1 MiB stays in cache across the elementwise passes.
_ROW_BLOCK_BYTES = 2**20
# |cos| above this (angles within about 0.1 rad of 0 or pi): arccos(cos) and
# sqrt(1 - cos^2) would lose digits, as d(angle) = d(cos) / sin(angle).
_NEAR_PARALLEL = 0.995


def _directions(X: np.ndarray, *, diag: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row norms ``(n,)``, unit rows ``Xn (n, d)`` and their cosines ``C = Xn Xn^T (n, n)``.

    The angles do not depend on the norms, and the norms are exact at any scale
    (:func:`shared._validate.unit_rows`), so the only limit is the size of the
    result: every entry is at most the largest diagonal entry ``diag ||x_i||^2``
    in magnitude (``diag = 1/2`` for ``H_inf`` and ``G_inf``, 1 for their sum).
    A diagonal that overflows, or underflows below the smallest normal float
    (where the entries would keep no relative precision), is an error: the
    kernels are homogeneous, ``K(c X) = c^2 K(X)``, so the caller can rescale.
    """
    X = v.array("X", X, ndim=2, nonempty=True)
    norms, Xn = v.unit_rows("X", X)  # (n,), (n, d)
    tiny, big = float(np.finfo(X.dtype).tiny), float(np.finfo(X.dtype).max)
    hi, lo = float(norms.max()), float(norms.min())
    # Python floats: a product past float64's range is inf, never an exception
    for which, r, bad in (
        ("largest", hi, diag * hi * hi > big),
        ("smallest", lo, diag * lo * lo < tiny),
    ):
        if bad:
            raise ValueError(
                f"X: the {which} row norm {r:.3g} makes the kernel's diagonal entry "
                f"{diag:g} ||x_i||^2 = {diag * r * r:.3g} leave the normal range of {X.dtype} "
                f"[{tiny:.3g}, {big:.3g}]; the kernel is homogeneous, K(c X) = c^2 K(X): rescale X"
            )
    C = Xn @ Xn.T  # (n, n), a symmetric rank-k update (BLAS syrk)
    return norms, Xn, C


def _stable_angles(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Angles between the unit rows of ``U`` and ``V (k, d)``: ``2 atan2(|u - v|, |u + v|)``.

    Accurate to rounding at every angle (Kahan's formula), where ``arccos(u . v)``
    loses half the digits near 0 and pi; used for the few near-(anti)parallel pairs.
    """
    return 2.0 * np.arctan2(np.linalg.norm(U - V, axis=1), np.linalg.norm(U + V, axis=1))


def _near_parallel(blk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(ii, jj)`` of the cosines of a block row with ``|cos| > _NEAR_PARALLEL``.

    ``blk`` is ``C[i0:i1, i0:]``: its leading square holds the diagonal
    (``ii == jj``), which is left out. Two read-only reductions rule out the
    rest of the block first, as random data in more than a few dimensions has
    no such pairs.
    """
    b = blk.shape[0]
    square = np.abs(blk[:, :b]) > _NEAR_PARALLEL
    np.fill_diagonal(square, False)
    ii, jj = np.nonzero(square)
    rest = blk[:, b:]
    if rest.size and (rest.max() > _NEAR_PARALLEL or rest.min() < -_NEAR_PARALLEL):
        ri, rj = np.nonzero(np.abs(rest) > _NEAR_PARALLEL)
        ii, jj = np.concatenate([ii, ri]), np.concatenate([jj, rj + b])
    return ii, jj


def _arc_kernels(X: np.ndarray, *, first: bool, second: bool) -> np.ndarray:
    """Sum of the selected closed forms, ``H_inf`` (``first``) and ``G_inf`` (``second``).

    Both are functions of the angle ``t_ij = arccos(cos_ij)`` and the norms:
    ``H_inf_ij = |x_i| |x_j| cos t (pi - t) / (2 pi)`` and
    ``G_inf_ij = |x_i| |x_j| (sin t + (pi - t) cos t) / (2 pi)``. The matrix is
    symmetric, so each block of rows is evaluated right of the diagonal only
    (half the ``arccos`` calls) and mirrored; cosines are clipped to ``[-1, 1]``
    and the diagonal is exactly ``cos = 1`` (``H_ii = |x_i|^2 / 2``). Pairs
    within about 0.1 rad of parallel or antiparallel take their angle (and
    ``sin t``) from :func:`_stable_angles`, so every entry is accurate to
    rounding: the small eigenvalues of nearly parallel data (``lam0 ~ t``) are
    differences of entries and would inherit ``arccos``'s lost digits.
    """
    norms, Xn, C = _directions(X, diag=1.0 if first and second else 0.5)
    n = C.shape[0]
    np.fill_diagonal(C, 1.0)
    s = norms / float(np.sqrt(_TWO_PI))  # (n,), so that s_i s_j = |x_i| |x_j| / (2 pi)
    rows = max(8, _ROW_BLOCK_BYTES // (C.itemsize * n))
    T = np.empty(rows * n, dtype=C.dtype)  # scratch for one block of angles
    S = np.empty(rows * n, dtype=C.dtype) if second else None
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        blk = C[i0:i1, i0:]  # (b, n - i0), upper part of the block row
        t = T[: blk.size].reshape(blk.shape)
        np.clip(blk, -1.0, 1.0, out=blk)
        ii, jj = _near_parallel(blk)
        t_near = _stable_angles(Xn[i0 + ii], Xn[i0 + jj])
        np.arccos(blk, out=t)  # angles t_ij
        t[ii, jj] = t_near
        np.subtract(np.pi, t, out=t)  # pi - t
        np.multiply(t, blk, out=t)  # (pi - t) cos t
        if first and second:
            t += t  # H + G: the term (pi - t) cos t appears in both
        if second:
            sn = S[: blk.size].reshape(blk.shape)
            np.multiply(blk, blk, out=sn)
            np.subtract(1.0, sn, out=sn)
            np.sqrt(sn, out=sn)  # sin t
            sn[ii, jj] = np.sin(t_near)
            t += sn
        np.multiply(t, s[i0:i1, None], out=t)
        np.multiply(t, s[None, i0:], out=blk)
        below = np.tril_indices(i1 - i0, -1)
        C[i0:i1, i0:i1][below] = C[i0:i1, i0:i1].T[below]  # exact symmetry on the diagonal block
        C[i1:, i0:i1] = C[i0:i1, i1:].T  # mirror below the diagonal
    return C


def h_inf(X: np.ndarray) -> np.ndarray:
    """Infinite-width Gram matrix of the first layer.

    ``H_inf_ij = E_w[x_i.x_j 1{w.x_i >= 0, w.x_j >= 0}] = x_i.x_j (pi - arccos(cos_ij)) / (2 pi)``
    with ``w ~ N(0, I)`` (Du et al. 2019, Eq. (3) and Sec. 3). The indicator
    depends on directions only, so the formula holds for any non-zero norms.

    Parameters
    ----------
    X : (n, d) ndarray, rows non-zero, ``n, d >= 1``; any scale whose diagonal
        ``||x_i||^2 / 2`` is a normal float (else a ``ValueError``: rescale, as
        ``H_inf(c X) = c^2 H_inf(X)``).

    Returns
    -------
    H : (n, n) ndarray in the dtype of ``X``, symmetric PSD; diagonal ``||x_i||^2 / 2``.
    """
    return _arc_kernels(X, first=True, second=False)


def g_inf(X: np.ndarray) -> np.ndarray:
    """Infinite-width Gram matrix of the second layer (the ReLU NNGP / arc-cosine kernel).

    ``G_inf_ij = E_w[relu(w.x_i) relu(w.x_j)] = ||x_i|| ||x_j|| (sin t + (pi - t) cos t) / (2 pi)``,
    ``t`` the angle between ``x_i`` and ``x_j`` (Cho & Saul 2009, arc-cosine
    kernel of degree 1, halved). Diagonal ``||x_i||^2 / 2``.

    Returns
    -------
    G : (n, n) ndarray
    """
    return _arc_kernels(X, first=False, second=True)


def ntk_inf(X: np.ndarray) -> np.ndarray:
    """Neural tangent kernel of the net when both layers train: ``H_inf + G_inf``.

    Gradient flow on ``(W, a)`` moves predictions with this kernel (Du et al.
    2019, Sec. 3.2; Jacot et al. 2018); its diagonal is 1 for unit inputs.
    Computed in one pass (one ``arccos`` per pair).
    """
    return _arc_kernels(X, first=True, second=True)


def _check_XW(X, W, *, second: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``X (n, d)`` and ``W (m, d)``, ``n, m, d >= 1``, whose products fit the dtype.

    ``|w_r . x_i| <= ||x_i|| ||w_r||`` (Cauchy-Schwarz) bounds every pre-activation
    and every partial sum of it, ``|x_i . x_j| <= max ||x||^2`` the entries of
    ``X X^T``, and ``max ||x||^2 ||W||_F^2`` the sums of ``G`` before the division by
    ``m``. Beyond the dtype's range a pre-activation would overflow to ``inf`` or
    ``nan`` and silently flip its pattern, so that is an error. A cheap bound
    (``||x|| <= sqrt(d) max |x_k|``) settles the usual case without the norms.
    """
    X = v.array("X", X, ndim=2, nonempty=True)
    W = v.array("W", W, ndim=2, dtype=X.dtype, shape=(None, X.shape[1]), nonempty=True)
    big = float(np.finfo(X.dtype).max)
    d, m = X.shape[1], W.shape[0]
    x_max = max(float(X.max()), -float(X.min()))
    w_max = max(float(W.max()), -float(W.min()))
    zw = d * x_max * w_max  # Python floats: inf past float64's range, no exception
    if max(d * x_max * x_max, zw, m * zw * zw) <= big:
        return X, W
    x_norm = float(v.row_norms(X).max())
    w_norms = v.row_norms(W).astype(float)  # (m,)
    with np.errstate(over="ignore"):
        w_fro2 = float(w_norms @ w_norms)
    if x_norm * x_norm > big:
        raise ValueError(
            f"X: the largest row norm {x_norm:.3g} makes x_i . x_j overflow {X.dtype} "
            f"(largest {big:.3g}); rescale X"
        )
    if x_norm * float(w_norms.max()) > big or (second and x_norm * x_norm * w_fro2 > big):
        raise ValueError(
            f"X, W: the largest row norms {x_norm:.3g} of X and {float(w_norms.max()):.3g} of W "
            f"make the pre-activations w_r . x_i{' and their squared sums' if second else ''} "
            f"overflow {X.dtype} (largest {big:.3g}); rescale X or W"
        )
    return X, W


def _chunk(chunk, n: int) -> int:
    """Neurons per chunk: given, or about 32 MiB of float64 ``(n, chunk)`` pre-activations."""
    if chunk is None:
        return max(256, 2**22 // n)
    return v.positive("chunk", chunk, integer=True)


class _Counts:
    """The 0/1 co-activation counts ``A A^T (n, n)``, summed over chunks of neurons.

    Each chunk ``A (n, c)`` (0.0 / 1.0 in float32) adds ``A @ A.T``, which numpy
    hands to BLAS ``syrk`` (half the multiply-adds of a general product) in the
    same BLAS as every other product here: a second BLAS's thread pool (scipy's
    own ``ssyrk``) would contend with numpy's for the cores between calls and
    ran twice as slowly. The sums are exact integers in float32 up to ``2^24``
    neurons, so the order of the chunks and of the additions does not matter.
    Memory: the sum and one ``(n, n)`` float32 product.
    """

    def __init__(self, n: int):
        self.total = np.zeros((n, n), dtype=np.float32)
        self._product = np.empty((n, n), dtype=np.float32)

    def add(self, A: np.ndarray) -> None:
        np.matmul(A, A.T, out=self._product)  # (n, n), syrk
        self.total += self._product

    def times(self, K: np.ndarray, m: int, *, overwrite: bool = False) -> np.ndarray:
        """``K * (A A^T) / m (n, n)`` in the dtype of ``K``, exactly symmetric.

        The product is taken everywhere and its upper triangle mirrored block by block, so the
        result is symmetric to the last bit even for a ``K`` that is not (no ``(n, n)``
        temporaries beyond the result; ``K`` itself is the result with ``overwrite``).
        """
        H = np.multiply(K, self.total, out=K if overwrite else None)
        H /= m
        n = H.shape[0]
        rows = max(8, _ROW_BLOCK_BYTES // (H.itemsize * n))
        for i0 in range(0, n, rows):
            i1 = min(i0 + rows, n)
            H[i1:, i0:i1] = H[i0:i1, i1:].T  # below the diagonal block
            D = H[i0:i1, i0:i1]
            np.copyto(D, D.T.copy(), where=np.tri(i1 - i0, k=-1, dtype=bool))  # inside it
        return H


def gram_h(X: np.ndarray, W: np.ndarray, *, chunk: int | None = None) -> np.ndarray:
    """Finite-width first-layer Gram matrix ``H(W)``.

    ``H(W)_ij = (1/m) x_i.x_j sum_r 1{w_r.x_i >= 0, w_r.x_j >= 0}`` (Du et al.
    2019, Eq. (5)); as matrices ``H = (X X^T) * (A A^T) / m`` with
    ``A = 1{X W^T >= 0}`` of shape ``(n, m)``. The neuron axis is processed in
    chunks of ``chunk`` so memory is ``O(n^2 + n * chunk)``, not ``O(n * m)``.
    The 0/1 counts ``A A^T`` are accumulated in float32, exact up to ``2^24``
    neurons, by symmetric rank-k products (BLAS ``syrk``: half the multiply-adds
    of a general product).

    Parameters
    ----------
    X : (n, d) ndarray, ``n, d >= 1``
    W : (m, d) ndarray, ``m >= 1``; ``||x_i|| ||w_r||`` and ``||x_i||^2`` must fit the
        dtype (a ``ValueError`` otherwise, never an overflowed pattern).
    chunk : neurons per chunk (default: about 32 MiB of pre-activations).

    Returns
    -------
    H : (n, n) ndarray in the dtype of ``X``, exactly symmetric; equals ``J J^T``
        with ``J`` the Jacobian of the predictions with respect to ``W``
        (``net.jacobian_W``), since ``a_r^2 = 1``.
    """
    X, W = _check_XW(X, W, second=False)
    n, m = X.shape[0], W.shape[0]
    chunk = min(_chunk(chunk, n), m)
    if m >= 2**24:
        raise ValueError(f"W: expected fewer than 2**24 neurons for exact float32 counts, got {m}")
    counts = _Counts(n)  # A A^T
    Z_buf = np.empty(n * chunk, dtype=X.dtype)
    A_buf = np.empty(n * chunk, dtype=np.float32)
    for start in range(0, m, chunk):
        W_c = W[start : start + chunk]  # (c, d)
        size = n * W_c.shape[0]
        Z = np.matmul(X, W_c.T, out=Z_buf[:size].reshape(n, -1))  # (n, c)
        A = A_buf[:size].reshape(n, -1)  # (n, c)
        np.greater_equal(Z, 0.0, out=A, casting="unsafe")  # 1{w_r.x_i >= 0} as 0.0 / 1.0
        counts.add(A)
    return counts.times(X @ X.T, m, overwrite=True)


def gram_h_pattern(K: np.ndarray, patterns) -> np.ndarray:
    """``H(W) = K * (A A^T) / m`` from ``K = X X^T (n, n)`` and the pattern ``A`` in blocks.

    ``patterns`` is a sequence of bool ``(n, b)`` blocks of ``A = 1{X W^T >= 0}``
    that together hold the ``m`` neurons, in any order; the result is
    :func:`gram_h`'s (the same products, up to the order of the count sums,
    which are exact). For callers that already hold the pattern (the
    function-space GD step of :mod:`shared.net`). Private arguments are not
    validated beyond their shapes.
    """
    K = v.array("K", K, ndim=2, nonempty=True)
    n = K.shape[0]
    counts, m = _Counts(n), 0
    width = max(P.shape[1] for P in patterns)
    A_buf = np.empty(n * width, dtype=np.float32)
    for P in patterns:
        if P.shape[0] != n:
            raise ValueError(f"patterns: expected blocks of {n} rows, got shape {P.shape}")
        A = A_buf[: P.size].reshape(P.shape)  # (n, b)
        np.copyto(A, P)  # 0.0 / 1.0
        counts.add(A)
        m += P.shape[1]
    return counts.times(K, m)


def gram_g(X: np.ndarray, W: np.ndarray, *, chunk: int | None = None) -> np.ndarray:
    """Finite-width second-layer Gram matrix ``G(W)_ij = (1/m) sum_r relu(w_r.x_i) relu(w_r.x_j)``.

    It is the kernel of the gradient with respect to ``a``; it tends to
    :func:`g_inf` as ``m`` grows. Chunked over neurons like :func:`gram_h`.
    """
    X, W = _check_XW(X, W, second=True)
    n, m = X.shape[0], W.shape[0]
    chunk = min(_chunk(chunk, n), m)
    G = np.zeros((n, n), dtype=X.dtype)
    Z_buf = np.empty(n * chunk, dtype=X.dtype)
    for start in range(0, m, chunk):
        W_c = W[start : start + chunk]  # (c, d)
        R = np.matmul(X, W_c.T, out=Z_buf[: n * W_c.shape[0]].reshape(n, -1))  # (n, c)
        np.maximum(R, 0.0, out=R)  # relu
        G += R @ R.T  # (n, n), syrk
    G /= m
    return G


def h_inf_monte_carlo(
    X: np.ndarray, *, n_draws: int, rng: np.random.Generator, chunk: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo estimate of ``H_inf`` from ``n_draws`` Gaussian ``w``, with standard errors.

    Each draw gives ``x_i.x_j 1{w.x_i >= 0} 1{w.x_j >= 0}``; the estimate is
    their mean, whose standard error is ``|x_i.x_j| sqrt(p (1 - p) / n_draws)``
    with ``p`` the estimated co-activation probability.

    Returns
    -------
    H_hat : (n, n) ndarray
    stderr : (n, n) ndarray
    """
    X = v.array("X", X, ndim=2, nonempty=True)
    v.positive("n_draws", n_draws, integer=True)
    v.rng("rng", rng)
    W = rng.standard_normal((n_draws, X.shape[1]))
    H_hat = gram_h(X, W, chunk=chunk)
    K = X @ X.T
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(K != 0, H_hat / K, 0.0)
    stderr = np.abs(K) * np.sqrt(np.clip(p * (1.0 - p), 0.0, None) / n_draws)
    return H_hat, stderr


def spectrum(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of a symmetric ``H (n, n)``, ``n >= 1``.

    ``H`` must be symmetric to ``sqrt(eps)`` of its largest entry
    (:func:`shared._validate.symmetric`): the eigensolver reads one triangle.
    """
    return np.linalg.eigh(v.symmetric("H", H))


def lambda_min(H: np.ndarray) -> float:
    """Smallest eigenvalue of a symmetric ``H (n, n)``, ``n >= 1``; ``lam0`` when ``H = H_inf``.

    ``H`` must be symmetric to ``sqrt(eps)`` of its largest entry
    (:func:`shared._validate.symmetric`): the eigensolver reads one triangle.
    """
    return float(np.linalg.eigvalsh(v.symmetric("H", H))[0])


def predicted_residuals(
    H: np.ndarray, y: np.ndarray, *, eta: float, steps: int, u0: np.ndarray | None = None
) -> np.ndarray:
    """Arora et al.'s spectral prediction of ``||y - u(k)||`` for ``k = 0..steps``.

    In the kernel regime ``y - u(k) = (I - eta H)^k (y - u(0))``, so with
    ``H = sum_i lambda_i v_i v_i^T``,
    ``||y - u(k)|| = sqrt(sum_i (1 - eta lambda_i)^(2k) (v_i . (y - u(0)))^2)``
    (Arora, Du, Hu, Li, Wang, ICML 2019, Theorem 4.1, with ``u(0) = 0``).

    A mode with ``|1 - eta lambda_i| > 1`` grows; a ``ValueError`` naming ``eta``
    is raised if the prediction overflows the float range within ``steps``.

    Returns
    -------
    r : (steps + 1,) ndarray of residual norms.
    """
    y = v.array("y", y, ndim=1, nonempty=True)
    H = v.symmetric("H", H, n=y.shape[0])
    v.positive("eta", eta)
    v.positive("steps", steps, integer=True, allow_zero=True)
    r0 = y if u0 is None else y - v.array("u0", u0, ndim=1, shape=y.shape)
    lam, V = np.linalg.eigh(H)
    proj2 = (V.T @ r0) ** 2  # (n,)
    if not np.all(proj2 > 0):  # modes that r0 does not excite: 0 * inf would give nan
        lam, proj2 = lam[proj2 > 0], proj2[proj2 > 0]
    k = np.arange(steps + 1)[:, None]  # (steps + 1, 1)
    with np.errstate(over="ignore"):
        growth = np.abs(1.0 - eta * lam)  # (n,)
        factors = growth[None, :] ** (2 * k)  # (steps + 1, n)
        r = np.sqrt(factors @ proj2)
    if not np.all(np.isfinite(r)):
        k_bad = int(np.argmax(~np.isfinite(r)))
        raise ValueError(
            f"eta: the predicted residual overflows {r.dtype} at step {k_bad}: "
            f"max |1 - eta lambda_i| = {float(growth.max()):.6g} > 1 with eta={eta:g} "
            f"(2 / lambda_max = {2.0 / float(lam.max()) if lam.max() > 0 else np.inf:.6g})"
        )
    return r


def complexity_measure(H: np.ndarray, y: np.ndarray) -> float:
    """Arora et al.'s data-dependent complexity ``sqrt(2 y^T H^-1 y / n)``.

    It bounds the generalization gap of the wide net trained by GD (Arora et
    al. 2019, Theorem 5.1); ``sqrt(y^T H^-1 y)`` is also the limit of
    ``||W(k) - W(0)||_F`` (their Sec. 5). Computed with a Cholesky solve.
    """
    y = v.array("y", y, ndim=1, nonempty=True)
    return float(np.sqrt(2.0 * rkhs_norm_sq(H, y) / y.shape[0]))


def rkhs_norm_sq(H: np.ndarray, y: np.ndarray) -> float:
    """``y^T H^-1 y`` for a symmetric positive-definite ``H``; raises if ``H`` is singular.

    With ``H = L L^T`` (Cholesky), ``y^T H^-1 y = ||L^-1 y||^2``: one triangular solve.
    ``H (n, n)`` must be symmetric to ``sqrt(eps)`` (Cholesky reads one triangle), ``n >= 1``.
    """
    y = v.array("y", y, ndim=1, nonempty=True)
    H = v.symmetric("H", H, n=y.shape[0])
    try:
        L = np.linalg.cholesky(H)
    except np.linalg.LinAlgError as err:
        raise ValueError("H: expected a positive-definite matrix, Cholesky failed") from err
    with np.errstate(over="ignore"):
        z = solve_triangular(L, y, lower=True)
        q = float(z @ z)
    if not np.isfinite(q):
        raise ValueError(
            "H: y^T H^-1 y overflows float64 (H is too close to singular along y); rescale H or y"
        )
    return q
