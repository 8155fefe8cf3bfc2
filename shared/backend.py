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
running the same math on a GPU when the user asks for it (``sandbox run NAME
--backend cupy``: :data:`BACKENDS`, :func:`arrays_on`); outputs live in the
namespace, device and dtype of the inputs, except :func:`train`'s record,
which is :func:`shared.net.train`'s, on the host::

    import cupy as cp
    from shared import backend

    W, losses = backend.train_gd(cp.asarray(X), cp.asarray(y), cp.asarray(W0),
                                 cp.asarray(a0), eta=eta, steps=steps)

Notation: ``X (n, d)``, ``y (n,)``, ``W (m, d)``, ``a (m,)``, ``u (n,)``,
``H (n, n)``. The only requirement is numpy; ``array_api_compat`` is used when
it is installed (it adds PyTorch and older CuPy / JAX) and never required.
"""

from __future__ import annotations

import importlib
import math

import numpy as np

from shared import _validate as v

try:  # optional: wraps libraries whose arrays lack __array_namespace__ (PyTorch)
    from array_api_compat import array_namespace as _compat_namespace
except ImportError:  # pragma: no cover - depends on the environment
    _compat_namespace = None

__all__ = [
    "BACKENDS",
    "arrays_on",
    "gram_h",
    "h_inf",
    "namespace",
    "namespace_named",
    "to_numpy",
    "train",
    "train_gd",
]

# The array libraries a run can be asked for by name (``sandbox run NAME --backend ...``)
BACKENDS = ("numpy", "cupy", "torch", "array_api_strict")

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


def namespace_named(name: str):
    """The array API namespace of a backend named in :data:`BACKENDS`.

    ``torch`` and ``cupy`` go through ``array_api_compat`` (its ``torch`` and
    ``cupy`` wrappers; CuPy's own namespace without it); a library that is not
    installed is a ``ValueError`` naming it.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(map(repr, BACKENDS))}, got {name!r}")
    if name == "numpy":
        return np
    modules = {
        "array_api_strict": ["array_api_strict"],
        "torch": ["array_api_compat.torch"],
        "cupy": ["array_api_compat.cupy", "cupy"],
    }[name]
    for i, module in enumerate(modules):
        try:
            return importlib.import_module(module)
        except ImportError as err:
            if i == len(modules) - 1:
                raise ValueError(
                    f"backend: {name!r} needs {' or '.join(modules)}, which cannot be "
                    f"imported here ({err})"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def arrays_on(name: str, *arrays: np.ndarray) -> tuple:
    """Copies of numpy ``arrays`` in the backend ``name``, on its accelerator if it has one.

    CuPy arrays live on the current GPU; PyTorch's on ``cuda`` when
    ``torch.cuda.is_available()``, else on the CPU; the others on the CPU.
    """
    xp = namespace_named(name)
    device = None
    if name == "torch":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return tuple(xp.asarray(A) if device is None else xp.asarray(A, device=device) for A in arrays)


def to_numpy(x) -> np.ndarray:
    """A numpy array on the host with the values of ``x`` (copied back from a GPU if needed)."""
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.from_dlpack(x)
    except (BufferError, RuntimeError, TypeError, ValueError):
        if hasattr(x, "get"):  # CuPy
            return np.asarray(x.get())
        if hasattr(x, "cpu"):  # PyTorch
            return x.detach().cpu().numpy()
        raise


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
def _divergence_bound(L0: float, yy: float, eps: float) -> float:
    """``L_div = max(L(0), ||y||^2 / 2) / eps^2``, the bound of :func:`shared.net.train`."""
    if not math.isfinite(L0):
        raise ValueError(f"W0: the loss at step 0 is non-finite ({L0})")
    return max(L0, 0.5 * yy) / eps**2


def _check_divergence(k: int, L: float, bound: float, eta: float) -> None:
    """A named error when the loss at step ``k`` is non-finite or above ``bound``."""
    if not math.isfinite(L) or L > bound:
        raise ValueError(
            f"eta: the loss diverged at step {k}: L({k}) = {L:.3g} is non-finite or "
            f"exceeds L_div = max(L(0), ||y||^2/2) / eps^2 = {bound:.3g}; eta={eta:g} "
            f"is above the stability limit 2/lambda_max(H(0))"
        )


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
                bound = _divergence_bound(L, float(xp.sum(y * y)), eps)
            _check_divergence(k, L, bound, eta)
            losses.append(L)
            if k == steps:
                break
            M = xp.astype(Z >= 0.0, X.dtype)  # (n, m), 1{w_r.x_i >= 0}
            B = (coef * r)[:, None] * X  # (n, d), eta c (u - y) x_i
            W = W - a[:, None] * (M.T @ B)  # (m, d)
    return W, losses


def train(
    X,
    y,
    W0,
    a0,
    *,
    eta: float,
    steps: int,
    record_every: int = 1,
    step: str = "auto",
    progress=None,
):
    """Full-batch GD on ``W`` with the traces of :func:`shared.net.train`, in any namespace.

    The same iteration as :func:`train_gd` (``a`` fixed, ``scale = 1``), in the
    weight-space step or in :mod:`shared._fspace`'s function-space step
    (``Z(k+1) = Z(k) - K Q`` with ``K = X X^T``, ``W = W(0) - C^T X``; refreshed
    from ``W`` every :data:`shared._fspace.REFRESH` steps), chosen by the same
    cost model (``step="auto"``) or forced. Every ``record_every`` steps and at
    the last it records :class:`shared.net.TrainResult`'s flip fraction and
    moves (the moves from ``C . (Z(0) - Z)`` in function space), and calls
    ``progress(k, steps)``.

    Parameters
    ----------
    X : (n, d) array; y : (n,) array; W0 : (m, d) array; a0 : (m,) array
        One namespace (:func:`namespace`), as for :func:`train_gd`; not modified.
    eta : float > 0; steps : int >= 0; record_every : int > 0
    step : ``"auto"``, ``"weights"`` or ``"function"``.
    progress : ``None`` or a callable ``progress(k, steps)``.

    Returns
    -------
    :class:`shared.net.TrainResult` with numpy arrays on the host (``W``, ``a``,
    ``u`` copied back once, at the end); divergence raises as in :func:`train_gd`.
    """
    from shared import _fspace, net  # numpy-only modules, imported when a run needs them

    xp = namespace(X, y, W0, a0, names=["X", "y", "W0", "a0"])
    X = v.array("X", X, ndim=2, xp=xp, nonempty=True)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],), xp=xp, nonempty=True)
    W0 = v.array("W0", W0, ndim=2, dtype=X.dtype, shape=(None, X.shape[1]), xp=xp, nonempty=True)
    a = v.array("a0", a0, ndim=1, dtype=X.dtype, shape=(W0.shape[0],), xp=xp, nonempty=True)
    v.positive("eta", eta)
    v.positive("steps", steps, integer=True, allow_zero=True)
    v.positive("record_every", record_every, integer=True)
    if not isinstance(step, str) or step not in net.STEPS:
        raise ValueError(f"step: expected one of {', '.join(map(repr, net.STEPS))}, got {step!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress: expected a callable or None, got {type(progress).__name__}")
    (n, d), m = X.shape, W0.shape[0]
    if step == "auto":
        step = _fspace.choose(
            n=n, d=d, m=m, steps=steps, record_every=record_every, train_a=False,
            track_kernel=False, callback=False,
        )  # fmt: skip
    function = step == "function"
    c = 1.0 / math.sqrt(m)  # Python float: float32 stays float32
    coef = float(eta) * c
    eps = float(xp.finfo(X.dtype).eps)
    zero = xp.zeros((), dtype=X.dtype, device=X.device)
    W = W0
    Z = X @ W.T  # (n, m), pre-activations
    M0 = Z >= 0.0  # (n, m), pattern at step 0
    if function:
        K = X @ X.T  # (n, n)
        Z0, C = Z, xp.zeros_like(Z)  # C (n, m): W = W0 - C^T X
    losses, rec = [], {"steps": [], "flips": [], "rms": [], "max": [], "fro": []}
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps + 1):
            M = Z >= 0.0  # (n, m)
            u = c * (xp.where(M, Z, zero) @ a)  # (n,)
            r = u - y  # (n,), residual
            L = 0.5 * float(xp.sum(r * r))
            if k == 0:
                bound = _divergence_bound(L, float(xp.sum(y * y)), eps)
            _check_divergence(k, L, bound, eta)
            losses.append(L)
            if k % record_every == 0 or k == steps:
                if function:  # ||w_r - w_r(0)||^2 = c_r . (K c_r) = c_r . (Z(0) - Z)_r
                    sq = xp.sum(C * (Z0 - Z), axis=0)
                    sq = xp.where(sq > 0.0, sq, zero)  # >= 0 in exact arithmetic
                else:
                    D = W - W0  # (m, d)
                    sq = xp.sum(D * D, axis=1)  # (m,)
                rec["steps"].append(k)
                rec["flips"].append(float(xp.sum(xp.astype(M != M0, X.dtype))) / (n * m))
                rec["rms"].append(math.sqrt(float(xp.mean(sq))))
                rec["max"].append(math.sqrt(float(xp.max(sq))))
                rec["fro"].append(math.sqrt(float(xp.sum(sq))))
                if progress is not None:
                    progress(k, steps)
            if k == steps:
                break
            Mf = xp.astype(M, X.dtype)  # (n, m), 1{w_r . x_i >= 0}
            if function:
                Q = ((coef * r)[:, None] * Mf) * a[None, :]  # (n, m), eta c diag(r) M diag(a)
                C = C + Q
                if (k + 1) % _fspace.REFRESH == 0:
                    Z = X @ (W0 - C.T @ X).T  # refresh: Z = X W^T from C
                else:
                    Z = Z - K @ Q
            else:
                B = (coef * r)[:, None] * X  # (n, d)
                W = W - a[:, None] * (Mf.T @ B)  # (m, d)
                Z = X @ W.T
    if function:
        W = W0 - C.T @ X  # (m, d)
    return net.TrainResult(
        loss=np.asarray(losses),
        W=to_numpy(W),
        a=to_numpy(a),
        u=to_numpy(u),
        recorded_steps=np.asarray(rec["steps"], dtype=int),
        flip_fraction=np.asarray(rec["flips"]),
        move_rms=np.asarray(rec["rms"]),
        move_max=np.asarray(rec["max"]),
        move_fro=np.asarray(rec["fro"]),
    )
