"""Non-convex GD: the 1/K stationarity guarantee, plateaus at a saddle, and what escapes them.

Without convexity GD at ``1/L`` on an L-smooth ``f`` still decreases ``f`` by at least
``||grad f(x_k)||^2 / (2L)`` per step (descent lemma), so summing over ``k < K``,
``min_{k<K} ||grad f(x_k)||^2 <= 2 L (f(x_0) - f_inf) / K`` (Nesterov, *Lectures on Convex
Optimization*, 2018, Sec. 1.2.3, Eq. (1.2.22)). It is a guarantee of approximate
stationarity, not of a minimum. Checked on ``f(x) = sum_j log(1 + (b_j.x - c_j)^2) +
alpha sum_i (1 - cos(omega x_i))``, a smooth, many-welled function with a computable
``L = 2 ||B||_2^2 + alpha omega^2`` and ``f_inf >= 0``.

Near a strict saddle GD slows down. On ``f(x, y) = x^2/2 + y^4/4 - y^2/2`` (saddle at 0,
minima at ``(0, +-1)``) started at ``(1, y0)``, ``x`` decays like ``(1 - eta)^k`` while ``y``
grows only like ``(1 + eta)^k y0``: GD sits on a plateau of small gradient for
``~ ln(1/|y0|) / ln(1 + eta)`` steps, and forever if ``y0 = 0``. A small random perturbation
(perturbed GD, Jin, Ge, Netrapalli, Kakade, Jordan, ICML 2017) escapes after
``~ ln(1/r) / ln(1 + eta)`` steps, sooner for larger ``r``; heavy ball multiplies the unstable
direction by the larger root ``z`` of ``z^2 - (1 + eta + beta) z + beta = 0`` per step.

In the two-layer ReLU net of Du, Zhai, Poczos, Singh (ICLR 2019) none of this bites at large
width: the kernel ``H`` stays positive definite, so the loss obeys a Polyak-Lojasiewicz
inequality ``||grad L||^2 >= 2 lambda_min(H) L`` along the path and there is no plateau. This
experiment shows what the generic non-convex guarantee looks like when that structure is absent.
"""

from __future__ import annotations

import numpy as np

from shared import optim
from shared.plotting import subplots

CONFIG = {
    "quick": {
        "smooth": {"d": 20, "rows": 30, "alpha": 0.5, "omega": 3.0, "starts": 5, "steps": 2000},
        "saddle": {
            "eta": 0.1,
            "y0": np.geomspace(1e-5, 1e-15, 6),
            "radii": np.geomspace(1e-10, 1e-2, 5),
            "draws": 201,
            "beta": 0.9,
            "g_tol": 1e-2,
            "steps": 800,
        },
    },
    "full": {
        "smooth": {
            "d": 200,
            "rows": 300,
            "alpha": 0.5,
            "omega": 3.0,
            "starts": 20,
            "steps": 20000,
        },
        "saddle": {
            "eta": 0.1,
            "y0": np.geomspace(1e-5, 1e-30, 15),
            "radii": np.geomspace(1e-14, 1e-2, 13),
            "draws": 201,
            "beta": 0.9,
            "g_tol": 1e-2,
            "steps": 1000,
        },
    },
}


# --------------------------------------------------------------------------- smooth, many wells
def wells(cfg: dict, rng: np.random.Generator):
    """``f``, ``grad`` and ``L`` of ``sum_j log(1 + r_j^2) + alpha sum_i (1 - cos(omega x_i))``,
    ``r = B x - c`` with ``B (rows, d)``.

    ``d^2/dt^2 log(1 + t^2) = 2 (1 - t^2) / (1 + t^2)^2`` lies in ``[-1/4, 2]`` and
    ``d^2/dt^2 (1 - cos(omega t)) = omega^2 cos(omega t)``, so ``||Hess f|| <= 2 ||B||_2^2 +
    alpha omega^2 = L``; both terms are ``>= 0``, so ``f_inf >= 0``.
    """
    d, rows, alpha, omega = cfg["d"], cfg["rows"], cfg["alpha"], cfg["omega"]
    B = rng.standard_normal((rows, d)) / np.sqrt(d)  # (rows, d)
    c = 2.0 * rng.standard_normal(rows)  # (rows,)

    def f(x):
        r = B @ x - c  # (rows,)
        return float(np.sum(np.log1p(r**2)) + alpha * np.sum(1.0 - np.cos(omega * x)))

    def grad(x):
        r = B @ x - c
        return B.T @ (2.0 * r / (1.0 + r**2)) + alpha * omega * np.sin(omega * x)

    L = 2.0 * float(np.linalg.norm(B, 2)) ** 2 + alpha * omega**2
    return f, grad, L


def stationarity(cfg: dict, rng: np.random.Generator) -> dict:
    """GD at ``1/L`` from several starts: the ``1/K`` bound and the descent lemma at every step."""
    f, grad, L = wells(cfg, rng)
    K = np.arange(1, cfg["steps"] + 1)
    ratios, descent, curves = [], [], []
    for _ in range(cfg["starts"]):
        x0 = 3.0 * rng.standard_normal(cfg["d"])
        res = optim.minimize(f, grad, x0, optimizer=optim.GD(), lr=1.0 / L, steps=cfg["steps"])
        g2 = res.grad_norm**2  # (steps + 1,)
        best = np.minimum.accumulate(g2[:-1])  # (steps,) min_{k<K} ||grad f(x_k)||^2
        bound = 2.0 * L * (res.f[0] - 0.0) / K  # f_inf >= 0
        ratios.append(float(np.max(best / bound)))
        # descent lemma: f_k - f_{k+1} >= ||g_k||^2 / (2L), where that decrease is resolvable
        # in float64 (well above eps |f_k|; near a stationary point both sides are rounding)
        promised = g2[:-1] / (2.0 * L)
        ok = promised > 1e3 * np.finfo(float).eps * np.maximum(np.abs(res.f[:-1]), 1.0)
        descent.append(float(np.min((res.f[:-1] - res.f[1:])[ok] / promised[ok])))
        curves.append((best, bound))
    return {
        "smooth_L": L,
        "smooth_K": K,
        "smooth_curves": curves,
        "stationarity_ratio_max": max(ratios),
        "descent_margin_min": min(descent),
    }


# --------------------------------------------------------------------------- the saddle
def saddle_f(z):
    x, y = z
    return 0.5 * x**2 + 0.25 * y**4 - 0.5 * y**2


def saddle_grad(z):
    x, y = z
    return np.array([x, y**3 - y])


def escape_step(path: np.ndarray) -> float:
    """First ``k`` with ``|y_k| >= 1/2`` (half way from the saddle to a minimum), else ``inf``."""
    hit = np.flatnonzero(np.abs(path[:, 1]) >= 0.5)
    return float(hit[0]) if hit.size else np.inf


def escape_steps_batch(Z0: np.ndarray, *, eta: float, steps: int) -> np.ndarray:
    """GD on the saddle from every row of ``Z0 (B, 2)`` at once; the fractional escape step.

    ``x <- x - eta x``, ``y <- y - eta (y^3 - y)``, the same update as ``optim.GD`` on
    :func:`saddle_grad`, for ``B`` starts together. The escape step is where ``ln |y_k|``
    crosses ``ln(1/2)``, interpolated linearly between the two iterates around it (in the
    linear regime ``ln |y_k|`` grows by ``ln(1 + eta)`` per step, so the interpolation is
    exact up to the cubic term); ``inf`` where a start does not escape within ``steps``.
    """
    x, y = Z0[:, 0].copy(), Z0[:, 1].copy()  # (B,), (B,)
    out = np.full(x.shape, np.inf)
    ly = np.log(np.abs(y))  # (B,)
    for k in range(1, steps + 1):
        x, y = x - eta * x, y - eta * (y**3 - y)
        ly_new = np.log(np.abs(y))
        hit = np.isinf(out) & (ly_new >= np.log(0.5))
        out[hit] = k - 1 + (np.log(0.5) - ly[hit]) / (ly_new[hit] - ly[hit])
        ly = ly_new
    return out


def plateau_steps(path: np.ndarray, g_tol: float) -> int:
    """Number of iterates before the escape with ``||grad f|| < g_tol``: the time on the plateau
    (the gradient is small again at the minimum, which does not count)."""
    g = np.stack([path[:, 0], path[:, 1] ** 3 - path[:, 1]], axis=1)  # (k, 2)
    small = np.linalg.norm(g, axis=1) < g_tol
    return int(np.count_nonzero(small[: int(min(escape_step(path), path.shape[0]))]))


def saddle(cfg: dict, rng: np.random.Generator) -> dict:
    """Plateau length vs ``y0``, perturbed escape vs radius ``r``, and heavy ball vs GD."""
    eta, beta, steps, g_tol = cfg["eta"], cfg["beta"], cfg["steps"], cfg["g_tol"]

    def path(z0, optimizer, n=steps):
        return optim.minimize(
            saddle_f, saddle_grad, z0, optimizer=optimizer, lr=eta, steps=n, keep_path=True
        ).path

    # GD and heavy ball from (1, y0): escape and plateau steps vs ln(1/|y0|)
    y0 = np.asarray(cfg["y0"])
    runs = {"GD": optim.GD(), "heavy ball": optim.HeavyBall(beta)}
    esc = {k: [] for k in runs}
    plat, example = [], None
    for i, y in enumerate(y0):
        for name, opt in runs.items():
            P = path(np.array([1.0, y]), opt)
            esc[name].append(escape_step(P))
            if name == "GD":
                plat.append(plateau_steps(P, g_tol))
                example = P if i == len(y0) // 2 else example
    logs = np.log(1.0 / y0)
    slope_gd = float(np.polyfit(logs, esc["GD"], 1)[0])
    slope_hb = float(np.polyfit(logs, esc["heavy ball"], 1)[0])
    slope_plat = float(np.polyfit(logs, plat, 1)[0])
    z_hb = 0.5 * ((1 + eta + beta) + np.sqrt((1 + eta + beta) ** 2 - 4 * beta))
    pred_gd, pred_hb = 1.0 / np.log(1.0 + eta), 1.0 / np.log(z_hb)

    # y0 = 0: GD never leaves the saddle's stable manifold
    stuck = path(np.array([1.0, 0.0]), optim.GD())
    # perturbed GD: at the first iterate with ||grad|| < g_tol add xi, uniform in a disc of radius
    # r. The same draws (directions and radial fractions) serve every r (common random numbers),
    # so the medians differ by the effect of r, not by which kicks were drawn.
    k_plateau = plateau_entry(stuck, g_tol)
    z_plateau = stuck[k_plateau]
    u = rng.standard_normal((cfg["draws"], 2))  # (draws, 2)
    unit_disc = (
        np.sqrt(rng.uniform(size=(cfg["draws"], 1))) * u / np.linalg.norm(u, axis=1)[:, None]
    )
    med, spread = [], []
    for r in cfg["radii"]:
        times = escape_steps_batch(z_plateau + r * unit_disc, eta=eta, steps=steps)  # (draws,)
        med.append(float(np.median(times)))
        spread.append(np.percentile(times, [25, 75]))
    med = np.asarray(med)
    log_inv_r = np.log(1.0 / np.asarray(cfg["radii"]))
    slope_pert = float(np.polyfit(log_inv_r, med, 1)[0])
    # the fall of the median between neighbouring radii, in units of the predicted fall
    gap_ratio = -np.diff(med) / (-np.diff(log_inv_r) * pred_gd)
    stuck_dist = float(np.linalg.norm(stuck[-1]))  # distance to the saddle at the end
    return {
        "saddle_y0": y0,
        "escape_gd": np.asarray(esc["GD"]),
        "escape_hb": np.asarray(esc["heavy ball"]),
        "plateau_gd": np.asarray(plat),
        "saddle_example": example,
        "saddle_g_tol": g_tol,
        "plateau_slope_ratio": slope_plat / pred_gd,
        "escape_slope_ratio_gd": slope_gd / pred_gd,
        "escape_slope_ratio_hb": slope_hb / pred_hb,
        "hb_over_gd_escape_max": float(np.max(np.asarray(esc["heavy ball"]) / esc["GD"])),
        "hb_growth_factor": float(z_hb),
        "stuck_escaped": bool(np.isfinite(escape_step(stuck))),
        "stuck_final_grad": float(np.linalg.norm(saddle_grad(stuck[-1]))),
        "log10_stuck_dist_to_saddle": float(np.log10(max(stuck_dist, 1e-300))),
        "radii": np.asarray(cfg["radii"]),
        "perturbed_median": med,
        "perturbed_iqr": np.asarray(spread),
        "perturbed_monotone": bool(np.all(np.diff(med) < 0)),
        "perturbed_gap_ratio_min": float(np.min(gap_ratio)),
        "perturbed_slope_ratio": slope_pert / pred_gd,
    }


def plateau_entry(path: np.ndarray, g_tol: float) -> int:
    """First ``k`` with ``||grad f(z_k)|| < g_tol``."""
    g = np.stack([path[:, 0], path[:, 1] ** 3 - path[:, 1]], axis=1)  # (k, 2)
    return int(np.flatnonzero(np.linalg.norm(g, axis=1) < g_tol)[0])


# --------------------------------------------------------------------------- run / plot
def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """The ``1/K`` stationarity bound on a many-welled function, and the saddle plateau."""
    cfg = CONFIG["quick" if quick else "full"]
    rng_smooth, rng_saddle = np.random.default_rng(seed).spawn(2)

    # %% Smooth, many wells: GD at 1/L from several starts against the 1/K bound
    stationary = stationarity(cfg["smooth"], rng_smooth)
    progress(1, 2, "stationarity")

    # %% A strict saddle: the plateau of GD, and what perturbations and momentum do to it
    saddled = saddle(cfg["saddle"], rng_saddle)
    progress(2, 2, "saddle")
    return {**stationary, **saddled, "eta_saddle": cfg["saddle"]["eta"]}


def plot(result: dict):
    fig, axes = subplots(2, 2, width=4.3, height=3.2)
    ax = axes[0, 0]
    K = result["smooth_K"]
    for i, (best, bound) in enumerate(result["smooth_curves"]):
        ax.loglog(
            K,
            best,
            color="C0",
            lw=0.9,
            alpha=0.7,
            label=r"$\min_{k<K}\|\nabla f\|^2$" if i == 0 else None,
        )
        ax.loglog(
            K,
            bound,
            "--",
            color="C3",
            lw=0.8,
            alpha=0.7,
            label=r"$2L(f(x_0) - 0)/K$" if i == 0 else None,
        )
    ax.set(
        xlabel="K",
        ylabel="squared gradient norm",
        title=f"(a) GD at 1/L: bound >= {1 / result['stationarity_ratio_max']:.0f} x measured",
    )
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    P = result["saddle_example"]
    g = np.stack([P[:, 0], P[:, 1] ** 3 - P[:, 1]], axis=1)
    gn = np.linalg.norm(g, axis=1)
    on = np.flatnonzero(gn < result["saddle_g_tol"])
    on = on[on < np.flatnonzero(np.abs(P[:, 1]) >= 0.5)[0]]
    ax.axvspan(on[0], on[-1], color="0.9", label="plateau")
    ax.semilogy(gn, label=r"$\|\nabla f\|$")
    ax.semilogy(np.abs(P[:, 1]), label=r"$|y_k|$")
    ax.semilogy(np.abs(P[:, 0]), label=r"$|x_k|$")
    mant, exp = f"{P[0, 1]:.0e}".split("e")
    y0_tex = (f"{mant} \\times " if mant != "1" else "") + f"10^{{{int(exp)}}}"
    ax.set(
        ylim=(1e-14, 3),
        xlim=(0, 1.3 * on[-1]),
        xlabel="step k",
        title=rf"(b) saddle: GD from $(1, {y0_tex})$, $\eta$ = {result['eta_saddle']:g}",
    )
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    logs = np.log(1.0 / result["saddle_y0"])
    ax.plot(
        logs,
        result["escape_gd"],
        "o-",
        label=f"GD escape (slope / pred {result['escape_slope_ratio_gd']:.3f})",
    )
    ax.plot(
        logs, result["plateau_gd"], "s--", label=r"GD plateau: steps with $\|\nabla f\| < 10^{-2}$"
    )
    ax.plot(
        logs,
        result["escape_hb"],
        "^-",
        label=f"heavy ball escape (slope / pred {result['escape_slope_ratio_hb']:.3f})",
    )
    ax.set(
        xlabel=r"$\ln(1/|y_0|)$",
        ylabel="steps",
        title=r"(c) plateau $\approx \ln(1/|y_0|)/\ln(1+\eta)$ steps",
    )
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    r = result["radii"]
    iqr = result["perturbed_iqr"]
    ax.semilogx(r, result["perturbed_median"], "o-", label="median over draws")
    ax.fill_between(r, iqr[:, 0], iqr[:, 1], alpha=0.25, label="25-75%")
    pred = np.log(1.0 / r) / np.log(1.0 + result["eta_saddle"])
    ax.semilogx(
        r,
        pred - pred[-1] + result["perturbed_median"][-1],
        ":",
        color="k",
        label=r"slope $1/\ln(1+\eta)$",
    )
    ax.set(
        xlabel="perturbation radius r",
        ylabel="steps to escape after the kick",
        title="(d) perturbed GD from the saddle",
    )
    ax.legend(fontsize=7)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
