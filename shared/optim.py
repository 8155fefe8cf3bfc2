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
    """Polyak momentum: ``x_{k+1} = x_k - lr grad(x_k) + beta (x_k - x_{k-1})``."""

    beta: float

    def __post_init__(self):
        v.in_range("beta", self.beta, 0.0, 1.0)

    def init(self, x):
        return np.zeros_like(x)  # velocity x_k - x_{k-1}

    def step(self, x, vel, lr, f, grad):
        vel = self.beta * vel - lr * grad(x)
        return x + vel, vel


@dataclass(frozen=True)
class Nesterov:
    """Nesterov: ``y_k = x_k + beta (x_k - x_{k-1})``, ``x_{k+1} = y_k - lr grad(y_k)``."""

    beta: float

    def __post_init__(self):
        v.in_range("beta", self.beta, 0.0, 1.0)

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
    """Rescale ``g`` to norm ``max_norm`` if it is longer; a new array either way."""
    v.positive("max_norm", max_norm)
    norm = float(np.linalg.norm(g))
    return g * (max_norm / norm) if norm > max_norm else g.copy()


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
    returns silent NaNs.
    """
    x = np.array(x0, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError("x0: expected finite values")
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
        return clip_by_norm(g, clip) if clip is not None else g

    state = optimizer.init(x)
    fs, gn, lrs, path = [], [], [], [x.copy()] if keep_path else None
    diverged = False
    for k in range(steps + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            fk = float(f(x))
            gk = grad(x)
            gnk = float(np.linalg.norm(gk))
        fs.append(fk)
        gn.append(gnk)
        if not (math.isfinite(fk) and math.isfinite(gnk)):
            diverged = True
            break
        if k == steps:
            break
        cache["x"], cache["g"] = x, gk
        lr_k = float(schedule(k))
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


# --------------------------------------------------------------------------- schedules
def constant(lr: float) -> Schedule:
    """``lr_k = lr``."""
    v.positive("lr", lr)
    return lambda k: lr


def step_decay(lr: float, *, drop: float, every: int) -> Schedule:
    """``lr_k = lr * drop^(k // every)``."""
    v.positive("lr", lr)
    v.in_range("drop", drop, 0.0, 1.0)
    v.positive("every", every, integer=True)
    return lambda k: lr * drop ** (k // every)


def exponential(lr: float, *, gamma: float) -> Schedule:
    """``lr_k = lr * gamma^k``."""
    v.positive("lr", lr)
    v.in_range("gamma", gamma, 0.0, 1.0)
    return lambda k: lr * gamma**k


def inverse_time(lr: float, *, decay: float) -> Schedule:
    """``lr_k = lr / (1 + decay * k)``, the classical ``1/k`` schedule."""
    v.positive("lr", lr)
    v.positive("decay", decay, allow_zero=True)
    return lambda k: lr / (1.0 + decay * k)


def cosine(lr: float, *, total: int, lr_min: float = 0.0) -> Schedule:
    """``lr_k = lr_min + (lr - lr_min) (1 + cos(pi k / total)) / 2`` (Loshchilov & Hutter 2017)."""
    v.positive("lr", lr)
    v.positive("total", total, integer=True)
    v.positive("lr_min", lr_min, allow_zero=True)
    return lambda k: (
        lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * min(k, total) / total))
    )


def warmup(schedule: Schedule, *, steps: int) -> Schedule:
    """Linear warm-up over ``steps`` steps into ``schedule`` (Goyal et al. 2017)."""
    v.positive("steps", steps, integer=True)
    return lambda k: schedule(k) * min(1.0, (k + 1) / steps)


def one_cycle(
    lr_max: float, *, total: int, pct_start: float = 0.3, div: float = 25.0, final_div: float = 1e4
) -> Schedule:
    """One-cycle policy (Smith & Topin 2019): cosine up from ``lr_max/div`` to ``lr_max`` over
    ``pct_start * total`` steps, then cosine down to ``lr_max/final_div``."""
    v.positive("lr_max", lr_max)
    v.positive("total", total, integer=True)
    v.in_range("pct_start", pct_start, 0.0, 1.0)
    v.positive("div", div)
    v.positive("final_div", final_div)
    up = max(1, round(pct_start * total))
    lo, end = lr_max / div, lr_max / final_div

    def anneal(a: float, b: float, frac: float) -> float:
        return b + (a - b) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def schedule(k: int) -> float:
        if k < up:
            return anneal(lo, lr_max, k / up)
        return anneal(lr_max, end, min(1.0, (k - up) / max(1, total - up)))

    return schedule
