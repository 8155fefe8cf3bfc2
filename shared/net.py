"""The two-layer ReLU net of Du, Zhai, Poczos, Singh (ICLR 2019), with explicit gradients.

``u_i = f(W, a, x_i) = (scale / sqrt(m)) * sum_r a_r relu(w_r . x_i)``   (paper Eq. (1), scale = 1)

with ``W (m, d)``, ``a (m,)``, ``X (n, d)``, ``u (n,)``, and the loss
``L = 1/2 ||u - y||^2`` (no ``1/n``). Init: ``w_r ~ N(0, I_d)``,
``a_r ~ unif{-1, +1}``. The paper trains ``W`` only; ``train_a=True`` trains
both layers (its Sec. 3.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from shared import _validate as v
from shared.kernels import gram_h


def init_net(
    d: int,
    m: int,
    *,
    rng: np.random.Generator,
    antisymmetric: bool = False,
    dtype=np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """Random init ``w_r ~ N(0, I_d)``, ``a_r ~ unif{-1, +1}`` (Du et al. 2019, Sec. 2).

    With ``antisymmetric=True`` (``m`` even) the second half of the neurons
    copies the first half with ``a`` negated, so ``u(0) = 0`` exactly while
    ``H(0)`` keeps the law of a width-``m`` net (Arora et al. 2019, Sec. 4
    use a small init for the same purpose).

    Returns
    -------
    W : (m, d) ndarray
    a : (m,) ndarray
    """
    v.positive("d", d, integer=True)
    v.positive("m", m, integer=True)
    v.rng("rng", rng)
    if antisymmetric:
        if m % 2:
            raise ValueError(f"m: expected an even width for antisymmetric init, got {m}")
        W_half = rng.standard_normal((m // 2, d))
        a_half = rng.choice([-1.0, 1.0], size=m // 2)
        W, a = np.vstack([W_half, W_half]), np.concatenate([a_half, -a_half])
    else:
        W = rng.standard_normal((m, d))
        a = rng.choice([-1.0, 1.0], size=m)
    return W.astype(dtype, copy=False), a.astype(dtype, copy=False)


def _check_net(X, W, a):
    X = v.array("X", X, ndim=2)
    W = v.array("W", W, ndim=2, dtype=X.dtype, shape=(None, X.shape[1]))
    a = v.array("a", a, ndim=1, dtype=X.dtype, shape=(W.shape[0],))
    return X, W, a


def predict(X: np.ndarray, W: np.ndarray, a: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
    """Predictions ``u (n,)`` of the net on ``X (n, d)``."""
    X, W, a = _check_net(X, W, a)
    v.positive("scale", scale)
    Z = X @ W.T  # (n, m)
    return np.maximum(Z, 0.0, out=Z) @ a * (scale / np.sqrt(W.shape[0]))


def loss(u: np.ndarray, y: np.ndarray) -> float:
    """``L = 1/2 ||u - y||^2`` (Du et al. 2019, Eq. (2): a sum, no ``1/n``)."""
    r = np.asarray(u) - np.asarray(y)
    return 0.5 * float(r @ r)


def gradients(
    X: np.ndarray,
    y: np.ndarray,
    W: np.ndarray,
    a: np.ndarray,
    *,
    scale: float = 1.0,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Loss and explicit gradients with respect to ``W`` and ``a``.

    ``dL/dw_r = (scale / sqrt(m)) sum_i (u_i - y_i) a_r 1{w_r.x_i >= 0} x_i``   (paper Eq. (4))
    ``dL/da_r = (scale / sqrt(m)) sum_i (u_i - y_i) relu(w_r.x_i)``

    Returns
    -------
    L : float
    grad_W : (m, d) ndarray
    grad_a : (m,) ndarray
    u : (n,) ndarray, the predictions at ``(W, a)``.
    """
    X, W, a = _check_net(X, W, a)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],))
    v.positive("scale", scale)
    return _step_quantities(X, y, W, a, scale / np.sqrt(W.shape[0]), need_grad_a=True)


def _step_quantities(X, y, W, a, c, *, need_grad_a):
    """Forward and backward pass on validated inputs; ``c = scale / sqrt(m)``."""
    Z = X @ W.T  # (n, m), pre-activations
    mask = Z >= 0  # (n, m), activation pattern 1{w_r.x_i >= 0}
    R = np.multiply(Z, mask, out=Z)  # (n, m), relu(Z) in place
    u = (R @ a) * c  # (n,)
    r = u - y  # (n,), residual
    L = 0.5 * float(r @ r)
    grad_a = (R.T @ r) * c if need_grad_a else None  # (m,)
    M = np.multiply(mask, r[:, None], out=R)  # (n, m), 1{.} * r_i
    grad_W = M.T @ X  # (m, d)
    grad_W *= (a * c)[:, None]
    return L, grad_W, grad_a, u


def jacobian_W(X: np.ndarray, W: np.ndarray, a: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
    """Jacobian of ``u`` with respect to ``W``, flattened: ``J (n, m * d)``.

    ``du_i / dw_r = (scale / sqrt(m)) a_r 1{w_r.x_i >= 0} x_i``; for ``scale = 1``,
    ``J J^T = H(W)`` because ``a_r^2 = 1``. Memory ``O(n m d)``: for tests and
    small nets only.
    """
    X, W, a = _check_net(X, W, a)
    n, m = X.shape[0], W.shape[0]
    mask = (X @ W.T >= 0).astype(X.dtype)  # (n, m)
    J = (mask * a)[:, :, None] * X[:, None, :]  # (n, m, d)
    return J.reshape(n, -1) * (scale / np.sqrt(m))


@dataclass
class TrainResult:
    """What :func:`train` records.

    ``loss`` has one entry per step, ``k = 0..steps`` (fewer if it diverged).
    Traces listed in ``recorded_steps`` are taken every ``record_every`` steps
    and at the last step:

    - ``flip_fraction``: fraction of the ``m * n`` pairs ``(r, i)`` whose
      pattern ``1{w_r(k).x_i >= 0}`` differs from step 0 (Du et al. Lemma 3.2;
      divided by ``m * n``, not ``m * d``).
    - ``move_rms`` / ``move_max``: RMS and max over neurons of ``||w_r(k) - w_r(0)||``.
    - ``move_fro``: ``||W(k) - W(0)||_F``.
    - ``lambda_min_H``: ``lambda_min(H(W(k)))`` (only if ``track_kernel``).
    """

    loss: np.ndarray
    W: np.ndarray
    a: np.ndarray
    u: np.ndarray
    recorded_steps: np.ndarray
    flip_fraction: np.ndarray
    move_rms: np.ndarray
    move_max: np.ndarray
    move_fro: np.ndarray
    lambda_min_H: np.ndarray | None = None
    diverged: bool = False
    diverged_step: int | None = None
    extras: dict = field(default_factory=dict)


def train(
    X: np.ndarray,
    y: np.ndarray,
    W0: np.ndarray,
    a0: np.ndarray,
    *,
    eta: float,
    steps: int,
    train_a: bool = False,
    scale: float = 1.0,
    record_every: int = 1,
    track_kernel: bool = False,
    on_divergence: str = "raise",
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Full-batch gradient descent ``W(k+1) = W(k) - eta dL/dW`` (Du et al. 2019, Eq. (6)).

    Parameters
    ----------
    X : (n, d) ndarray; y : (n,) ndarray; W0 : (m, d) ndarray; a0 : (m,) ndarray
        Not modified.
    eta : float > 0, the step size.
    steps : int >= 0, number of GD steps.
    train_a : also update the output layer ``a`` (both layers trained).
    scale : output scale of the net (1 is the paper's model).
    record_every : record the traces every this many steps (their cost is an
        ``(n, m)`` comparison, an ``(m, d)`` norm and, with ``track_kernel``, an
        ``H(W)`` build and eigensolve; the step itself costs two ``(n, m, d)``
        matrix products).
    track_kernel : record ``lambda_min(H(W(k)))`` at each recorded step.
    on_divergence : ``"raise"`` (a ``ValueError`` naming the step and the
        stability limit ``2 / lambda_max(H(0))``) or ``"flag"`` (stop and return
        with ``diverged=True``) when the loss becomes non-finite.
    progress : called as ``progress(k, steps)`` after each recorded step.
    """
    X, W0, a0 = _check_net(X, W0, a0)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],))
    v.positive("eta", eta)
    v.positive("steps", steps, integer=True, allow_zero=True)
    v.positive("scale", scale)
    v.positive("record_every", record_every, integer=True)
    if on_divergence not in ("raise", "flag"):
        raise ValueError(f"on_divergence: expected 'raise' or 'flag', got {on_divergence!r}")

    m = W0.shape[0]
    c = scale / np.sqrt(m)
    W, a = W0.copy(), a0.copy()
    mask0 = X @ W0.T >= 0  # (n, m)
    losses = np.empty(steps + 1)
    rec_steps, flips, rms, mx, fro, lam = [], [], [], [], [], []

    def record(k: int) -> None:
        D = W - W0  # (m, d)
        per_neuron = np.sqrt(np.einsum("md,md->m", D, D))  # (m,)
        rec_steps.append(k)
        flips.append(np.count_nonzero((X @ W.T >= 0) != mask0) / mask0.size)
        rms.append(float(np.sqrt(np.mean(per_neuron**2))))
        mx.append(float(per_neuron.max()))
        fro.append(float(np.linalg.norm(D)))
        if track_kernel:
            lam.append(float(np.linalg.eigvalsh(gram_h(X, W))[0]))
        if progress is not None:
            progress(k, steps)

    diverged_step = None
    for k in range(steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            L, gW, ga, u = _step_quantities(X, y, W, a, c, need_grad_a=train_a)
        losses[k] = L
        if not np.isfinite(L):
            diverged_step = k
            break
        if k % record_every == 0 or k == steps:
            record(k)
        if k == steps:
            break
        W -= eta * gW
        if train_a:
            a -= eta * ga

    if diverged_step is not None:
        if on_divergence == "raise":
            lam_max = float(np.linalg.eigvalsh(gram_h(X, W0))[-1]) * scale**2
            raise ValueError(
                f"eta: the loss became non-finite at step {diverged_step}; eta={eta:g} "
                f"exceeds the stability limit 2/lambda_max(H(0)) = {2.0 / lam_max:g}"
            )
        losses = losses[:diverged_step + 1]

    return TrainResult(
        loss=losses,
        W=W,
        a=a,
        u=u,
        recorded_steps=np.asarray(rec_steps),
        flip_fraction=np.asarray(flips),
        move_rms=np.asarray(rms),
        move_max=np.asarray(mx),
        move_fro=np.asarray(fro),
        lambda_min_H=np.asarray(lam) if track_kernel else None,
        diverged=diverged_step is not None,
        diverged_step=diverged_step,
    )
