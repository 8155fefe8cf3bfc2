"""What a trained net's kernel knows about the target: alignment, cross-kernels, kernel predictors.

In the kernel (lazy) regime the tangent kernel stays at its initial value and the trained net is
the kernel predictor of :func:`kernel_predict`. Outside it the kernel moves, and the direction it
moves in is measured by the kernel-target alignment (Cristianini, Shawe-Taylor, Elisseeff,
Kandola, NeurIPS 2001), which rises during training when the net learns features (Baratin,
George, Laurent, Hjelm, Lajoie, Vincent, Lacoste-Julien, AISTATS 2021).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve

from shared import _validate as v


def kernel_alignment(K: np.ndarray, y: np.ndarray) -> float:
    """Kernel-target alignment ``A(K, y) = y^T K y / (||K||_F ||y||^2)``.

    The cosine between ``K`` and ``y y^T`` in the Frobenius inner product (Cristianini et al.
    2001): it lies in ``[-1, 1]``, is 1 for ``K = c y y^T`` (``c > 0``) and does not change
    when ``K`` is scaled, so kernels of nets with different output scales compare directly.

    Parameters
    ----------
    K : (n, n) ndarray, symmetric, not zero.
    y : (n,) ndarray, not zero.
    """
    y = v.array("y", y, ndim=1)
    K = v.array("K", K, ndim=2, shape=(y.shape[0], y.shape[0]))
    norm_k, norm_y = np.linalg.norm(K), float(y @ y)
    if norm_k == 0 or norm_y == 0:
        raise ValueError("K, y: expected a non-zero kernel and non-zero labels")
    return float(y @ K @ y) / (norm_k * norm_y)


def h_inf_cross(Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
    """``H_inf`` between two input sets: ``x_i.x'_j (pi - arccos(cos_ij)) / (2 pi)``, ``(na, nb)``.

    The infinite-width first-layer kernel of Du et al. (2019, Sec. 3) evaluated across sets,
    for kernel prediction on test inputs; ``h_inf_cross(X, X)`` equals ``kernels.h_inf(X)``
    to rounding. Cosines are clipped to ``[-1, 1]`` before ``arccos``.
    """
    Xa = v.array("Xa", Xa, ndim=2)
    Xb = v.array("Xb", Xb, ndim=2, shape=(None, Xa.shape[1]))
    na, nb = v.nonzero_rows("Xa", Xa), v.nonzero_rows("Xb", Xb)
    dots = Xa @ Xb.T  # (na, nb)
    cos = np.clip(dots / np.outer(na, nb), -1.0, 1.0)
    return dots * (np.pi - np.arccos(cos)) / (2.0 * np.pi)


def gram_h_cross(Xa: np.ndarray, Xb: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Finite-width ``H(W)`` across sets: ``(1/m) x_i.x'_j sum_r 1{w_r.x_i >= 0} 1{w_r.x'_j >= 0}``.

    ``(na, nb)``; with ``Xa = Xb = X`` it is ``kernels.gram_h(X, W)``, the tangent kernel of
    the first layer of :mod:`shared.net` (output scale 1).
    """
    Xa = v.array("Xa", Xa, ndim=2)
    Xb = v.array("Xb", Xb, ndim=2, shape=(None, Xa.shape[1]))
    W = v.array("W", W, ndim=2, shape=(None, Xa.shape[1]))
    Aa = (Xa @ W.T >= 0).astype(Xa.dtype)  # (na, m)
    Ab = (Xb @ W.T >= 0).astype(Xa.dtype)  # (nb, m)
    return (Xa @ Xb.T) * (Aa @ Ab.T) / W.shape[0]


def kernel_predict(K: np.ndarray, K_cross: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Minimum-norm interpolant ``f(x) = K(x, X) K^-1 y`` at the test inputs, ``(n_test,)``.

    It is where GD on the linearised net converges from ``u(0) = 0`` (Jacot et al. 2018,
    Sec. 5; Arora et al. 2019a, Sec. 4). ``K (n, n)`` must be positive definite (Cholesky).

    Parameters
    ----------
    K : (n, n) ndarray, the kernel on the training inputs.
    K_cross : (n_test, n) ndarray, the kernel between test and training inputs.
    y : (n,) ndarray, training labels.
    """
    y = v.array("y", y, ndim=1)
    K = v.array("K", K, ndim=2, shape=(y.shape[0], y.shape[0]))
    K_cross = v.array("K_cross", K_cross, ndim=2, shape=(None, y.shape[0]))
    try:
        c = np.linalg.cholesky(K)
    except np.linalg.LinAlgError as err:
        raise ValueError("K: expected a positive-definite matrix, Cholesky failed") from err
    return K_cross @ cho_solve((c, True), y)
