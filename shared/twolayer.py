"""A two-layer net with a choice of activation and of output scaling, with explicit gradients.

``u_i = f(W, a, x_i) = c_m sum_r a_r sigma(w_r . x_i)``, with ``X (n, d)``, ``W (m, d)``,
``a (m,)``, ``u (n,)`` and the loss ``L = 1/2 ||u - y||^2`` (no ``1/n``, as in Du et al.
2019, Eq. (2)). Two output scalings:

- ``"ntk"``: ``c_m = m^(-1/2)``, the net of Du et al. (2019) and of the neural tangent kernel
  (Jacot et al. 2018). With ``sigma = relu`` it is :mod:`shared.net`'s net.
- ``"mean_field"``: ``c_m = 1/m``, the output an average over neurons, as in Mei, Montanari,
  Nguyen (2018) and Chizat and Bach (2018).

Activations: ``"relu"``, ``"tanh"`` and ``"erf"``. ``tanh`` and ``erf`` are smooth with
bounded derivatives of every order; ``erf``'s infinite-width kernels have closed forms
(Williams 1997), so :func:`ntk_inf` covers ``relu`` and ``erf``. Everything here is plain
numpy on ``(n, m)`` arrays, for the small nets of the experiments (:mod:`shared.net` is the
fast ReLU path). The matrix products are ``(n, m) x (m, d)`` with small ``n`` and ``d``, too
small for BLAS threads to pay, so the heavy functions hold the BLAS at one thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf
from threadpoolctl import threadpool_limits

from shared import _validate as v
from shared import kernels

SCALINGS = ("ntk", "mean_field")
_ERF_SLOPE = 2.0 / float(np.sqrt(np.pi))  # erf'(0)


def _relu(Z):
    return np.maximum(Z, 0.0), (Z >= 0.0).astype(Z.dtype)  # sigma'(0) = 1, as in shared.net


def _tanh(Z):
    S = np.tanh(Z)
    return S, 1.0 - S * S


def _erf(Z):
    return erf(Z), _ERF_SLOPE * np.exp(-(Z * Z))


# name -> Z |-> (sigma(Z), sigma'(Z))
ACTIVATIONS = {"relu": _relu, "tanh": _tanh, "erf": _erf}


def sigma(Z: np.ndarray, *, activation: str = "relu") -> tuple[np.ndarray, np.ndarray]:
    """The activation and its derivative, elementwise: ``(sigma(Z), sigma'(Z))``, each like ``Z``.

    ``relu``: ``(max(Z, 0), 1{Z >= 0})``; ``tanh``: ``(tanh Z, 1 - tanh^2 Z)``;
    ``erf``: ``(erf Z, (2 / sqrt(pi)) exp(-Z^2))``.
    """
    return _activation(activation)(np.asarray(Z))


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


def output_coef(m: int, scaling: str) -> float:
    """``c_m``: ``m^(-1/2)`` for ``"ntk"``, ``1/m`` for ``"mean_field"``."""
    v.positive("m", m, integer=True)
    if scaling not in SCALINGS:
        raise ValueError(f"scaling: expected one of {list(SCALINGS)}, got {scaling!r}")
    return 1.0 / float(np.sqrt(m)) if scaling == "ntk" else 1.0 / float(m)


def _check(X, W, a):
    X = v.array("X", X, ndim=2)
    W = v.array("W", W, ndim=2, dtype=X.dtype, shape=(None, X.shape[1]))
    a = v.array("a", a, ndim=1, dtype=X.dtype, shape=(W.shape[0],))
    return X, W, a


def _one_thread():
    return threadpool_limits(limits=1, user_api="blas")


def predict(X, W, a, *, activation: str = "relu", scaling: str = "ntk") -> np.ndarray:
    """Predictions ``u = c_m sigma(X W^T) a``, ``(n,)``."""
    X, W, a = _check(X, W, a)
    S, _ = _activation(activation)(X @ W.T)  # (n, m)
    return output_coef(W.shape[0], scaling) * (S @ a)


def _pass(X, y, W, a, act, c, *, need_grad_a: bool):
    """Forward and backward pass on validated inputs: ``(L, grad_W, grad_a, u)``."""
    S, Sp = act(X @ W.T)  # (n, m), sigma and sigma' of the pre-activations
    u = c * (S @ a)  # (n,)
    r = u - y  # (n,) residual
    Sp *= r[:, None]  # (n, m), r_i sigma'(w_r . x_i)
    grad_W = (Sp.T @ X) * (c * a)[:, None]  # (m, d)
    grad_a = c * (S.T @ r) if need_grad_a else None  # (m,)
    return 0.5 * float(r @ r), grad_W, grad_a, u


def gradients(X, y, W, a, *, activation: str = "relu", scaling: str = "ntk"):
    """Loss and explicit gradients with respect to ``W`` and ``a``.

    ``dL/dw_r = c_m a_r sum_i (u_i - y_i) sigma'(w_r . x_i) x_i`` and
    ``dL/da_r = c_m sum_i (u_i - y_i) sigma(w_r . x_i)`` (Du et al. 2019, Eq. (4) for
    ``relu`` with ``c_m = m^(-1/2)``; ``sigma'(0) = 1`` for ``relu``, as there).

    Returns
    -------
    L : float
    grad_W : (m, d) ndarray
    grad_a : (m,) ndarray
    u : (n,) ndarray, the predictions at ``(W, a)``.
    """
    X, W, a = _check(X, W, a)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],))
    c = output_coef(W.shape[0], scaling)
    return _pass(X, y, W, a, _activation(activation), c, need_grad_a=True)


def jvp(X, W, a, dW, da, *, activation: str = "relu", scaling: str = "ntk") -> np.ndarray:
    """Jacobian-vector product ``J (dW, da)``: the first-order change of ``u`` along ``(dW, da)``.

    ``c_m sum_r [a_r sigma'(w_r . x_i) (dw_r . x_i) + da_r sigma(w_r . x_i)]``, ``(n,)``. The
    linearised model of Lee et al. (2019, Sec. 2) is ``f_lin(theta) = f(theta0) +
    J(theta0) (theta - theta0)``.
    """
    X, W, a = _check(X, W, a)
    dW = v.array("dW", dW, ndim=2, dtype=X.dtype, shape=W.shape)
    da = v.array("da", da, ndim=1, dtype=X.dtype, shape=a.shape)
    c = output_coef(W.shape[0], scaling)
    with _one_thread():
        S, Sp = _activation(activation)(X @ W.T)  # (n, m)
        return c * ((Sp * (X @ dW.T)) @ a + S @ da)


def ntk(X, W, a, *, activation: str = "relu", scaling: str = "ntk", train_a: bool = True):
    """Empirical tangent kernel ``J J^T (n, n)`` of the trained parameters.

    ``c_m^2 [(X X^T) * (S' diag(a^2) S'^T) + S S^T]`` with ``S = sigma(X W^T)`` and
    ``S' = sigma'(X W^T)`` (``(n, m)``); the second term only if ``train_a``. GD on the
    loss moves the predictions as ``u(k+1) - u(k) ~= -eta J J^T (u(k) - y)``. For
    ``relu``, ``"ntk"`` and ``a_r = +-1`` the two terms are :func:`shared.kernels.gram_h`
    and :func:`shared.kernels.gram_g` (Du et al. 2019, Eq. (5) and Sec. 3.2).
    """
    X, W, a = _check(X, W, a)
    c = output_coef(W.shape[0], scaling)
    with _one_thread():
        S, Sp = _activation(activation)(X @ W.T)  # (n, m)
        Sp *= np.abs(a)  # |a_r| sigma'(w_r . x_i)
        K = (X @ X.T) * (Sp @ Sp.T)  # (n, n)
        if train_a:
            K += S @ S.T
    return c * c * K


def ntk_inf(X, *, activation: str = "relu", train_a: bool = True) -> np.ndarray:
    """Infinite-width kernel ``m J J^T`` at init (``"ntk"`` scaling, ``w ~ N(0, I)``, ``a = +-1``).

    ``H_inf_ij = x_i.x_j E[sigma'(w.x_i) sigma'(w.x_j)]`` plus, if ``train_a``,
    ``G_inf_ij = E[sigma(w.x_i) sigma(w.x_j)]``. ``relu``: :func:`shared.kernels.h_inf` and
    :func:`shared.kernels.g_inf`. ``erf``: with ``s_ij = x_i.x_j``, Gaussian integrals give
    ``E[erf' erf'] = (4/pi) / sqrt((1 + 2 s_ii)(1 + 2 s_jj) - 4 s_ij^2)`` and
    ``E[erf erf] = (2/pi) arcsin(2 s_ij / sqrt((1 + 2 s_ii)(1 + 2 s_jj)))`` (Williams 1997).
    ``tanh`` has no closed form and raises.
    """
    X = v.array("X", X, ndim=2)
    _activation(activation)
    if activation == "relu":
        return kernels.ntk_inf(X) if train_a else kernels.h_inf(X)
    if activation != "erf":
        raise ValueError(f"activation: closed forms exist for 'relu' and 'erf', got {activation!r}")
    s = X @ X.T  # (n, n)
    q = 1.0 + 2.0 * np.diag(s)  # (n,)
    qq = np.outer(q, q)  # (n, n)
    K = s * (4.0 / np.pi) / np.sqrt(qq - 4.0 * s * s)
    if train_a:
        K += (2.0 / np.pi) * np.arcsin(np.clip(2.0 * s / np.sqrt(qq), -1.0, 1.0))
    return K


@dataclass
class GDResult:
    """What :func:`train` returns.

    ``loss (steps + 1,)`` and predictions ``u (steps + 1, n)`` at every step; the final
    ``W (m, d)`` and ``a (m,)``.
    """

    loss: np.ndarray
    u: np.ndarray
    W: np.ndarray
    a: np.ndarray


def train(
    X,
    y,
    W0,
    a0,
    *,
    eta: float,
    steps: int,
    activation: str = "relu",
    scaling: str = "ntk",
    train_a: bool = False,
) -> GDResult:
    """Full-batch GD ``theta(k+1) = theta(k) - eta grad L(theta(k))`` (Du et al. 2019, Eq. (6)).

    ``theta = W``, or ``(W, a)`` with ``train_a``. The predictions of every step are kept,
    so residual trajectories can be compared with a kernel prediction. A non-finite loss
    raises a ``ValueError`` naming the step. ``W0`` and ``a0`` are not modified.
    """
    X, W0, a0 = _check(X, W0, a0)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],))
    v.positive("eta", eta)
    v.positive("steps", steps, integer=True, allow_zero=True)
    act = _activation(activation)
    c = output_coef(W0.shape[0], scaling)
    W, a = W0.copy(), a0.copy()
    loss = np.empty(steps + 1)
    U = np.empty((steps + 1, X.shape[0]))
    with _one_thread():
        for k in range(steps + 1):
            with np.errstate(over="ignore", invalid="ignore"):
                L, grad_W, grad_a, u = _pass(X, y, W, a, act, c, need_grad_a=train_a)
            if not np.isfinite(L):
                raise ValueError(f"eta: the loss became non-finite at step {k} with eta={eta:g}")
            loss[k], U[k] = L, u
            if k < steps:
                W -= eta * grad_W
                if train_a:
                    a -= eta * grad_a
    return GDResult(loss=loss, u=U, W=W, a=a)
