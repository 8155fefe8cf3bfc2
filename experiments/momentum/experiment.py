"""Momentum: heavy ball and Nesterov trade kappa for sqrt(kappa), on quadratics and on the ReLU net.

On ``f(x) = 1/2 x^T A x`` with the spectrum of ``A`` in ``[mu, L]``, ``kappa = L / mu``:
Polyak's heavy ball with ``alpha = 4 / (sqrt L + sqrt mu)^2`` and
``beta = ((sqrt kappa - 1) / (sqrt kappa + 1))^2`` contracts at
``(sqrt kappa - 1) / (sqrt kappa + 1)`` per step (Polyak 1964; Polyak, *Introduction to
Optimization*, 1987, Sec. 3.2.1), and Nesterov's method with step ``1/L`` and
``beta = (sqrt kappa - 1) / (sqrt kappa + 1)`` at ``1 - 1/sqrt(kappa)`` (Nesterov, *Lectures on
Convex Optimization*, 2018, Sec. 2.2). Iterations to a tolerance then grow like ``sqrt(kappa)``,
against ``kappa`` for GD. In a narrow 2-D valley GD at a large step zig-zags across the steep
direction while creeping along the slow one; momentum accumulates velocity along the valley.

The bridge to Du, Zhai, Poczos, Singh (ICLR 2019): in the kernel regime the ReLU net's residual
is a quadratic iteration with ``A = H``, so heavy ball tuned with ``mu = lam0`` and
``L = lambda_max(H_inf)`` (no tuning on the net) should reach a tolerance in far fewer steps
than GD at its best constant step, found by a grid search on the net itself.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net, optim
from shared.plotting import subplots, width_colors

CONFIG = {
    "quick": {
        "d": 50,
        "kappas_rate": [10.0, 100.0, 1000.0],
        "kappas_iter": [10.0, 31.6, 100.0, 316.0, 1000.0],
        "eps": 1e-6,
        "valley": {"kappa": 100.0, "steps": 30},
        "net": {"n": 30, "d": 10, "m": 2000, "tol": 1e-10, "grid": [1.0, 1.5, 1.75, 1.9, 2.0]},
    },
    "full": {
        "d": 200,
        "kappas_rate": [10.0, 100.0, 1000.0, 10000.0, 100000.0],
        "kappas_iter": [10.0, 31.6, 100.0, 316.0, 1000.0, 3162.0, 10000.0],
        "eps": 1e-6,
        "valley": {"kappa": 100.0, "steps": 30},
        "net": {
            "n": 60,
            "d": 10,
            "m": 10000,
            "tol": 1e-10,
            "grid": [0.5, 1.0, 1.25, 1.5, 1.75, 1.9, 2.0, 2.1],
        },
    },
}


REPS = 3  # random spectra behind every median rate


# --------------------------------------------------------------------------- methods
def tuned(kappa: float, L: float) -> dict:
    """The three methods with their textbook parameters: ``name -> (optimizer, lr, rho)``."""
    sk = np.sqrt(kappa)
    mu = L / kappa
    return {
        "GD": (optim.GD(), 1.0 / L, 1.0 - 1.0 / kappa),
        "heavy ball": (
            optim.HeavyBall(((sk - 1.0) / (sk + 1.0)) ** 2),
            4.0 / (np.sqrt(L) + np.sqrt(mu)) ** 2,
            (sk - 1.0) / (sk + 1.0),
        ),
        "Nesterov": (optim.Nesterov((sk - 1.0) / (sk + 1.0)), 1.0 / L, 1.0 - 1.0 / sk),
    }


def quadratic(d: int, kappa: float, *, rng: np.random.Generator, spaced: bool = False):
    """``A = Q diag(lam) Q^T`` with ``lam`` containing ``mu = 1/kappa`` and ``L = 1`` and the rest
    uniform in between (random, or evenly spaced with ``spaced``), and a unit start with equal
    weight on every eigenvector.

    Returns
    -------
    A : (d, d) ndarray
    x0 : (d,) ndarray
    """
    mu = 1.0 / kappa
    inner = np.linspace(mu, 1.0, d)[1:-1] if spaced else rng.uniform(mu, 1.0, d - 2)
    lam = np.concatenate([[mu], inner, [1.0]])
    A, _, x0 = data.rotated_quadratic(lam, rng=rng)
    return A, x0


def distances(A, x0, optimizer, lr, steps) -> np.ndarray:
    """``||x_k - x*||`` (``x* = 0``), ``k = 0..steps``.

    ``minimize`` records the value of its first argument at every iterate; GD, heavy ball and
    Nesterov never evaluate it, so it is handed the distance to ``x*``.
    """
    res = optim.minimize(
        lambda x: float(np.linalg.norm(x)),
        lambda x: A @ x,
        x0,
        optimizer=optimizer,
        lr=lr,
        steps=steps,
    )
    return res.f


# --------------------------------------------------------------------------- quadratics
def rates_vs_kappa(cfg: dict, rng: np.random.Generator) -> dict:
    """Heavy ball and Nesterov: fitted per-step contraction vs the predicted one.

    At the ends of the spectrum both methods have a double root (heavy ball at ``mu`` and ``L``,
    Nesterov at ``mu``), so ``||x_k|| ~ c k rho^k``; heavy ball's interior modes have complex roots
    of modulus exactly ``rho`` and only add a bounded oscillation. The prefactor ``k`` is divided
    out before the fit (:func:`log_rate_double_root`), which is taken deep, at
    ``||x_k|| / ||x_0||`` between 1e-30 and 1e-60 (``x* = 0``: no precision floor). Each rate is
    the median over ``REPS`` random spectra.
    """
    meas, pred, curves = {}, {}, {}  # per method, one entry per kappa
    for name in ("heavy ball", "Nesterov"):
        meas[name], pred[name], curves[name] = [], [], []
        for kappa in cfg["kappas_rate"]:
            opt, lr, rho = tuned(kappa, 1.0)[name]
            steps = int(1.2 * np.log(1e-62) / np.log(rho)) + 50
            slopes = []
            for rep in range(REPS):
                A, x0 = quadratic(cfg["d"], kappa, rng=rng)
                dist = distances(A, x0, opt, lr, steps)
                slopes.append(log_rate_double_root(dist, hi=1e-30, lo=1e-60))
                if rep == 0:
                    curves[name].append(dist)
            meas[name].append(float(np.exp(np.median(slopes))))
            pred[name].append(rho)
    hb = np.log(meas["heavy ball"]) / np.log(pred["heavy ball"])
    nesterov = np.log(meas["Nesterov"]) / np.log(pred["Nesterov"])
    ratios = np.concatenate([hb, nesterov])
    return {
        "rate_kappa": np.asarray(cfg["kappas_rate"]),
        "hb_rho": np.asarray(meas["heavy ball"]),
        "hb_rho_pred": np.asarray(pred["heavy ball"]),
        "hb_lograte_ratio": hb,
        "nesterov_rho": np.asarray(meas["Nesterov"]),
        "nesterov_rho_pred": np.asarray(pred["Nesterov"]),
        "nesterov_lograte_ratio": nesterov,
        "momentum_lograte_rel_err_max": float(np.max(np.abs(ratios - 1.0))),
        "rate_curves_hb": curves["heavy ball"],
        "rate_curves_nesterov": curves["Nesterov"],
    }


def log_rate_double_root(dist: np.ndarray, *, hi: float, lo: float) -> float:
    """Per-step slope of ``log(||x_k|| / k)``, fitted where ``lo <= ||x_k|| / ||x_0|| <= hi``.

    ``dist (steps + 1,)`` holds ``||x_k||`` for ``k = 0..steps``. A double root ``rho`` gives
    ``||x_k|| ~ c k rho^k``: without the ``1/k`` the slope would be biased towards slower by
    ``ln(k_2 / k_1) / (k_2 - k_1)`` over the window ``[k_1, k_2]`` (about 1% here).
    """
    k = np.flatnonzero((dist <= hi * dist[0]) & (dist >= lo * dist[0]))
    if k.size < 3 or k[0] == 0:
        raise ValueError(f"dist: expected at least 3 steps k >= 1 in the window, got {k.size}")
    return float(np.polyfit(k.astype(float), np.log(dist[k] / k), 1)[0])


def steps_to(values: np.ndarray, eps: float) -> float:
    """First crossing of ``values_k = eps values_0`` (a distance or a loss, ``(steps + 1,)``),
    interpolated in ``log values_k`` between the step before and the first step at or below
    (``inf`` if never reached, or if the run diverged first).

    The fractional step makes the count a continuous function of the spectrum and the init, so
    ratios and log-log slopes of counts move smoothly with the seed instead of by whole steps.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(values)
    target = np.log(eps * values[0])
    hit = np.flatnonzero(logs <= target)
    if not hit.size:
        return np.inf
    k = int(hit[0])
    return float(k - (target - logs[k]) / (logs[k - 1] - logs[k]))


def iterations_vs_kappa(cfg: dict, rng: np.random.Generator) -> dict:
    """Iterations to ``||x_k|| <= eps ||x_0||`` for the three methods over a grid of ``kappa``.

    The spectrum is evenly spaced on ``[mu, L]``, the same at every seed up to the rotation: a
    random interior eigenvalue that lands within a few per cent of ``mu`` (rare at large
    ``kappa``) adds steps to one count and moves the slope by a step function of the draw, which
    is what the count measures least well. The rates above are measured on random spectra.
    """
    kappas, eps = np.asarray(cfg["kappas_iter"]), cfg["eps"]
    iters = {"GD": [], "heavy ball": [], "Nesterov": []}
    for kappa in kappas:
        A, x0 = quadratic(cfg["d"], kappa, rng=rng, spaced=True)
        for name, (opt, lr, rho) in tuned(kappa, 1.0).items():
            steps = int(1.5 * np.log(eps) / np.log(rho)) + 100
            iters[name].append(steps_to(distances(A, x0, opt, lr, steps), eps))
    gd, hb, nesterov = (np.asarray(iters[k], dtype=float) for k in ("GD", "heavy ball", "Nesterov"))
    return {
        "iter_kappa": kappas,
        "iter_gd": gd,
        "iter_hb": hb,
        "iter_nesterov": nesterov,
        "iter_exponent_gd": fit.power_law(kappas, gd)[0],
        "iter_exponent_hb": fit.power_law(kappas, hb)[0],
        "iter_exponent_nesterov": fit.power_law(kappas, nesterov)[0],
    }


def valley(cfg: dict, rng: np.random.Generator) -> dict:
    """Zig-zag in the 2-D valley ``f = 1/2 (mu x_1^2 + L x_2^2)``, ``mu = 1/kappa``, ``L = 1``.

    For GD the steep coordinate evolves as ``x_2 <- (1 - eta L) x_2``: it changes sign at every
    step iff ``eta > 1/L``, and the step direction then reverses each time (cosine of the angle
    between successive steps ~ -1) while ``x_1`` creeps by ``(1 - eta mu)`` per step.
    """
    kappa, K = cfg["kappa"], cfg["steps"]
    A = np.diag([1.0 / kappa, 1.0])  # (2, 2): x_1 slow, x_2 steep
    # x_1(0) = 1 on every seed: the slow coordinate evolves on its own (A is diagonal), so its
    # progress is the same number whatever the random steep component x_2(0)
    x0 = np.array([1.0, np.tan(rng.uniform(np.pi / 8, 3 * np.pi / 8))])
    methods = {
        "GD, small step 0.5/L": (optim.GD(), 0.5),
        "GD, large step 2/(L+mu)": (optim.GD(), 2.0 / (1.0 + 1.0 / kappa)),
        "heavy ball": tuned(kappa, 1.0)["heavy ball"][:2],
        "Nesterov": tuned(kappa, 1.0)["Nesterov"][:2],
    }
    out = {"valley_paths": {}}
    for name, (opt, lr) in methods.items():
        res = optim.minimize(
            lambda x: 0.5 * x @ A @ x,
            lambda x: A @ x,
            x0,
            optimizer=opt,
            lr=lr,
            steps=K,
            keep_path=True,
        )
        P = res.path  # (K + 1, 2)
        S = np.diff(P, axis=0)  # (K, 2) steps
        cos = np.sum(S[1:] * S[:-1], axis=1) / (
            np.linalg.norm(S[1:], axis=1) * np.linalg.norm(S[:-1], axis=1)
        )
        out["valley_paths"][name] = P
        out[name] = {
            "flips": float(np.mean(np.sign(P[1:, 1]) != np.sign(P[:-1, 1]))),
            "cos": float(np.mean(cos)),
            "slow_log_progress": float(np.log(abs(P[-1, 0]) / abs(P[0, 0]))),
        }
    small, large = out.pop("GD, small step 0.5/L"), out.pop("GD, large step 2/(L+mu)")
    hb, nest = out.pop("heavy ball"), out.pop("Nesterov")
    return {
        "valley_paths": out["valley_paths"],
        "valley_flips_gd_small": small["flips"],
        "valley_flips_gd_large": large["flips"],
        "valley_cos_gd_large": large["cos"],
        "valley_cos_gd_small": small["cos"],
        "valley_cos_hb": hb["cos"],
        "valley_cos_nesterov": nest["cos"],
        "valley_slow_progress_gd_large": large["slow_log_progress"],
        "valley_slow_progress_hb": hb["slow_log_progress"],
        "valley_slow_progress_nesterov": nest["slow_log_progress"],
        "valley_slow_progress_ratio_hb_gd": hb["slow_log_progress"] / large["slow_log_progress"],
    }


# --------------------------------------------------------------------------- the net


def bridge(cfg: dict, rng: np.random.Generator) -> dict:
    """Heavy ball (tuned on ``H_inf``) vs GD at its best constant step on the ReLU net."""
    n, d, m, tol = cfg["n"], cfg["d"], cfg["m"], cfg["tol"]
    X = data.unit_sphere(n, d, rng=rng)
    y = data.gaussian_labels(n, rng=rng)
    lam = np.linalg.eigvalsh(kernels.h_inf(X))  # (n,) ascending
    lam0, lam_max = float(lam[0]), float(lam[-1])
    kappa = lam_max / lam0
    W0, a = net.init_net(d, m, rng=rng)
    f, g = net.objective(X, y, a)
    budget = int(8 * kappa) + 100  # GD at 2/(L + mu) needs ~ (kappa/2) ln(1/tol)/2 steps

    def run_net(opt, lr):
        with np.errstate(over="ignore", invalid="ignore"):
            return optim.minimize(f, g, W0.ravel(), optimizer=opt, lr=lr, steps=budget).f

    gd_curves, gd_steps = [], []
    for c in cfg["grid"]:
        loss = run_net(optim.GD(), c / lam_max)
        gd_curves.append(loss)
        gd_steps.append(steps_to(loss, tol))
    best = int(np.argmin(gd_steps))
    methods = tuned(kappa, lam_max)
    hb_loss = run_net(*methods["heavy ball"][:2])
    nest_loss = run_net(*methods["Nesterov"][:2])
    hb_steps, nest_steps = steps_to(hb_loss, tol), steps_to(nest_loss, tol)
    # kernel-regime predictions: steps ~ ln(1/tol) / (2 |ln rho|) for the loss
    pred = {k: np.log(1.0 / tol) / (-2.0 * np.log(v[2])) for k, v in methods.items()}
    rho_gd_opt = (kappa - 1.0) / (kappa + 1.0)
    return {
        "net_kappa": kappa,
        "net_grid": np.asarray(cfg["grid"]),
        "net_gd_steps": np.asarray(gd_steps),
        "net_gd_best_c": float(cfg["grid"][best]),
        "net_gd_best_steps": gd_steps[best],
        "net_hb_steps": hb_steps,
        "net_nesterov_steps": nest_steps,
        "net_hb_pred_steps": pred["heavy ball"],
        "net_gd_opt_pred_steps": np.log(1.0 / tol) / (-2.0 * np.log(rho_gd_opt)),
        "net_steps_ratio_hb_gdbest": hb_steps / gd_steps[best],
        "net_steps_ratio_nesterov_gdbest": nest_steps / gd_steps[best],
        "net_gd_best_loss": gd_curves[best] / gd_curves[best][0],
        "net_hb_loss": hb_loss / hb_loss[0],
        "net_nesterov_loss": nest_loss / nest_loss[0],
    }


COLORS = {"GD, small step 0.5/L": "C7", "GD, large step 2/(L+mu)": "C0", "heavy ball": "C1"}
COLORS["Nesterov"] = "C2"


# --------------------------------------------------------------------------- run / plot
def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Rates vs kappa, iterations vs kappa, the 2-D valley and the ReLU-net bridge."""
    cfg = CONFIG["quick" if quick else "full"]
    rng_rate, rng_iter, rng_valley, rng_net = np.random.default_rng(seed).spawn(4)

    # %% Quadratics: the contraction of heavy ball and Nesterov, and the cost, against kappa
    rates = rates_vs_kappa(cfg, rng_rate)
    progress(1, 4, "rates")
    iterations = iterations_vs_kappa(cfg, rng_iter)
    progress(2, 4, "iterations")

    # %% The 2-D valley: GD zig-zags, momentum builds speed along the valley
    valleys = valley(cfg["valley"], rng_valley)
    progress(3, 4, "valley")

    # %% The net: heavy ball tuned on H_inf against GD at its best constant step
    bridged = bridge(cfg["net"], rng_net)
    progress(4, 4, "net")
    return {**rates, **iterations, **valleys, **bridged}


def plot(result: dict):
    fig, axes = subplots(2, 3, width=4.0, height=3.2)
    ax = axes[0, 0]
    colors = width_colors(len(result["rate_kappa"]))
    for kappa, hb, ne, c in zip(
        result["rate_kappa"],
        result["rate_curves_hb"],
        result["rate_curves_nesterov"],
        colors,
        strict=True,
    ):
        sk = np.sqrt(kappa)
        ax.semilogy(np.arange(hb.size) / sk, hb, color=c, label=rf"$\kappa$={kappa:g}")
        ax.semilogy(np.arange(ne.size) / sk, ne, "--", color=c, lw=1.0)
    t = np.linspace(0, 70, 50)
    ax.semilogy(t, np.exp(-2 * t), ":", color="k", label=r"$e^{-2k/\sqrt{\kappa}}$")
    ax.semilogy(t, np.exp(-t), "-.", color="gray", label=r"$e^{-k/\sqrt{\kappa}}$")
    ax.set(
        xlim=(0, 70),
        ylim=(1e-62, 10),
        xlabel=r"step k / $\sqrt{\kappa}$",
        ylabel=r"$\|x_k - x^*\| / \|x_0 - x^*\|$",
        title="(a) heavy ball (solid), Nesterov (dashed)",
    )
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    kap = result["iter_kappa"]
    for key, label, mk in (
        ("gd", "GD", "o"),
        ("hb", "heavy ball", "s"),
        ("nesterov", "Nesterov", "^"),
    ):
        slope = result[f"iter_exponent_{key}"]
        ax.loglog(kap, result[f"iter_{key}"], mk + "-", label=f"{label}: slope {slope:.2f}")
    ax.set(
        xlabel=r"$\kappa$", ylabel=r"iterations to $10^{-6}$", title="(b) cost vs condition number"
    )
    ax.legend()

    ax = axes[0, 2]
    kappa_v = 100.0
    g1, g2 = np.meshgrid(np.linspace(-0.1, 1.1, 200), np.linspace(-3.0, 3.0, 200))
    ax.contour(g1, g2, 0.5 * (g1**2 / kappa_v + g2**2), levels=6, colors="0.85", linewidths=0.6)
    for name, P in result["valley_paths"].items():
        ax.plot(P[:, 0], P[:, 1], marker=".", ms=3, lw=0.8, color=COLORS[name], label=name)
    ax.set(
        xlabel=r"$x_1$ (slow, $\mu$)",
        ylabel=r"$x_2$ (steep, $L$)",
        title=rf"(c) valley $\kappa$ = {kappa_v:g}: 30 steps",
    )
    ax.legend(fontsize=7, loc="lower left")

    ax = axes[1, 0]
    for name, P in result["valley_paths"].items():
        ax.semilogy(np.abs(P[:, 0]) / abs(P[0, 0]), color=COLORS[name], label=name)
    ax.set(
        xlabel="step k",
        ylabel=r"$|x_1(k)| / |x_1(0)|$",
        title="(d) progress along the valley",
    )
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    ax.semilogy(
        result["net_gd_best_loss"],
        label=rf"GD, best $\eta$ = {result['net_gd_best_c']:g}/$\lambda_{{max}}$: "
        f"{result['net_gd_best_steps']:.0f} steps",
    )
    hb, nest = result["net_hb_steps"], result["net_nesterov_steps"]
    ax.semilogy(result["net_hb_loss"], color="C1", label=f"heavy ball: {hb:.0f} steps")
    ax.semilogy(result["net_nesterov_loss"], color="C2", label=f"Nesterov: {nest:.0f} steps")
    ax.axhline(1e-10, color="gray", lw=0.8, ls=":")
    ax.set(
        ylim=(1e-16, 3),
        xlim=(0, 1.3 * result["net_gd_best_steps"]),
        xlabel="step k",
        ylabel="L(k) / L(0)",
        title=rf"(e) ReLU net, tuned on $H^\infty$ ($\kappa$ = {result['net_kappa']:.0f})",
    )
    ax.legend(fontsize=7)

    ax = axes[1, 2]
    grid, gd_steps = result["net_grid"], np.asarray(result["net_gd_steps"], dtype=float)
    reached = np.isfinite(gd_steps)
    ax.plot(grid[reached], gd_steps[reached], "o-", label="GD, constant step")
    if not reached.all():
        top = 1.5 * gd_steps[reached].max()
        ax.plot(
            grid[~reached],
            np.full((~reached).sum(), top),
            "x",
            color="C0",
            ms=7,
            label="GD: tolerance not reached in budget",
        )
    ax.axhline(result["net_hb_steps"], color="C1", label="heavy ball")
    ax.axhline(result["net_nesterov_steps"], color="C2", label="Nesterov")
    ax.set(
        yscale="log",
        xlabel=r"GD step $\eta \, \lambda_{max}(H^\infty)$",
        ylabel=r"steps to $L(k) \leq 10^{-10} L(0)$",
        title="(f) GD's step grid vs momentum",
    )
    ax.legend(fontsize=7)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
