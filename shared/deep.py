"""A deep fully connected ReLU net in the NTK parameterisation, with explicit backprop.

``L`` hidden layers of width ``m`` (Arora, Du, Hu, Li, Salakhutdinov, Wang, NeurIPS 2019,
"On exact computation with an infinitely wide neural net", Sec. 3; Jacot, Gabriel,
Hongler 2018)::

    q_0 = x,   z_l = W_l q_{l-1},   q_l = sqrt(2 / m) relu(z_l)   (l = 1..L),   u = a . q_L

with ``W_1 (m, d)``, ``W_l (m, m)`` for ``l >= 2``, ``a (m,)``, every entry ``N(0, 1)``.
The factor ``sqrt(c_sigma / m)`` with ``c_sigma = 2 = 1 / E[relu(g)^2]`` keeps
``||q_l||^2`` near ``||x||^2`` at every depth. The first layer is not rescaled, so for unit
inputs ``z_1 ~ N(0, 1)`` as in Du, Zhai, Poczos, Singh (ICLR 2019): with ``L = 1`` the net is
``sqrt(2)`` times theirs (``a`` drawn Gaussian instead of ``+-1``), and its NTK is
``2 (H_inf + G_inf)`` in the notation of :mod:`shared.kernels`. Every layer trains; the loss
is ``1/2 ||u - y||^2``.

Parameters travel as a list ``params = [W_1, ..., W_L, a]``.
"""

from __future__ import annotations

import numpy as np

from shared import _validate as v


# --------------------------------------------------------------------------- the net
def init_deep(d: int, m: int, depth: int, *, rng: np.random.Generator) -> list[np.ndarray]:
    """Gaussian init ``W_l, a ~ N(0, 1)`` entrywise (NTK parameterisation, Jacot et al. 2018).

    Parameters
    ----------
    d : input dimension; m : width of every hidden layer; depth : number ``L >= 1`` of
        hidden layers (``L + 1`` weight layers).

    Returns
    -------
    params : list ``[W_1 (m, d), W_2 (m, m), ..., W_L (m, m), a (m,)]``
    """
    v.positive("d", d, integer=True)
    v.positive("m", m, integer=True)
    v.positive("depth", depth, integer=True)
    v.rng("rng", rng)
    params = [rng.standard_normal((m, d))]
    params += [rng.standard_normal((m, m)) for _ in range(depth - 1)]
    params.append(rng.standard_normal(m))
    return params


def _check(X, params) -> tuple[np.ndarray, list[np.ndarray]]:
    X = v.array("X", X, ndim=2)
    if not isinstance(params, list | tuple) or len(params) < 2:
        raise ValueError(
            f"params: expected a list [W_1, ..., W_L, a] of at least 2 arrays, got {params!r:.80}"
        )
    a = v.array("params[-1] (a)", params[-1], ndim=1, dtype=X.dtype)
    m = a.shape[0]
    Ws = [v.array("params[0] (W_1)", params[0], ndim=2, dtype=X.dtype, shape=(m, X.shape[1]))]
    for l, W in enumerate(params[1:-1], start=2):
        Ws.append(v.array(f"params[{l - 1}] (W_{l})", W, ndim=2, dtype=X.dtype, shape=(m, m)))
    return X, [*Ws, a]


def _forward(X, params):
    """Pre-activations ``Z_l (n, m)`` and features ``Q_l (n, m)``, ``Q_0 = X``; and ``u (n,)``."""
    *Ws, a = params
    c = np.sqrt(2.0 / a.shape[0])
    Q, Z = [X], []
    for W in Ws:
        Z.append(Q[-1] @ W.T)  # (n, m), z_l for every input
        Q.append(c * np.maximum(Z[-1], 0.0))  # (n, m), q_l
    return Z, Q, Q[-1] @ a


def _backward(Z, params):
    """Backprop vectors ``B_l = du/dz_l (n, m)`` for every input, ``l = 1..L``.

    ``B_L = sqrt(2/m) a * 1{z_L > 0}`` and ``B_{l-1} = sqrt(2/m) 1{z_{l-1} > 0} * (B_l W_l)``.
    """
    *Ws, a = params
    c = np.sqrt(2.0 / a.shape[0])
    B = [c * (Z[-1] > 0) * a]  # (n, m), du/dz_L
    for l in range(len(Ws) - 1, 0, -1):
        B.append(c * (Z[l - 1] > 0) * (B[-1] @ Ws[l]))  # (n, m), du/dz_l from du/dz_{l+1}
    return B[::-1]


def predict(X: np.ndarray, params) -> np.ndarray:
    """Predictions ``u (n,)`` of the deep net on ``X (n, d)``."""
    X, params = _check(X, params)
    return _forward(X, params)[2]


def gradients(X: np.ndarray, y: np.ndarray, params) -> tuple[float, list[np.ndarray], np.ndarray]:
    """Loss ``L = 1/2 ||u - y||^2`` and its gradient with respect to every layer, by backprop.

    ``dL/dW_l = sum_i r_i b_l(x_i) q_{l-1}(x_i)^T`` and ``dL/da = sum_i r_i q_L(x_i)``
    with ``r = u - y`` and ``b_l = du/dz_l`` (:func:`_backward`).

    Returns
    -------
    L : float
    grads : list of arrays shaped like ``params``
    u : (n,) ndarray
    """
    X, params = _check(X, params)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],))
    Z, Q, u = _forward(X, params)
    r = u - y  # (n,)
    B = _backward(Z, params)
    grads = [(Bl * r[:, None]).T @ Ql for Bl, Ql in zip(B, Q[:-1], strict=True)]  # (m, fan_in)
    grads.append(Q[-1].T @ r)  # (m,)
    return 0.5 * float(r @ r), grads, u


def ntk(X: np.ndarray, params) -> np.ndarray:
    """Empirical NTK ``Theta = J J^T (n, n)`` over all parameters, without forming ``J``.

    The Jacobian row of ``W_l`` for input ``i`` is the outer product ``b_l(x_i) q_{l-1}(x_i)^T``,
    so ``Theta = Q_L Q_L^T + sum_l (B_l B_l^T) * (Q_{l-1} Q_{l-1}^T)`` (``*`` elementwise):
    ``O(L n^2 m)`` work instead of the ``O(n^2 L m^2)`` of ``J J^T``.
    """
    X, params = _check(X, params)
    Z, Q, _ = _forward(X, params)
    B = _backward(Z, params)
    theta = Q[-1] @ Q[-1].T  # (n, n), the output layer a
    for Bl, Ql in zip(B, Q[:-1], strict=True):
        theta += (Bl @ Bl.T) * (Ql @ Ql.T)
    return theta


def train(
    X: np.ndarray, y: np.ndarray, params, *, eta: float, steps: int, tol: float | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Full-batch GD on every layer, ``theta(k+1) = theta(k) - eta grad L``.

    Parameters
    ----------
    X : (n, d) ndarray; y : (n,) ndarray; params : list, not modified.
    eta : step size; steps : number of steps.
    tol : stop after the first step with ``L(k) <= tol L(0)`` (``None``: run every step).

    Returns
    -------
    loss : (k + 1,) ndarray, ``L(0), ..., L(k)`` for the steps taken; a non-finite loss
        raises ``ValueError`` naming the step (``eta`` above the stability limit).
    params : list, the parameters after the last step.
    """
    X, params = _check(X, params)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],))
    v.positive("eta", eta)
    v.positive("steps", steps, integer=True, allow_zero=True)
    if tol is not None:
        v.positive("tol", tol)
    params = [p.copy() for p in params]
    loss = np.empty(steps + 1)
    for k in range(steps + 1):
        L, grads, _ = gradients(X, y, params)
        if not np.isfinite(L):
            raise ValueError(f"eta: the loss became non-finite at step {k} (eta={eta:g})")
        loss[k] = L
        if k == steps or (tol is not None and L <= tol * loss[0]):
            return loss[: k + 1], params
        for p, g in zip(params, grads, strict=True):
            p -= eta * g
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- infinite width
def _relu_step(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One layer of the ReLU recursion for ``c_sigma = 2`` (Cho & Saul 2009 arc-cosine kernels).

    With ``S`` the covariance of the pre-activations and ``t_ij`` the angle of
    ``cos t = S_ij / sqrt(S_ii S_jj)``:
    ``Sigma_ij = sqrt(S_ii S_jj) (sin t + (pi - t) cos t) / pi`` and
    ``Sigma_dot_ij = (pi - t) / pi``.
    """
    s = np.sqrt(np.diag(S))  # (n,)
    C = np.clip(S / np.outer(s, s), -1.0, 1.0)  # (n, n) cosines
    t = np.arccos(C)
    np.fill_diagonal(t, 0.0)
    sigma = np.outer(s, s) * (np.sqrt(1.0 - C * C) + (np.pi - t) * C) / np.pi
    np.fill_diagonal(sigma, s * s)
    return sigma, (np.pi - t) / np.pi


def ntk_inf(X: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Infinite-width NTK and NNGP kernel of the ``depth``-hidden-layer ReLU net above.

    The recursion of Jacot et al. (2018, Theorem 1) in the form of Arora et al. (2019b,
    Sec. 3), for ReLU with ``c_sigma = 2``: ``Sigma^(0) = X X^T`` and, for ``h = 1..L``,
    ``Sigma^(h) = c E[relu(u) relu(v)]``, ``Sigma_dot^(h) = c E[1{u > 0} 1{v > 0}]`` with
    ``(u, v)`` Gaussian of covariance ``Sigma^(h-1)`` (closed forms in :func:`_relu_step`);
    ``Theta^(0) = Sigma^(0)``, ``Theta^(h) = Theta^(h-1) * Sigma_dot^(h) + Sigma^(h)``.
    For unit inputs the diagonal is ``Theta_ii = L + 1``. With ``L = 1``,
    ``Theta = 2 (H_inf + G_inf)``.

    Returns
    -------
    theta : (n, n) ndarray, ``Theta^(L)``
    sigma : (n, n) ndarray, ``Sigma^(L)``, the kernel of the last hidden layer's features
    """
    X = v.array("X", X, ndim=2)
    v.nonzero_rows("X", X)
    v.positive("depth", depth, integer=True)
    sigma = X @ X.T  # (n, n), Sigma^(0)
    theta = sigma.copy()
    for _ in range(depth):
        sigma, sigma_dot = _relu_step(sigma)
        theta = theta * sigma_dot + sigma
    return theta, sigma
