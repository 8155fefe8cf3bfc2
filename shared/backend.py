"""Backend-neutral GD loop and Gram matrices, written against the Python array API standard.

The same mathematics as :mod:`shared.kernels` and :mod:`shared.net` (Du, Zhai,
Poczos, Singh, ICLR 2019, arXiv 1810.02054, Eq. (3)-(6)), using only functions
of the array API standard (https://data-apis.org/array-api/), so it runs
unchanged on any array library that implements it: numpy >= 2, CuPy >= 13,
JAX, PyTorch (through ``array_api_compat``), or the strict reference
implementation ``array_api_strict`` the tests use.

numpy stays the default and the fast path: experiments call
:func:`shared.kernels.gram_h` and :func:`shared.net.train`, which reuse
buffers, write in place and record the Lemma 3.2 traces. This module is for
running the same math on a GPU when the user asks for it; outputs live in the
namespace, device and dtype of the inputs::

    import cupy as cp
    from shared import backend

    W, losses = backend.train_gd(cp.asarray(X), cp.asarray(y), cp.asarray(W0),
                                 cp.asarray(a0), eta=eta, steps=steps)

Notation: ``X (n, d)``, ``y (n,)``, ``W (m, d)``, ``a (m,)``, ``u (n,)``,
``H (n, n)``. The only requirement is numpy; ``array_api_compat`` is used when
it is installed (it adds PyTorch and older CuPy / JAX) and never required.
"""

from __future__ import annotations

import math

import numpy as np

from shared import _validate as v

try:  # optional: wraps libraries whose arrays lack __array_namespace__ (PyTorch)
    from array_api_compat import array_namespace as _compat_namespace
except ImportError:  # pragma: no cover - depends on the environment
    _compat_namespace = None

__all__ = ["gram_h", "h_inf", "namespace", "train_gd"]

_TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------- namespaces
def _namespace_of(name: str, x):
    if _compat_namespace is not None:
        try:
            return _compat_namespace(x)
        except TypeError:
            pass
    if not hasattr(x, "__array_namespace__"):
        raise ValueError(
            f"{name}: expected an array with __array_namespace__ (numpy >= 2, CuPy, JAX, "
            f"array_api_strict; PyTorch needs array_api_compat), got {type(x).__name__}"
        )
    return x.__array_namespace__()


def namespace(*arrays, names=None):
    """The array API namespace shared by ``arrays``.

    Uses ``array_api_compat.array_namespace`` when that package is installed,
    else each array's ``__array_namespace__()``.

    Parameters
    ----------
    *arrays : arrays of one library.
    names : optional sequence of argument names, one per array, for messages.

    Returns
    -------
    xp : module, the namespace (``numpy`` for numpy >= 2 arrays).

    Raises
    ------
    ValueError
        If an argument is not an array API array, or the arrays come from
        different namespaces (the message names both arguments).
    """
    if not arrays:
        raise ValueError("arrays: expected at least one array, got none")
    if names is None:
        names = [f"arrays[{i}]" for i in range(len(arrays))]
    elif len(names) != len(arrays):
        raise ValueError(f"names: expected {len(arrays)} names, got {len(names)}")
    xp = _namespace_of(names[0], arrays[0])
    for name, x in zip(names[1:], arrays[1:], strict=True):
        other = _namespace_of(name, x)
        if other is not xp:
            raise ValueError(
                f"{name}: expected an array of the namespace of {names[0]} "
                f"({xp.__name__}), got one of {other.__name__}"
            )
    return xp


# --------------------------------------------------------------------------- kernels
def h_inf(X):
    """Infinite-width Gram matrix ``H_inf_ij = x_i.x_j (pi - arccos(cos_ij)) / (2 pi)``.

    Du et al. 2019, Eq. (3) and Sec. 3: ``H_inf_ij = E_w[x_i.x_j 1{w.x_i >= 0,
    w.x_j >= 0}]`` with ``w ~ N(0, I)``. Cosines are clipped to ``[-1, 1]`` and
    the diagonal is exactly ``cos = 1`` (``H_ii = ||x_i||^2 / 2``); the result is
    exactly symmetric. Backend-neutral twin of :func:`shared.kernels.h_inf`,
    without its stable angles for nearly parallel pairs: entries within ~0.1 rad
    of parallel carry ``arccos``'s error, about ``1e-16 / angle``.

    Parameters
    ----------
    X : (n, d) array, rows non-zero.

    Returns
    -------
    H : (n, n) array in the namespace, device and dtype of ``X``.
    """
    xp = namespace(X, names=["X"])
    X = v.array("X", X, ndim=2, xp=xp, nonempty=True)
    n = X.shape[0]
    norms = v.nonzero_rows("X", X, xp=xp)  # (n,)
    Xn = X / norms[:, None]  # (n, d), unit rows
    C = Xn @ Xn.T  # (n, n), cosines
    C = 0.5 * (C + C.T)  # exact symmetry
    diag = xp.eye(n, dtype=X.dtype, device=X.device) == 1  # (n, n) bool
    C = xp.where(diag, xp.ones_like(C), xp.clip(C, -1.0, 1.0))
    t = xp.acos(C)  # (n, n), angles
    s = norms / math.sqrt(_TWO_PI)  # (n,)
    S = s[:, None] * s[None, :]  # (n, n), ||x_i|| ||x_j|| / (2 pi), exactly symmetric
    return (C * (math.pi - t)) * S


def gram_h(X, W, *, chunk: int = 4096):
    """Finite-width first-layer Gram matrix ``H(W) = (X X^T) * (A A^T) / m``.

    ``H(W)_ij = (1/m) x_i.x_j sum_r 1{w_r.x_i >= 0, w_r.x_j >= 0}`` (Du et al.
    2019, Eq. (5)) with ``A = 1{X W^T >= 0}`` of shape ``(n, m)``, built
    ``chunk`` neurons at a time so memory is ``O(n^2 + n * chunk)``. The 0/1
    counts ``A A^T`` accumulate in the dtype of ``X``: exact integers up to
    ``2^24`` neurons in float32 and ``2^53`` in float64. Backend-neutral twin of
    :func:`shared.kernels.gram_h`.

    Parameters
    ----------
    X : (n, d) array
    W : (m, d) array of the same namespace; cast to the dtype of ``X``.
    chunk : int > 0, neurons per chunk.

    Returns
    -------
    H : (n, n) array in the namespace, device and dtype of ``X``.
    """
    xp = namespace(X, W, names=["X", "W"])
    X = v.array("X", X, ndim=2, xp=xp, nonempty=True)
    W = v.array("W", W, ndim=2, dtype=X.dtype, shape=(None, X.shape[1]), xp=xp, nonempty=True)
    v.positive("chunk", chunk, integer=True)
    n, m = X.shape[0], W.shape[0]
    if X.dtype == xp.float32 and m >= 2**24:
        raise ValueError(f"W: expected fewer than 2**24 neurons for exact float32 counts, got {m}")
    counts = xp.zeros((n, n), dtype=X.dtype, device=X.device)  # A A^T
    for start in range(0, m, chunk):
        W_c = W[start : min(start + chunk, m), :]  # (c, d); the standard needs in-range stops
        A = xp.astype(X @ W_c.T >= 0.0, X.dtype)  # (n, c), 1{w_r.x_i >= 0} as 0.0 / 1.0
        counts = counts + A @ A.T  # (n, n), exact integers
    return (X @ X.T) * counts / m


# --------------------------------------------------------------------------- GD
def train_gd(X, y, W0, a0, *, eta: float, steps: int):
    """Full-batch GD on ``W`` for ``u = (1/sqrt(m)) relu(X W^T) a``; ``a`` stays fixed.

    Loss ``L = 1/2 ||u - y||^2`` (Du et al. 2019, Eq. (2)), gradient
    ``dL/dw_r = (1/sqrt(m)) a_r sum_i (u_i - y_i) 1{w_r.x_i >= 0} x_i`` (Eq. (4))
    and update ``W(k+1) = W(k) - eta dL/dW`` (Eq. (6)). Backend-neutral twin of
    :func:`shared.net.train` with ``train_a=False, scale=1`` (no traces recorded).

    Parameters
    ----------
    X : (n, d) array; y : (n,) array; W0 : (m, d) array; a0 : (m,) array
        One namespace; ``y``, ``W0`` and ``a0`` are cast to the dtype of ``X``.
        Not modified.
    eta : float > 0, the step size.
    steps : int >= 0, number of GD steps.

    Returns
    -------
    W : (m, d) array, ``W(steps)`` in the namespace, device and dtype of ``X``.
    loss : list of ``steps + 1`` Python floats, ``L(W(k))`` for ``k = 0..steps``.

    Raises
    ------
    ValueError
        On invalid inputs, or naming the step ``k`` at which the run diverged
        (``eta`` above the stability limit ``2 / lambda_max(H(0))``): its loss is
        non-finite or exceeds ``max(L(0), ||y||^2 / 2) / eps^2``, the bound of
        :func:`shared.net.train` (the labels are then below the rounding error
        of the residual).
    """
    xp = namespace(X, y, W0, a0, names=["X", "y", "W0", "a0"])
    X = v.array("X", X, ndim=2, xp=xp, nonempty=True)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],), xp=xp, nonempty=True)
    W = v.array("W0", W0, ndim=2, dtype=X.dtype, shape=(None, X.shape[1]), xp=xp, nonempty=True)
    a = v.array("a0", a0, ndim=1, dtype=X.dtype, shape=(W.shape[0],), xp=xp, nonempty=True)
    v.positive("eta", eta)
    v.positive("steps", steps, integer=True, allow_zero=True)
    c = 1.0 / math.sqrt(W.shape[0])  # Python float: float32 stays float32
    coef = float(eta) * c
    eps = float(xp.finfo(X.dtype).eps)
    losses: list[float] = []
    # numpy-backed namespaces (numpy, array_api_strict) warn on the overflow of a
    # diverging run; it is detected below from the loss, so the warnings are muted
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps + 1):
            Z = X @ W.T  # (n, m), pre-activations
            u = c * (xp.where(Z >= 0.0, Z, xp.zeros_like(Z)) @ a)  # (n,), relu(Z) a / sqrt(m)
            r = u - y  # (n,), residual
            L = 0.5 * float(xp.sum(r * r))
            if k == 0:
                if not math.isfinite(L):
                    raise ValueError(f"W0: the loss at step 0 is non-finite ({L})")
                bound = max(L, 0.5 * float(xp.sum(y * y))) / eps**2  # L_div of net.train
            if not math.isfinite(L) or L > bound:
                raise ValueError(
                    f"eta: the loss diverged at step {k}: L({k}) = {L:.3g} is non-finite or "
                    f"exceeds L_div = max(L(0), ||y||^2/2) / eps^2 = {bound:.3g}; eta={eta:g} "
                    f"is above the stability limit 2/lambda_max(H(0))"
                )
            losses.append(L)
            if k == steps:
                break
            M = xp.astype(Z >= 0.0, X.dtype)  # (n, m), 1{w_r.x_i >= 0}
            B = (coef * r)[:, None] * X  # (n, d), eta c (u - y) x_i
            W = W - a[:, None] * (M.T @ B)  # (m, d)
    return W, losses
