"""The two-layer ReLU net of Du, Zhai, Poczos, Singh (ICLR 2019, arXiv 1810.02054).

Read top to bottom, this module follows the set-up of the paper:

- the model ``u_i = f(W, a, x_i) = (scale / sqrt(m)) sum_r a_r relu(w_r . x_i)``
  (Eq. (1), ``scale = 1``), with ``W (m, d)``, ``a (m,)``, ``X (n, d)``,
  ``u (n,)``; init ``w_r ~ N(0, I_d)``, ``a_r ~ unif{-1, +1}``
  (:func:`init_net`, :func:`predict`);
- its loss ``L = 1/2 ||u - y||^2``, a sum with no ``1/n`` (Eq. (2), :func:`loss`);
- its explicit gradients (Eq. (4), :func:`gradients`, :func:`jacobian_W`,
  :func:`objective`);
- gradient descent ``W(k+1) = W(k) - eta dL/dW`` (Eq. (6)), first as a plain
  loop of a few lines (:func:`gd_reference`), then as :func:`train`, which
  checks its inputs, hands the loop to the engine and returns a
  :class:`TrainResult` with the traces of Lemma 3.2.

The paper trains ``W`` only; ``train_a=True`` trains both layers (its Sec. 3.2).
The engine, :mod:`shared._engine`, computes the same GD step as
:func:`gd_reference` in two matrix products, ``Z = X W^T`` and ``M^T B`` with
``M = 1{Z >= 0}`` and ``B = eta c (u - y) * X`` (``c = scale / sqrt(m)``), over
cache-sized neuron blocks shared between threads (:func:`train`'s ``block`` and
``threads``); it changes only the order of the sums. When ``n`` is below about
``2 d``, :mod:`shared._fspace` carries the step in function space instead, with
one ``(n, n) @ (n, m)`` product (:func:`train`'s ``step``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from shared import _engine, _fspace, optim
from shared import _validate as v
from shared.kernels import gram_g, gram_h


# --------------------------------------------------------------------------- the model
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
    dtype = v.float_dtype("dtype", dtype)
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


def _check_net(X, W, a, *, names=("W", "a")):
    """``X (n, d)``, ``W (m, d)``, ``a (m,)`` validated, in the dtype of ``X``; ``n, d, m >= 1``."""
    X = v.array("X", X, ndim=2, nonempty=True)
    W = v.array(names[0], W, ndim=2, dtype=X.dtype, shape=(None, X.shape[1]), nonempty=True)
    a = v.array(names[1], a, ndim=1, dtype=X.dtype, shape=(W.shape[0],), nonempty=True)
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


# --------------------------------------------------------------------------- the loss
def loss(u: np.ndarray, y: np.ndarray) -> float:
    """``L = 1/2 ||u - y||^2`` (Du et al. 2019, Eq. (2): a sum, no ``1/n``)."""
    u = v.array("u", u, ndim=1, nonempty=True)
    y = v.array("y", y, ndim=1, shape=u.shape, nonempty=True)
    r = u - y
    with np.errstate(over="ignore"):
        L = 0.5 * float(r @ r)
    if not np.isfinite(L):
        raise ValueError(
            f"u: the loss 1/2 ||u - y||^2 overflows {u.dtype} (largest |u_i - y_i| = "
            f"{float(np.max(np.abs(r))):.3g})"
        )
    return L


# --------------------------------------------------------------------------- explicit gradients
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
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],), nonempty=True)
    v.positive("scale", scale)
    c = _coef(scale, W.shape[0])
    ws = _engine.Workspace(X.shape[0], X.shape[1], W.shape[0], X.dtype)
    u = _engine.forward(X, W, a, c, ws).copy()  # (n,)
    r = u - y  # (n,), residual
    grad_W, grad_a = np.empty_like(W), np.empty_like(a)  # (m, d), (m,)
    _engine.backward(X, r, W, a, ws, _engine.BothLayers(coef=c, c=c, grad_a=grad_a), out=grad_W)
    return 0.5 * float(r @ r), grad_W, grad_a, u


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
    X = v.array("X", X, ndim=2, nonempty=True)
    a = v.array("a", a, ndim=1, dtype=X.dtype, nonempty=True)
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],), nonempty=True)
    shape = (a.shape[0], X.shape[1])  # (m, d)

    def fun_and_grad(w):
        L, grad_W, _, _ = gradients(X, y, w.reshape(shape), a, scale=scale)
        return L, grad_W.ravel()

    return optim.cached(fun_and_grad, trace=trace)


# --------------------------------------------------------------------------- GD, plainly
def gd_reference(
    X: np.ndarray,
    y: np.ndarray,
    W0: np.ndarray,
    a0: np.ndarray,
    *,
    eta: float,
    steps: int,
    train_a: bool = False,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-batch GD written out in the paper's notation: what :func:`train` computes, plainly.

    Each step is the forward pass (Eq. (1)), the residual and loss (Eq. (2)),
    the gradients (Eq. (4)) and the update ``W(k+1) = W(k) - eta dL/dW`` (Eq. (6);
    also ``a(k+1) = a(k) - eta dL/da`` with ``train_a``). No blocks, no threads,
    no records and no divergence check: :func:`train` is tested against it.

    Parameters
    ----------
    X : (n, d) ndarray; y : (n,) ndarray; W0 : (m, d) ndarray; a0 : (m,) ndarray
    eta : float > 0; steps : int >= 0; train_a : bool; scale : float > 0

    Returns
    -------
    losses : (steps + 1,) ndarray, ``L(k)`` for ``k = 0..steps``.
    W : (m, d) ndarray, ``W(steps)``.
    a : (m,) ndarray, ``a(steps)`` (``a0`` unless ``train_a``).
    """
    X, W, a = _check_net(X, W0, a0, names=("W0", "a0"))
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],), nonempty=True)
    v.positive("eta", eta)
    v.positive("steps", steps, integer=True, allow_zero=True)
    v.positive("scale", scale)
    c = _coef(scale, W.shape[0])  # scale / sqrt(m)
    losses = []
    for k in range(steps + 1):
        Z = X @ W.T  # (n, m), pre-activations w_r . x_i
        u = c * (np.maximum(Z, 0.0) @ a)  # (n,), Eq. (1)
        r = u - y  # (n,), residual
        losses.append(0.5 * float(r @ r))  # Eq. (2)
        if k == steps:
            break
        M = (Z >= 0).astype(X.dtype)  # (n, m), 1{w_r . x_i >= 0}
        grad_W = c * a[:, None] * (M.T @ (r[:, None] * X))  # (m, d), Eq. (4)
        grad_a = c * (np.maximum(Z, 0.0).T @ r)  # (m,), dL/da_r
        W = W - eta * grad_W  # Eq. (6)
        if train_a:
            a = a - eta * grad_a
    return np.asarray(losses), W, a


# --------------------------------------------------------------------------- GD, fast
STEPS = ("auto", "weights", "function")  # train's step: chosen by cost, or forced


@dataclass
class TrainResult:
    """What :func:`train` records.

    ``loss`` has one entry per step, ``k = 0..steps``. With ``tol`` it stops at
    ``k = stopped_step``, the first step with ``L(k) <= tol L(0)`` (``None`` if
    no step met it); when ``train``'s ``callback`` returns a truthy value at a
    recorded step, it stops there with ``stopped_by_callback = True``. After a
    divergence (see :func:`train`) it stops at the step before,
    ``k = diverged_step - 1``, and ``W``, ``a``, ``u`` are the iterate of that
    step (never non-finite numbers). Traces listed in ``recorded_steps`` are
    taken every ``record_every`` steps and at the last step:

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
    step: str = "auto",
) -> TrainResult:
    """Full-batch gradient descent ``W(k+1) = W(k) - eta dL/dW`` (Du et al. 2019, Eq. (6)).

    The numbers are those of :func:`gd_reference` up to the order of the sums
    (the engine's blocks); the run records the traces of :class:`TrainResult`.

    Divergence: the run has diverged at the first step ``k`` whose loss is
    non-finite or exceeds

        ``L_div = max(L(0), ||y||^2 / 2) / eps^2``

    (``eps`` the machine epsilon of the dtype of ``X``: ``L_div`` is about
    ``2e31 L(0)`` in float64 and ``7e13 L(0)`` in float32). Past it
    ``||u(k) - y|| > max(||u(0) - y||, ||y||) / eps``: the labels are below the
    rounding error of the residual ``u - y``, so each step is, to rounding, a
    step on ``1/2 ||u||^2`` with no labels at all, and the run is no longer
    fitting ``y``. (No loss level can make divergence certain in exact
    arithmetic: ``u`` is 1-homogeneous in ``W``, so the label-free iteration
    has no scale, and a spike may fall back from any height.) Runs that come
    back stay far below ``L_div``: in the catapult phase
    (``2 < eta lambda_max(H(0)) < ~4``, Lewkowycz et al. 2020) the loss peaks
    at up to ``~1e3 L(0)`` before it converges, and runs at larger steps that
    stall at a finite loss peak at up to ``~4e5 L(0)`` (experiments/catapult,
    full mode). A run far above the stability limit is named within a few
    dozen steps, long before its loss would overflow.

    Parameters
    ----------
    X : (n, d) ndarray; y : (n,) ndarray; W0 : (m, d) ndarray; a0 : (m,) ndarray
        Not modified; ``n, d, m >= 1``. The dtype of ``X`` (float32 or float64)
        is kept throughout.
    eta : float > 0, the step size.
    steps : int >= 0, number of GD steps.
    train_a : also update the output layer ``a`` (both layers trained).
    scale : output scale of the net (1 is the paper's model).
    record_every : record the traces every this many steps. A record reuses the
        step's activation pattern and costs one ``(n, m)`` byte comparison and
        an ``(m, d)`` norm (about ``1/d`` and ``1/n`` of the step's products);
        with ``track_kernel`` also an ``H(W)`` build and eigensolve.
    track_kernel : record ``lambda_min(H(W(k)))`` at each recorded step.
    on_divergence : ``"raise"`` (a ``ValueError`` naming the step, its loss and
        the stability limit ``2 / lambda_max`` of the kernel at step 0) or
        ``"flag"`` (stop and return with ``diverged=True``) when the run
        diverges (see above).
    tol : stop after the first step ``k`` with ``L(k) <= tol L(0)``, recorded
        there (``stopped_step = k``); ``None`` runs all ``steps``.
    progress : called as ``progress(k, steps)`` after each recorded step.
    callback : called as ``callback(k, W, a, u)`` at each recorded step, after
        ``progress``, with the iterate of step ``k``: ``W (m, d)``, ``a (m,)`` and
        its predictions ``u (n,)`` (the ``callback`` of ``scipy.optimize.minimize``).
        The arrays are read-only views of the run's buffers, valid during the
        call only: copy what you keep. It runs with the caller's BLAS threads.
        A truthy return stops the run after step ``k`` (``stopped_by_callback``).
    block : neurons per block of the step (default: about ``2^18 / n``, see
        :func:`shared._engine.blocks`). The blocks fix the order of every sum, so
        results depend on ``block`` at the rounding level and never on ``threads``.
    threads : threads that share the blocks of each step, each running its BLAS
        calls on one core (default: as many as the BLAS may use, so
        ``OMP_NUM_THREADS=1`` gives a single-threaded run). With more than one
        block the BLAS of the whole process is held at one thread per call
        while the run lasts, so the numbers are the same for every ``threads``
        and every BLAS thread setting.
    step : ``"weights"``, ``"function"`` or ``"auto"`` (default). The weight-space
        step computes ``Z = X W^T`` and ``M^T B``, two products of ``n d m``
        multiply-adds. The function-space step (:mod:`shared._fspace`) carries
        the pre-activations instead: ``Z(k+1) = Z(k) - K Q`` with ``K = X X^T``
        and ``Q = eta c diag(u - y) M diag(a)``, one product of ``n^2 m``, and
        ``W = W(0) - (sum_k Q(k))^T X`` only when asked (the callback, the end);
        it is cheaper when ``n`` is below about ``2 d``, and holds ``4 n m``
        numbers. Both layers train in either (``dL/da = c relu(Z)^T (u - y)``
        needs only ``Z``). ``"auto"`` picks the cheaper by the cost model of
        :func:`shared._fspace.cost`, which counts the records and the callback
        asked for. The two agree to rounding (different order of the sums), so
        the choice never changes a result beyond rounding.
    """
    X, W0, a0 = _check_net(X, W0, a0, names=("W0", "a0"))
    y = v.array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],), nonempty=True)
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
    for name, fn in (("progress", progress), ("callback", callback)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name}: expected a callable or None, got {type(fn).__name__}")
    if on_divergence not in ("raise", "flag"):
        raise ValueError(f"on_divergence: expected 'raise' or 'flag', got {on_divergence!r}")
    if not isinstance(step, str) or step not in STEPS:
        raise ValueError(f"step: expected one of {', '.join(map(repr, STEPS))}, got {step!r}")
    if step == "auto":
        step = _fspace.choose(
            n=X.shape[0],
            d=X.shape[1],
            m=W0.shape[0],
            steps=steps,
            record_every=record_every,
            train_a=train_a,
            track_kernel=track_kernel,
            callback=callback is not None,
        )

    eps, y_loss = float(np.finfo(X.dtype).eps), 0.5 * float(y @ y)

    def loss_bound(L0: float) -> float:
        return max(L0, y_loss) / eps**2  # L_div of the docstring

    run = _engine.gd(
        X,
        y,
        W0,
        a0,
        c=_coef(scale, W0.shape[0]),
        eta=eta,
        steps=steps,
        train_a=train_a,
        record_every=record_every,
        track_kernel=track_kernel,
        tol=tol,
        loss_bound=loss_bound,
        progress=progress,
        callback=callback,
        block=block,
        threads=threads,
        step=step,
    )
    k = run.diverged_step
    if k == 0:
        raise ValueError(
            f"W0: the loss at step 0 is non-finite ({run.diverged_loss}); the inputs overflow "
            f"{X.dtype} before any step is taken"
        )
    if k is not None and on_divergence == "raise":
        L0 = float(run.losses[0])
        lam_max = _lambda_max_kernel(X, W0, train_a) * scale**2
        why = (
            "is non-finite"
            if not math.isfinite(run.diverged_loss)
            else f"exceeds L_div = max(L(0), ||y||^2/2) / eps^2 = {loss_bound(L0):.3g}"
        )
        raise ValueError(
            f"eta: the loss diverged at step {k}: L({k}) = {run.diverged_loss:.3g} {why} "
            f"(L(0) = {L0:.3g}); eta={eta:g} against the stability limit "
            f"2/lambda_max = {2.0 / lam_max:g} of the kernel at step 0 "
            f"({'H(0) + G(0)' if train_a else 'H(0)'})"
        )
    rec = run.recorder
    return TrainResult(
        loss=run.losses,
        W=run.W,
        a=run.a,
        u=run.u,
        recorded_steps=np.asarray(rec.steps, dtype=int),
        flip_fraction=np.asarray(rec.flips),
        move_rms=np.asarray(rec.rms),
        move_max=np.asarray(rec.max),
        move_fro=np.asarray(rec.fro),
        lambda_min_H=np.asarray(rec.lam) if track_kernel else None,
        diverged=k is not None,
        diverged_step=k,
        stopped_step=run.stopped_step,
        stopped_by_callback=run.stopped_by_callback,
    )


def _lambda_max_kernel(X, W0, train_a: bool) -> float:
    """``lambda_max`` of the step-0 kernel: ``H(0)``, plus ``G(0)`` if ``a`` trains."""
    K = gram_h(X, W0)
    if train_a:
        K += gram_g(X, W0)
    return float(np.linalg.eigvalsh(K)[-1])
