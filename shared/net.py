"""The two-layer ReLU net of Du, Zhai, Poczos, Singh (ICLR 2019), with explicit gradients.

``u_i = f(W, a, x_i) = (scale / sqrt(m)) * sum_r a_r relu(w_r . x_i)``   (paper Eq. (1), scale = 1)

with ``W (m, d)``, ``a (m,)``, ``X (n, d)``, ``u (n,)``, and the loss
``L = 1/2 ||u - y||^2`` (no ``1/n``). Init: ``w_r ~ N(0, I_d)``,
``a_r ~ unif{-1, +1}``. The paper trains ``W`` only; ``train_a=True`` trains
both layers (its Sec. 3.2).

A GD step costs two matrix products of ``n * m * d`` multiply-adds each,
``Z = X W^T`` and ``M^T B`` with ``M = 1{Z >= 0}`` and
``B = eta c (u - y) * X``: ``eta``, ``c = scale / sqrt(m)`` and the residuals
are folded into the small ``(n, d)`` factor and ``a`` into the ``(m, d)``
result, so no ``(n, m)`` array is scaled. :mod:`shared._engine` makes the
elementwise work cache-sized and shares it between threads (:func:`train`'s
``block`` and ``threads``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from shared import _engine as _step
from shared import _validate as v
from shared import optim
from shared.kernels import gram_g, gram_h


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
    copies the first half with ``a`` negated, so ``u(0) = 0`` (exactly in exact
    arithmetic, to rounding, ~1e-16, in floating point). ``H(0)`` is then the
    kernel of the ``m / 2`` distinct neurons, so it fluctuates like that of a
    width-``m/2`` net (Arora et al. 2019, Sec. 4 use a small init for the same
    purpose).

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


def _coef(scale: float, m: int) -> float:
    """``scale / sqrt(m)`` as a Python float, so float32 arrays stay float32 (NEP 50)."""
    return float(scale) / float(np.sqrt(m))


def predict(X: np.ndarray, W: np.ndarray, a: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
    """Predictions ``u (n,)`` of the net on ``X (n, d)``."""
    X, W, a = _check_net(X, W, a)
    v.positive("scale", scale)
    Z = X @ W.T  # (n, m)
    u = np.maximum(Z, 0.0, out=Z) @ a  # (n,)
    u *= _coef(scale, W.shape[0])
    return u


def loss(u: np.ndarray, y: np.ndarray) -> float:
    """``L = 1/2 ||u - y||^2`` (Du et al. 2019, Eq. (2): a sum, no ``1/n``)."""
    u = v.array("u", u, ndim=1)
    y = v.array("y", y, ndim=1, shape=u.shape)
    r = u - y
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
    return _step_quantities(X, y, W, a, _coef(scale, W.shape[0]), need_grad_a=True)


def objective(
    X: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    *,
    scale: float = 1.0,
    trace: Callable[[np.ndarray, float, np.ndarray], object] | None = None,
):
    """``f(w)`` and ``grad(w)`` of ``L(W)`` as functions of the flat ``w = vec(W) (m * d,)``.

    For the optimizers of :mod:`shared.optim`, which see parameters as one vector.
    ``a`` is fixed. One forward/backward pass per distinct ``w`` (``minimize`` asks
    for ``f`` and ``grad`` at the same point; :func:`shared.optim.cached`); a
    non-finite ``w`` (a diverged run) gives ``f = inf`` and a NaN gradient instead
    of raising, so the driver can flag it. ``trace(w, f, g)`` is called once per
    new evaluation (see :func:`shared.optim.cached`).

    Returns
    -------
    f : callable ``(m * d,) -> float``
    grad : callable ``(m * d,) -> (m * d,) ndarray``, read-only.
    """
    X = v.array("X", X, ndim=2)
    a = v.array("a", a, ndim=1, dtype=X.dtype)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],))
    shape = (a.shape[0], X.shape[1])  # (m, d)

    def fun_and_grad(w):
        L, grad_W, _, _ = gradients(X, y, w.reshape(shape), a, scale=scale)
        return L, grad_W.ravel()

    return optim.cached(fun_and_grad, trace=trace)


def _step_quantities(X, y, W, a, c, *, need_grad_a):
    """Forward and backward pass on validated inputs, on this thread; ``c = scale / sqrt(m)``.

    Returns ``(L, grad_W, grad_a, u)`` as :func:`gradients` does (``grad_a`` is
    ``None`` unless ``need_grad_a``).
    """
    c = float(c)
    ws = _step.Workspace(X.shape[0], X.shape[1], W.shape[0], X.dtype)
    u = _step.forward(X, W, a, c, ws).copy()  # (n,)
    r = u - y  # (n,), residual
    L = 0.5 * float(r @ r)
    grad_W = np.empty_like(W)  # (m, d)
    grad_a = np.empty_like(a) if need_grad_a else None  # (m,)
    _step.backward(X, r, W, a, ws, coef=c, out=grad_W, grad_a=grad_a, c=c)
    return L, grad_W, grad_a, u


def jacobian_W(X: np.ndarray, W: np.ndarray, a: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
    """Jacobian of ``u`` with respect to ``W``, flattened: ``J (n, m * d)``.

    ``du_i / dw_r = (scale / sqrt(m)) a_r 1{w_r.x_i >= 0} x_i``; for ``scale = 1``,
    ``J J^T = H(W)`` because ``a_r^2 = 1``. Memory ``O(n m d)``: for tests and
    small nets only.
    """
    X, W, a = _check_net(X, W, a)
    v.positive("scale", scale)
    n, m = X.shape[0], W.shape[0]
    mask = (X @ W.T >= 0).astype(X.dtype)  # (n, m)
    J = (mask * a)[:, :, None] * X[:, None, :]  # (n, m, d)
    J *= _coef(scale, m)
    return J.reshape(n, -1)


# --------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """What :func:`train` records.

    ``loss`` has one entry per step, ``k = 0..steps``. With ``tol`` it stops at
    ``k = stopped_step``, the first step with ``L(k) <= tol L(0)`` (``None`` if
    no step met it); when ``train``'s ``callback`` returns a truthy value at a
    recorded step, it stops there with ``stopped_by_callback = True``. After a
    divergence it stops at the last finite value, ``k = diverged_step - 1``, and
    ``W``, ``a``, ``u`` are the iterate of that step (never non-finite numbers).
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
    stopped_step: int | None = None
    stopped_by_callback: bool = False
    extras: dict = field(default_factory=dict)


class _Recorder:
    """The traces of :class:`TrainResult`, from the step's own activation pattern.

    A record visits the blocks of the step on the step's threads, with buffers
    allocated once: per block, the pattern is compared with step 0's into a
    bool scratch and the moves ``||w_r(k) - w_r(0)||^2`` are summed row by row.
    """

    def __init__(self, X, W0, ws: _step.Workspace, *, track_kernel: bool):
        self.X, self.W0, self.ws, self.track_kernel = X, W0, ws, track_kernel
        self.mask0 = ws.mask.copy()  # pattern at step 0, filled by the first forward pass
        self._diff = [np.empty(ws.n * ws.width, dtype=bool) for _ in ws.parts]
        self._D = np.empty_like(W0)  # (m, d), W(k) - W(0)
        self._sq = np.empty(W0.shape[0], dtype=W0.dtype)  # (m,), ||w_r(k) - w_r(0)||^2
        self.steps, self.flips, self.rms, self.max, self.fro, self.lam = [], [], [], [], [], []

    def __call__(self, k: int, W: np.ndarray) -> None:
        ws, n = self.ws, self.ws.n

        def work(j, part):
            changed = 0
            for i in part:
                s, e = ws.blocks[i]
                diff = self._diff[j][: n * (e - s)].reshape(n, e - s)
                changed += np.count_nonzero(
                    np.not_equal(ws.pattern(s, e), ws.pattern(s, e, self.mask0), out=diff)
                )
                D = np.subtract(W[s:e], self.W0[s:e], out=self._D[s:e])
                np.einsum("md,md->m", D, D, out=self._sq[s:e])
            return changed

        flipped = sum(ws.run(work))
        sq = self._sq
        self.steps.append(k)
        self.flips.append(flipped / self.mask0.size)
        self.rms.append(float(np.sqrt(np.mean(sq))))
        self.max.append(float(np.sqrt(sq.max())))
        self.fro.append(float(np.sqrt(sq.sum())))
        if self.track_kernel:
            with ws.full_blas():
                self.lam.append(float(np.linalg.eigvalsh(gram_h(self.X, W))[0]))


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
    tol: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    callback: Callable[[int, np.ndarray, np.ndarray, np.ndarray], object] | None = None,
    block: int | None = None,
    threads: int | None = None,
) -> TrainResult:
    """Full-batch gradient descent ``W(k+1) = W(k) - eta dL/dW`` (Du et al. 2019, Eq. (6)).

    Parameters
    ----------
    X : (n, d) ndarray; y : (n,) ndarray; W0 : (m, d) ndarray; a0 : (m,) ndarray
        Not modified. The dtype of ``X`` (float32 or float64) is kept throughout.
    eta : float > 0, the step size.
    steps : int >= 0, number of GD steps.
    train_a : also update the output layer ``a`` (both layers trained).
    scale : output scale of the net (1 is the paper's model).
    record_every : record the traces every this many steps. A record reuses the
        step's activation pattern and costs one ``(n, m)`` byte comparison and
        an ``(m, d)`` norm (about ``1/d`` and ``1/n`` of the step's products);
        with ``track_kernel`` also an ``H(W)`` build and eigensolve.
    track_kernel : record ``lambda_min(H(W(k)))`` at each recorded step.
    on_divergence : ``"raise"`` (a ``ValueError`` naming the step and the
        stability limit ``2 / lambda_max`` of the kernel at step 0) or ``"flag"``
        (stop and return with ``diverged=True``) when the loss becomes non-finite.
    tol : stop after the first step ``k`` with ``L(k) <= tol L(0)``, recorded
        there (``stopped_step = k``); ``None`` runs all ``steps``.
    progress : called as ``progress(k, steps)`` after each recorded step.
    callback : called as ``callback(k, W, a, u)`` at each recorded step, after
        ``progress``, with the iterate of step ``k``: ``W (m, d)``, ``a (m,)`` and
        its predictions ``u (n,)`` (scipy's ``callback`` of ``minimize``). The
        arrays are read-only views of the run's buffers, valid during the call
        only: copy what you keep. It runs with the caller's BLAS threads. A
        truthy return stops the run after step ``k`` (``stopped_by_callback``).
    block : neurons per block of the step (default: about ``2^18 / n``, see
        :func:`shared._step.blocks`). The blocks fix the order of every sum, so results
        depend on ``block`` at the rounding level and never on ``threads``.
    threads : threads that share the blocks of each step, each running its BLAS
        calls on one core (default: as many as the BLAS may use, so
        ``OMP_NUM_THREADS=1`` gives a single-threaded run). With more than one
        block the BLAS of the whole process is held at one thread per call
        while the run lasts, so the numbers are the same for every ``threads``
        and every BLAS thread setting.
    """
    X, W0, a0 = _check_net(X, W0, a0)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],))
    v.positive("eta", eta)
    v.positive("steps", steps, integer=True, allow_zero=True)
    v.positive("scale", scale)
    v.positive("record_every", record_every, integer=True)
    if tol is not None:
        v.positive("tol", tol)
    if block is not None:
        v.positive("block", block, integer=True)
    if threads is not None:
        v.positive("threads", threads, integer=True)
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback: expected a callable (k, W, a, u) or None, got {type(callback).__name__}"
        )
    if on_divergence not in ("raise", "flag"):
        raise ValueError(f"on_divergence: expected 'raise' or 'flag', got {on_divergence!r}")

    n, d = X.shape
    m = W0.shape[0]
    c = _coef(scale, m)
    # two buffers per trained array: W(k+1) is written next to W(k), so the last
    # finite iterate survives a divergence without a copy per step
    W, W_next = W0.copy(), np.empty_like(W0)
    a, a_next = a0.copy(), (np.empty_like(a0) if train_a else None)
    grad_a = np.empty_like(a0) if train_a else None
    losses = np.empty(steps + 1)
    diverged_step = stopped_step = None
    stopped_by_callback = False
    threads = _step.blas_threads() if threads is None else threads
    with _step.Workspace(n, d, m, X.dtype, block=block, threads=threads) as ws:
        with np.errstate(over="ignore", invalid="ignore"):
            u = _step.forward(X, W, a, c, ws)  # (n,), pattern in ws.mask
        for k in range(steps + 1):
            with np.errstate(over="ignore", invalid="ignore"):
                r = u - y  # (n,)
                L = 0.5 * float(r @ r)
            if not np.isfinite(L):
                if k == 0:
                    raise ValueError(
                        f"W0: the loss at step 0 is non-finite ({L}); the inputs overflow "
                        f"{X.dtype} before any step is taken"
                    )
                diverged_step = k
                break
            losses[k] = L
            u_prev = u.copy()
            if k == 0:
                rec = _Recorder(X, W0, ws, track_kernel=track_kernel)
            if tol is not None and L <= tol * losses[0]:
                stopped_step = k
            if k % record_every == 0 or k == steps or stopped_step is not None:
                rec(k, W)
                if progress is not None:
                    progress(k, steps)
                if callback is not None:
                    with ws.full_blas():
                        stopped_by_callback = bool(callback(k, *_read_only(W, a, u)))
            if k == steps or stopped_step is not None or stopped_by_callback:
                break
            with np.errstate(over="ignore", invalid="ignore"):
                u = _step.descend(
                    X, r, W, a, ws, eta=eta, c=c, W_next=W_next, a_next=a_next, grad_a=grad_a
                )  # u(k+1), pattern of W(k+1) in ws.mask
            W, W_next = W_next, W
            if train_a:
                a, a_next = a_next, a

    if diverged_step is not None:
        if on_divergence == "raise":
            lam_max = _lambda_max_kernel(X, W0, train_a) * scale**2
            raise ValueError(
                f"eta: the loss became non-finite at step {diverged_step}; eta={eta:g} "
                f"exceeds the stability limit 2/lambda_max = {2.0 / lam_max:g} of the kernel "
                f"at step 0 ({'H(0) + G(0)' if train_a else 'H(0)'})"
            )
        losses = losses[:diverged_step]
        W, a = W_next, (a_next if train_a else a)  # roll back to the last finite iterate
    else:
        losses = losses[: k + 1]  # k = steps, or the step that met tol
    return TrainResult(
        loss=losses,
        W=W,
        a=a,
        u=u_prev,
        recorded_steps=np.asarray(rec.steps, dtype=int),
        flip_fraction=np.asarray(rec.flips),
        move_rms=np.asarray(rec.rms),
        move_max=np.asarray(rec.max),
        move_fro=np.asarray(rec.fro),
        lambda_min_H=np.asarray(rec.lam) if track_kernel else None,
        diverged=diverged_step is not None,
        diverged_step=diverged_step,
        stopped_step=stopped_step,
        stopped_by_callback=stopped_by_callback,
    )


def _read_only(*arrays: np.ndarray) -> list[np.ndarray]:
    """Views of ``arrays`` that cannot be written through (the buffers stay writable)."""
    views = [A.view() for A in arrays]
    for A in views:
        A.setflags(write=False)
    return views


def _lambda_max_kernel(X, W0, train_a: bool) -> float:
    """``lambda_max`` of the step-0 kernel: ``H(0)``, plus ``G(0)`` if ``a`` trains."""
    K = gram_h(X, W0)
    if train_a:
        K += gram_g(X, W0)
    return float(np.linalg.eigvalsh(K)[-1])
