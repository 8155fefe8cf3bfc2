"""mse_vs_cross_entropy: why a saturated sigmoid stalls the squared loss but not cross-entropy.

For a sigmoid output ``p = sigma(z)`` and a label ``y in {0, 1}``, the squared
loss ``1/2 (p - y)^2`` has ``dL/dz = (p - y) p (1 - p)``, which vanishes like
``e^{-|z|}`` when the prediction is confidently wrong, while cross-entropy
``-y log p - (1 - y) log(1 - p)`` has ``dL/dz = p - y``, which tends to ``-1``.
The experiment measures both derivatives across ``z`` (closed form, checked
against central differences), fits the decay rate of the squared-loss gradient,
and trains a logistic model from a confidently wrong start: cross-entropy leaves
the wrong side in a number of steps linear in the initial logit, the squared loss
in a number exponential in it.

Du et al. (ICLR 2019, Eq. (2)) use the squared loss on an *unbounded linear*
output, ``dL/du_i = u_i - y_i``: the gradient grows with the error and there is
no saturation, which is part of why their GD analysis needs no escape phase.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit

from shared import optim
from shared.plotting import subplots

# z0_grid: the initial wrong logits; gamma: the range every point's margin is drawn from (one
# draw per seed); paired: inputs in mirror pairs across w* (no drift orthogonal to w*, see
# margin_data)
CONFIG = {
    "quick": {
        "n": 200,
        "d": 5,
        "gamma": (0.4, 0.6),
        "lr": 1.0,
        "z0_grid": np.arange(2.0, 7.5, 1.0),
        "paired": True,
    },
    "full": {
        "n": 200,
        "d": 5,
        "gamma": (0.5, 0.5),
        "lr": 1.0,
        "z0_grid": np.arange(2.0, 10.5, 0.5),
        "paired": False,
    },
}


# --------------------------------------------------------------------------- per-logit losses
def mse_loss(z, y):
    """``1/2 (sigma(z) - y)^2``."""
    return 0.5 * (expit(z) - y) ** 2


def mse_grad(z, y):
    """``d/dz 1/2 (p - y)^2 = (p - y) p (1 - p)``; ``1 - p`` as ``sigma(-z)``, no cancellation."""
    return (expit(z) - y) * expit(z) * expit(-z)


def ce_loss(z, y):
    """``-y log p - (1 - y) log(1 - p)`` with ``log p = log_expit(z)``, exact for large ``|z|``."""
    return -y * log_expit(z) - (1 - y) * log_expit(-z)


def ce_grad(z, y):
    """``d/dz CE = p - y``."""
    return expit(z) - y


def central_difference(f, z, y, h=1e-5):
    """``(f(z + h) - f(z - h)) / (2 h)``, elementwise in ``z``."""
    return (f(z + h, y) - f(z - h, y)) / (2 * h)


# --------------------------------------------------------------------------- logistic model
def margin_data(n: int, d: int, *, gamma: float, paired: bool, rng: np.random.Generator):
    """Unit inputs at margin exactly ``gamma`` from a teacher ``w*`` (a unit vector).

    ``x_i = s_i gamma w* + sqrt(1 - gamma^2) xi_i`` with ``xi_i`` a random unit vector
    orthogonal to ``w*`` and ``s_i = +-1``; the label is ``y_i = (1 + s_i) / 2``.

    On the line ``w = -t w*`` every logit is ``-s_i t gamma``, and the gradient has a part
    ``~ sqrt(1 - gamma^2) (1/n) sum_i s_i xi_i`` orthogonal to ``w*`` (of size ``~ n^(-1/2)``)
    that pulls ``w`` off the line. ``paired=True`` draws ``n / 2`` points and adds each one's
    mirror image across ``w*`` (``xi -> -xi``, same ``s``): that sum is then zero, ``w`` stays on
    the line, and the escape is the one-dimensional dynamics of :func:`predicted_escape_steps`.

    Returns
    -------
    X : (n, d) ndarray; y : (n,) ndarray of 0/1; w_star : (d,) ndarray
    """
    if paired and n % 2:
        raise ValueError(f"n: expected an even number of points for paired=True, got {n}")
    w_star = rng.standard_normal(d)
    w_star /= np.linalg.norm(w_star)
    k = n // 2 if paired else n
    xi = rng.standard_normal((k, d))
    xi -= np.outer(xi @ w_star, w_star)  # (k, d), orthogonal to w*
    xi /= np.linalg.norm(xi, axis=1, keepdims=True)
    s = rng.choice([-1.0, 1.0], size=k)
    if paired:
        xi, s = np.concatenate([xi, -xi]), np.concatenate([s, s])  # (n, d), (n,)
    X = np.outer(s * gamma, w_star) + np.sqrt(1.0 - gamma**2) * xi  # (n, d)
    return X, (1.0 + s) / 2.0, w_star


def logistic_objective(X, y, loss: str, errors: list):
    """Mean loss ``(1/n) sum_i l(x_i . w, y_i)`` and its gradient ``X^T l'(z) / n``.

    One pass per distinct ``w``; the mean error ``mean_i |sigma(x_i . w) - y_i|`` at each
    new point is appended to ``errors``.
    """
    lf, gf = (mse_loss, mse_grad) if loss == "mse" else (ce_loss, ce_grad)
    n = X.shape[0]

    def fun_and_grad(w):  # called once per distinct w (optim.cached)
        z = X @ w  # (n,)
        errors.append(float(np.mean(np.abs(expit(z) - y))))
        return float(np.mean(lf(z, y))), X.T @ gf(z, y) / n

    return optim.cached(fun_and_grad)


def predicted_escape_steps(z0: float, *, lr: float, gamma: float, loss: str) -> float:
    """Gradient-flow time for the wrong logit ``-z`` to travel from ``-z0`` to ``0``, in steps.

    With every point at margin ``gamma`` and ``w = -t w*``, the logit magnitude
    ``z = t gamma`` obeys ``dz/dk = -lr gamma^2 g(z)``, with
    ``g = sigma(-z) sigma(z)^2`` for the squared loss and ``g = sigma(z)`` for
    cross-entropy (the derivatives above at a wrong logit). Hence
    ``k* = (1 / (lr gamma^2)) int_0^{z0} dz / g(z)``; for large ``z0`` this is
    ``~ e^{z0}`` (squared loss) and ``~ z0 + 1`` (cross-entropy).
    """
    z = np.linspace(0.0, z0, 4001)
    inv = 1.0 / (expit(-z) * expit(z) ** 2) if loss == "mse" else 1.0 / expit(z)
    return float(np.trapezoid(inv, z) / (lr * gamma**2))


def train_from_wrong_start(X, y, w_star, *, z0, gamma, lr, loss):
    """GD from ``w0 = -(z0 / gamma) w*`` (every logit at ``-z0``, on the wrong side).

    Returns the escape step and the mean error at every step. The escape step is where the
    mean error crosses 1/2, interpolated linearly between the last step above and the first
    below (a fractional step count, so that a prediction of a few steps is compared without
    the rounding of an integer count); the budget + 1 if it never crosses.
    """
    errors: list[float] = []
    f, g = logistic_objective(X, y, loss, errors)
    budget = int(1.3 * predicted_escape_steps(z0, lr=lr, gamma=gamma, loss=loss)) + 20
    optim.minimize(f, g, -(z0 / gamma) * w_star, optimizer=optim.GD(), lr=lr, steps=budget)
    err = np.asarray(errors)  # (budget + 1,)
    hit = np.flatnonzero(err < 0.5)
    if not hit.size:
        return float(len(err)), err
    k = int(hit[0])
    if k == 0:
        return 0.0, err
    return k - 1 + (err[k - 1] - 0.5) / (err[k - 1] - err[k]), err


# --------------------------------------------------------------------------- experiment
def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Gradients across the logit, then escape times from a saturated wrong start."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, lr, z0_grid = cfg["n"], cfg["d"], cfg["lr"], cfg["z0_grid"]
    rng = np.random.default_rng(seed)

    # %% Derivatives at a wrong prediction (label 1, logit z = -|z|), against finite differences
    absz = np.linspace(0.0, 30.0, 301)
    g_mse = mse_grad(-absz, 1.0)  # (301,), negative
    g_ce = ce_grad(-absz, 1.0)  # (301,), -> -1
    near = absz <= 8.0  # central differences of the loss resolve the gradient here
    fd_err = max(
        float(
            np.max(
                np.abs(central_difference(mse_loss, -absz[near], 1.0) - g_mse[near])
                / np.abs(g_mse[near])
            )
        ),
        float(
            np.max(
                np.abs(central_difference(ce_loss, -absz[near], 1.0) - g_ce[near])
                / np.abs(g_ce[near])
            )
        ),
    )
    tail = absz >= 4.0
    slope, _ = np.polyfit(absz[tail], np.log(np.abs(g_mse[tail])), 1)

    # %% Train: logistic regression from a confidently wrong start, with either loss
    gamma = float(rng.uniform(*cfg["gamma"]))  # the margin of this problem
    X, y, w_star = margin_data(n, d, gamma=gamma, paired=cfg["paired"], rng=rng)
    steps = {"mse": [], "ce": []}
    curves = {}
    total = 2 * len(z0_grid)
    for i, z0 in enumerate(z0_grid):
        for loss in ("ce", "mse"):
            k, err = train_from_wrong_start(X, y, w_star, z0=z0, gamma=gamma, lr=lr, loss=loss)
            steps[loss].append(k)
            if i == len(z0_grid) // 2:
                curves[loss] = err
            progress(2 * i + (loss == "mse") + 1, total, f"z0={z0:g} {loss}")

    # %% Measure: escape steps against the gradient-flow prediction, and their growth in z0
    s_mse, s_ce = np.asarray(steps["mse"], float), np.asarray(steps["ce"], float)
    pred_mse = np.array(
        [predicted_escape_steps(z, lr=lr, gamma=gamma, loss="mse") for z in z0_grid]
    )
    pred_ce = np.array([predicted_escape_steps(z, lr=lr, gamma=gamma, loss="ce") for z in z0_grid])
    big = z0_grid >= 4.0
    esc_slope, _ = np.polyfit(z0_grid[big], np.log(s_mse[big]), 1)
    pred_slope, _ = np.polyfit(z0_grid[big], np.log(pred_mse[big]), 1)

    return {
        "n": n,
        "d": d,
        "gamma": gamma,
        "lr": lr,
        "fd_max_rel_err": fd_err,
        "mse_grad_log_slope": float(slope),
        "ce_grad_abs_at_z30": float(abs(g_ce[-1])),
        "mse_over_ce_grad_at_z30": float(g_mse[-1] / g_ce[-1]),
        "z0_max": float(z0_grid[-1]),
        "escape_steps_ce_at_max": float(s_ce[-1]),
        "escape_steps_mse_at_max": float(s_mse[-1]),
        "escape_ratio_at_max": float(s_mse[-1] / s_ce[-1]),
        "escape_log_slope_mse": float(esc_slope),
        "escape_log_slope_pred": float(pred_slope),
        "escape_mse_over_pred_max_dev": float(np.max(np.abs(s_mse / pred_mse - 1.0))),
        "escape_ce_over_pred_max_dev": float(np.max(np.abs(s_ce / pred_ce - 1.0))),
        "abs_z": absz,
        "grad_mse": g_mse,
        "grad_ce": g_ce,
        "z0_grid": z0_grid,
        "escape_steps_mse": s_mse,
        "escape_steps_ce": s_ce,
        "pred_steps_mse": pred_mse,
        "pred_steps_ce": pred_ce,
        "curve_z0": float(z0_grid[len(z0_grid) // 2]),
        "curve_err_mse": curves["mse"],
        "curve_err_ce": curves["ce"],
    }


def plot(result: dict):
    """Gradient magnitudes, one escape curve, and escape steps against the initial logit."""
    fig, axes = subplots(1, 3, width=4.0, height=3.3)
    ax = axes[0]
    z = result["abs_z"]
    ax.semilogy(z, np.abs(result["grad_ce"]), label=r"cross-entropy $|p - y|$")
    ax.semilogy(z, np.abs(result["grad_mse"]), label=r"squared loss $|(p-y)p(1-p)|$")
    ax.semilogy(z, 1.0 + z, "k:", label=r"squared loss, linear output $|u - y|$")
    ax.semilogy(z, np.exp(-z), color="0.6", ls="--", lw=0.8, label=r"$e^{-|z|}$")
    ax.set(
        xlabel="|z|, logit on the wrong side (y = 1, z = -|z|)",
        ylabel="|dL/dz|",
        title=f"gradient at a wrong prediction (slope {result['mse_grad_log_slope']:.3f})",
    )
    ax.legend(loc="center right")

    ax = axes[1]
    for key, lab in (("curve_err_ce", "cross-entropy"), ("curve_err_mse", "squared loss")):
        err = result[key]
        ax.semilogx(np.arange(1, len(err) + 1), err, label=lab)
    ax.axhline(0.5, color="0.4", lw=0.8, ls=":")
    ax.set(
        xlabel="step k + 1",
        ylabel=r"mean $|p_i - y_i|$",
        title=rf"logistic GD from every logit at $-{result['curve_z0']:g}$",
    )
    ax.legend()

    ax = axes[2]
    z0 = result["z0_grid"]
    ax.semilogy(z0, result["escape_steps_mse"], "o", color="C1", label="squared loss, measured")
    ax.semilogy(
        z0, result["pred_steps_mse"], "-", color="C1", lw=0.9, label="gradient-flow prediction"
    )
    ax.semilogy(z0, result["escape_steps_ce"], "s", color="C0", label="cross-entropy, measured")
    ax.semilogy(z0, result["pred_steps_ce"], "-", color="C0", lw=0.9)
    ax.set(
        xlabel=r"initial wrong logit $z_0$",
        ylabel="steps to mean error < 1/2",
        title=f"escape time (MSE slope {result['escape_log_slope_mse']:.2f} per unit z0)",
    )
    ax.legend()
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
