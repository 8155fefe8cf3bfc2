"""First-order optimizers, step-size schedules and clipping for any gradient function.

An optimizer is a small object with ``init(x) -> state`` and
``step(x, state, lr, f, grad) -> (x_new, state)``; :func:`minimize` drives it
with a schedule ``k -> lr``. The formulas follow Nesterov, *Lectures on Convex
Optimization* (2018), Sec. 2.2 (GD, accelerated method), Polyak (1964) for the
heavy ball, Armijo (1966) for backtracking and Kingma & Ba (2015), Alg. 1 for Adam.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared import _validate as v

Schedule = Callable[[int], float]


# --------------------------------------------------------------------------- optimizers
@dataclass(frozen=True)
class GD:
    """``x <- x - lr grad(x)``."""

    def init(self, x):
        return None

    def step(self, x, state, lr, f, grad):
        return x - lr * grad(x), state


@dataclass(frozen=True)
class HeavyBall:
    """Polyak momentum: ``x_{k+1} = x_k - lr grad(x_k) + beta (x_k - x_{k-1})``.

    ``0 <= beta < 1``.
    """

    beta: float

    def __post_init__(self):
        v.in_range("beta", self.beta, 0.0, 1.0, hi_open=True)

    def init(self, x):
        return np.zeros_like(x)  # velocity x_k - x_{k-1}

    def step(self, x, vel, lr, f, grad):
        vel = self.beta * vel - lr * grad(x)
        return x + vel, vel


@dataclass(frozen=True)
class Nesterov:
    """Nesterov: ``y_k = x_k + beta (x_k - x_{k-1})``, ``x_{k+1} = y_k - lr grad(y_k)``.

    ``0 <= beta < 1``.
    """

    beta: float

    def __post_init__(self):
        v.in_range("beta", self.beta, 0.0, 1.0, hi_open=True)

    def init(self, x):
        return np.zeros_like(x)

    def step(self, x, vel, lr, f, grad):
        y = x + self.beta * vel
        x_new = y - lr * grad(y)
        return x_new, x_new - x


@dataclass(frozen=True)
class Armijo:
    """Backtracking line search: start at ``lr`` and shrink by ``shrink`` until
    ``f(x - t g) <= f(x) - c t ||g||^2`` (Armijo 1966). Needs no Lipschitz constant.

    The accepted step of the last call is kept in the state (``state["t"]``).
    """

    c: float = 1e-4
    shrink: float = 0.5
    max_halvings: int = 60

    def __post_init__(self):
        v.in_range("c", self.c, 1e-12, 0.5)
        v.in_range("shrink", self.shrink, 1e-3, 0.999)
        v.positive("max_halvings", self.max_halvings, integer=True)

    def init(self, x):
        return {"t": None, "evals": 0}

    def step(self, x, state, lr, f, grad):
        g = grad(x)
        fx, gg, t = f(x), float(np.vdot(g, g)), lr
        evals = 1
        for _ in range(self.max_halvings):
            evals += 1
            if f(x - t * g) <= fx - self.c * t * gg:
                break
            t *= self.shrink
        else:
            raise ValueError(
                f"lr: Armijo backtracking found no decrease after {self.max_halvings} halvings "
                f"from lr={lr:g}; is grad consistent with f?"
            )
        return x - t * g, {"t": t, "evals": state["evals"] + evals}


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1) with bias correction."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        v.in_range("beta1", self.beta1, 0.0, 0.999999)
        v.in_range("beta2", self.beta2, 0.0, 0.999999999)
        v.positive("eps", self.eps)

    def init(self, x):
        return (np.zeros_like(x), np.zeros_like(x), 0)

    def step(self, x, state, lr, f, grad):
        m1, m2, t = state
        g = grad(x)
        t += 1
        m1 = self.beta1 * m1 + (1 - self.beta1) * g
        m2 = self.beta2 * m2 + (1 - self.beta2) * g * g
        m_hat = m1 / (1 - self.beta1**t)
        v_hat = m2 / (1 - self.beta2**t)
        return x - lr * m_hat / (np.sqrt(v_hat) + self.eps), (m1, m2, t)


# --------------------------------------------------------------------------- clipping
def clip_by_norm(g: np.ndarray, max_norm: float) -> np.ndarray:
    """Rescale ``g`` to norm ``max_norm`` if it is longer; a new array either way.

    ``g`` is a finite array of any shape. The norm is exact also where ``||g||^2``
    would overflow (entries near 1e154 and beyond).
    """
    g = v.array("g", g, ndim=None)
    v.positive("max_norm", max_norm)
    return _clip(g, max_norm)


def _clip(g: np.ndarray, max_norm: float) -> np.ndarray:
    """:func:`clip_by_norm` on a checked ``max_norm``; a non-finite ``g`` stays non-finite."""
    norm = _norm(g)
    return g * (max_norm / norm) if norm > max_norm else g.copy()


def _norm(g: np.ndarray) -> float:
    """``||g||_2``: ``np.linalg.norm`` where its sum of squares neither overflows nor underflows
    (the same numbers), else the norm of ``g`` scaled by a power of two (exact)."""
    with np.errstate(over="ignore", under="ignore"):
        norm = float(np.linalg.norm(g))
    info = np.finfo(g.dtype) if g.dtype.kind == "f" else np.finfo(float)
    if math.isfinite(norm) and norm >= math.sqrt(float(info.tiny)) / float(info.eps):
        return norm
    if not np.all(np.isfinite(g)) or g.size == 0:
        return norm
    return float(v.row_norms(g.reshape(1, -1))[0])


# --------------------------------------------------------------------------- objectives
def cached(
    fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
    *,
    trace: Callable[[np.ndarray, float, np.ndarray], object] | None = None,
) -> tuple[Callable[[np.ndarray], float], Callable[[np.ndarray], np.ndarray]]:
    """``f`` and ``grad`` from one function that computes both, evaluated once per distinct point.

    Optimizers ask for ``f(x)`` and ``grad(x)`` separately, often at the same
    point (:func:`minimize` records both at every iterate, :class:`Armijo` asks
    ``f`` where it already has the gradient), while a model computes both in
    one forward and backward pass. The pair keeps the last point it evaluated
    (a copy, compared by value), so the second half at the same point is free.

    A point with a non-finite entry (a diverged iterate) gives ``f = inf`` and
    an all-NaN gradient without calling ``fun_and_grad``, so a driver flags it
    (:func:`minimize` stops with ``diverged``) instead of the model raising.

    Parameters
    ----------
    fun_and_grad : callable ``x -> (f, g)``, ``f`` a float and ``g`` an array of
        the shape of ``x``.
    trace : callable ``trace(x, f, g)``, optional. Called once per new
        evaluation, non-finite points included, in the order of evaluation.
        ``x`` and ``g`` are read-only and stay valid after the call, so a trace
        may keep them.

    Returns
    -------
    f : callable ``x -> float``
    grad : callable ``x -> ndarray``, read-only (shared with the cache and
        with ``trace``).
    """
    if not callable(fun_and_grad):
        raise TypeError(
            f"fun_and_grad: expected a callable x -> (f, g), got {type(fun_and_grad).__name__}"
        )
    if trace is not None and not callable(trace):
        raise TypeError(f"trace: expected a callable (x, f, g) or None, got {type(trace).__name__}")
    last: dict = {}

    def evaluate(x):
        if "x" in last and np.array_equal(last["x"], x, equal_nan=True):
            return last
        x = np.array(x)  # a copy: the caller may overwrite its array
        x.setflags(write=False)
        if np.all(np.isfinite(x)):
            fx, g = fun_and_grad(x)
            g = np.asarray(g).view()  # read-only view: the caller's array stays writable
        else:
            fx, g = np.inf, np.full(x.shape, np.nan)
        g.setflags(write=False)
        last.update(x=x, f=fx, g=g)
        if trace is not None:
            trace(x, fx, g)
        return last

    return (lambda x: evaluate(x)["f"]), (lambda x: evaluate(x)["g"])


# --------------------------------------------------------------------------- driver
@dataclass
class OptimizeResult:
    """``x`` final iterate; ``f (steps+1,)``, ``grad_norm (steps+1,)`` and ``lr (steps,)`` per step;
    ``path`` the iterates ``(steps+1, *x.shape)`` when ``keep_path``; ``diverged`` if
    ``f`` became non-finite (the arrays then stop at that step)."""

    x: np.ndarray
    f: np.ndarray
    grad_norm: np.ndarray
    lr: np.ndarray
    path: np.ndarray | None
    diverged: bool
    state: object = None


def minimize(
    f: Callable[[np.ndarray], float],
    grad: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    *,
    optimizer,
    lr: float | Schedule,
    steps: int,
    clip: float | None = None,
    keep_path: bool = False,
) -> OptimizeResult:
    """Run ``steps`` iterations of ``optimizer`` from ``x0`` with step size ``lr`` (a number or
    a schedule ``k -> lr``); with ``clip``, every gradient is clipped to that norm first.

    Divergence (non-finite ``f``) stops the run and sets ``diverged``; it never
    returns silent NaNs. A schedule step that is not a finite number ``> 0`` is a
    ``ValueError`` naming the step ``k`` and the value (a negative step climbs);
    so are an ``f`` that is not a real scalar, a ``grad`` of another shape than
    ``x0``, and a non-finite ``f`` or ``grad`` at ``x0`` itself.
    """
    v.function("f", f)
    v.function("grad", grad)
    x = v.array("x0", x0, ndim=None, dtype=np.float64).copy()
    if isinstance(optimizer, type) or not all(
        callable(getattr(optimizer, name, None)) for name in ("init", "step")
    ):
        raise ValueError(
            "optimizer: expected an optimizer instance with init and step methods "
            f"(e.g. optim.GD()), got {optimizer!r}"
        )
    v.positive("steps", steps, integer=True, allow_zero=True)
    schedule = lr if callable(lr) else constant(lr)
    if clip is not None:
        v.positive("clip", clip)
    # grad(x_k) is evaluated once per step: the optimizer's call at the current
    # iterate reuses the value just recorded (other points, e.g. Nesterov's
    # look-ahead, are evaluated afresh). Matched by identity, which is free; an
    # objective that computes f and grad together shares them with `cached`
    cache = {"x": None, "g": None}

    def g_fn(z):
        g = cache["g"] if z is cache["x"] else grad(z)
        return _clip(g, clip) if clip is not None else g

    state = optimizer.init(x)
    fs, gn, lrs, path = [], [], [], [x.copy()] if keep_path else None
    diverged = False
    for k in range(steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            fk = _f_value(f(x), k)
            gk = _grad_value(grad(x), x.shape, k)
            gnk = _norm(gk)
        if k == 0 and not (math.isfinite(fk) and math.isfinite(gnk)):
            name, value = ("f", fk) if not math.isfinite(fk) else ("grad", f"norm {gnk}")
            raise ValueError(f"{name}: expected a finite value at x0, got {value}")
        fs.append(fk)
        gn.append(gnk)
        if not (math.isfinite(fk) and math.isfinite(gnk)):
            diverged = True
            break
        if k == steps:
            break
        cache["x"], cache["g"] = x, gk
        lr_k = _step_size(k, schedule(k))
        lrs.append(lr_k)
        with np.errstate(over="ignore", invalid="ignore"):
            x, state = optimizer.step(x, state, lr_k, f, g_fn)
        if keep_path:
            path.append(x.copy())
    return OptimizeResult(
        x=x,
        f=np.asarray(fs),
        grad_norm=np.asarray(gn),
        lr=np.asarray(lrs),
        path=np.asarray(path) if keep_path else None,
        diverged=diverged,
        state=state,
    )


def _f_value(value, k: int) -> float:
    """``f(x_k)`` as a float: a real scalar (a Python or numpy number, or a 0-d array)."""
    arr = np.asarray(value)
    if arr.ndim != 0 or arr.dtype.kind not in "iuf":
        raise ValueError(
            f"f: expected a real scalar, got {type(value).__name__} of shape {arr.shape} "
            f"and dtype {arr.dtype} at step k={k}"
        )
    return float(arr)


def _grad_value(value, shape: tuple, k: int) -> np.ndarray:
    """``grad(x_k)``: a real array of the shape of ``x0`` (finite or not: divergence is flagged)."""
    g = np.asarray(value)
    if g.shape != shape or g.dtype.kind not in "iuf":
        raise ValueError(
            f"grad: expected a real array of shape {shape} (that of x0), got shape {g.shape} "
            f"and dtype {g.dtype} at step k={k}"
        )
    return g


# --------------------------------------------------------------------------- schedules
# A schedule maps a step index k = 0, 1, ... to a finite step > 0. The ones below
# check their arguments when built and every value they give: a step that
# underflows to 0 (``gamma^k`` for large k) or is 0 by design (``cosine`` with
# ``lr_min = 0`` at ``k >= total``) raises instead of stalling or climbing.
def _step_size(k: int, value) -> float:
    """``value`` as the step of step ``k``: a finite real number ``> 0``, else a ``ValueError``."""
    arr = np.asarray(value)
    if arr.ndim != 0 or arr.dtype.kind not in "iuf":
        raise ValueError(f"lr: the schedule gave {value!r} at step k={k}; expected a real number")
    lr_k = float(arr)
    if not (math.isfinite(lr_k) and lr_k > 0):
        raise ValueError(
            f"lr: the schedule gave {lr_k!r} at step k={k}; expected a finite number > 0"
        )
    return lr_k


def _schedule(formula: Callable[[int], float]) -> Schedule:
    """``k -> formula(k)`` for a step index ``k >= 0``, its value checked by :func:`_step_size`."""

    def schedule(k: int) -> float:
        v.positive("k", k, integer=True, allow_zero=True)
        try:
            value = formula(k)
        except OverflowError as err:  # an index too large for a float, e.g. gamma ** 10**400
            raise ValueError(f"k: expected an index a float can hold, got {k!r}") from err
        return _step_size(k, value)

    return schedule


def constant(lr: float) -> Schedule:
    """``lr_k = lr``."""
    v.positive("lr", lr)
    return _schedule(lambda k: lr)


def step_decay(lr: float, *, drop: float, every: int) -> Schedule:
    """``lr_k = lr * drop^(k // every)``, ``0 < drop <= 1``."""
    v.positive("lr", lr)
    v.in_range("drop", drop, 0.0, 1.0, lo_open=True)
    v.positive("every", every, integer=True)
    return _schedule(lambda k: lr * drop ** (k // every))


def exponential(lr: float, *, gamma: float) -> Schedule:
    """``lr_k = lr * gamma^k``, ``0 < gamma <= 1``."""
    v.positive("lr", lr)
    v.in_range("gamma", gamma, 0.0, 1.0, lo_open=True)
    return _schedule(lambda k: lr * gamma**k)


def inverse_time(lr: float, *, decay: float) -> Schedule:
    """``lr_k = lr / (1 + decay * k)``, the classical ``1/k`` schedule."""
    v.positive("lr", lr)
    v.positive("decay", decay, allow_zero=True)
    return _schedule(lambda k: lr / (1.0 + decay * k))


def cosine(lr: float, *, total: int, lr_min: float = 0.0) -> Schedule:
    """``lr_k = lr_min + (lr - lr_min) (1 + cos(pi k / total)) / 2`` (Loshchilov & Hutter 2017).

    ``0 <= lr_min <= lr``; ``lr_k = lr_min`` for ``k >= total``, so with ``lr_min = 0``
    the schedule is for ``k < total`` only (a step of 0 is an error).
    """
    v.positive("lr", lr)
    v.positive("total", total, integer=True)
    v.positive("lr_min", lr_min, allow_zero=True)
    if lr_min > lr:
        raise ValueError(f"lr_min: expected at most lr={lr!r}, got {lr_min!r}")
    return _schedule(
        lambda k: lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * min(k, total) / total))
    )


def warmup(schedule: Schedule, *, steps: int) -> Schedule:
    """Linear warm-up over ``steps`` steps into ``schedule`` (Goyal et al. 2017)."""
    v.function("schedule", schedule)
    v.positive("steps", steps, integer=True)
    return _schedule(lambda k: _step_size(k, schedule(k)) * min(1.0, (k + 1) / steps))


def one_cycle(
    lr_max: float, *, total: int, pct_start: float = 0.3, div: float = 25.0, final_div: float = 1e4
) -> Schedule:
    """One-cycle policy (Smith & Topin 2019): cosine up from ``lr_max/div`` to ``lr_max`` over
    ``pct_start * total`` steps, then cosine down to ``lr_max/final_div`` (``div, final_div >= 1``),
    where it stays for ``k >= total``."""
    v.positive("lr_max", lr_max)
    v.positive("total", total, integer=True)
    v.in_range("pct_start", pct_start, 0.0, 1.0)
    v.in_range("div", div, 1.0, math.inf, hi_open=True)
    v.in_range("final_div", final_div, 1.0, math.inf, hi_open=True)
    up = max(1, round(pct_start * total))
    lo, end = lr_max / div, lr_max / final_div
    if not (lo > 0 and end > 0):
        raise ValueError(
            f"lr_max: lr_max / div = {lo!r} and lr_max / final_div = {end!r} must be > 0 "
            f"(they underflow for lr_max={lr_max!r})"
        )

    def anneal(a: float, b: float, frac: float) -> float:
        return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def formula(k: int) -> float:
        if k < up:
            return anneal(lo, lr_max, k / up)
        return anneal(lr_max, end, min(1.0, (k - up) / max(1, total - up)))

    return _schedule(formula)
