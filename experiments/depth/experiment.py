"""depth: how the NTK's conditioning and the GD rate change with 1, 2 and 3 hidden ReLU layers.

A fully connected ReLU net with ``L`` hidden layers of width ``m`` in the NTK parameterisation
(``shared.deep``; Jacot, Gabriel, Hongler 2018; Arora, Du, Hu, Li, Salakhutdinov, Wang 2019,
Sec. 3) has, at infinite width, the kernel ``Theta^(L)`` given by a layer-by-layer recursion of
arc-cosine kernels. Du, Lee, Li, Wang, Zhai (ICML 2019) prove that GD on such deep nets reaches
zero training loss at a linear rate set by the smallest eigenvalue of a Gram matrix of this kind,
for smooth activations and widths exponential in ``L`` (ReLU is not covered by their theorem).

Three things are measured on points uniform on the sphere. (1) The analytic recursion against
the empirical NTK ``J J^T`` of random nets: the gap must shrink with the width like
``m^(-1/2)``, which it cannot do if the recursion were wrong. (2) The conditioning of
``Theta^(L)``: its diagonal is ``L + 1``, its largest eigenvalue grows about as fast, and its
smallest eigenvalue grows faster, so ``kappa = lambda_max / lambda_min`` falls with depth on
these inputs. (3) GD on every layer at ``eta = 1 / lambda_max(Theta^(L))``, the same fraction of
the stability limit for every depth: the number of steps to reduce the loss 1000-fold, against
the spectral prediction ``||(I - eta Theta)^k (u(0) - y)||^2`` from the empirical NTK at init
(Arora, Du, Hu, Li, Wang, ICML 2019, Sec. 4, for the two-layer case), and its change with depth.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import NullLocator

from shared import data, deep, fit, kernels
from shared.plotting import subplots, width_colors

CONFIG = {
    "quick": {
        "n": 40,
        "d": 10,
        "depths": (1, 2, 3),  # the checked names (..._L1, _L2, _L3) assume these
        "m": 256,
        "reps": 5,
        "ntk_widths": (64, 128, 256, 512, 1024),
        "ntk_inits": 5,
        "analytic_depths": (1, 2, 3, 4, 5, 6),
        "tol": 1e-3,
        "max_steps": 3000,
    },
    "full": {
        "n": 60,
        "d": 10,
        "depths": (1, 2, 3),
        "m": 1024,
        "reps": 3,
        "ntk_widths": (128, 256, 512, 1024, 2048, 4096),
        "ntk_inits": 3,
        "analytic_depths": (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16),
        "tol": 1e-3,
        "max_steps": 5000,
    },
}


def steps_to(ratio: np.ndarray, tol: float) -> float:
    """First step at which ``ratio`` (a loss curve over ``L(0)``) reaches ``tol``, interpolated.

    Log-linear interpolation between the last step above ``tol`` and the first at or below, so
    the count is not rounded to an integer; ``nan`` if the curve never reaches ``tol``.
    """
    below = np.flatnonzero(ratio <= tol)
    if below.size == 0:
        return float("nan")
    k = int(below[0])
    if k == 0:
        return 0.0
    hi, lo = np.log(ratio[k - 1]), np.log(ratio[k])
    return k - 1 + (hi - np.log(tol)) / (hi - lo)


def predicted_ratio(theta: np.ndarray, r0: np.ndarray, *, eta: float, steps: int) -> np.ndarray:
    """Kernel-regime ``L(k) / L(0) = ||(I - eta Theta)^k r0||^2 / ||r0||^2``, ``k = 0..steps``."""
    r = kernels.predicted_residuals(theta, r0, eta=eta, steps=steps)  # ||(I - eta Theta)^k r0||
    return (r / r[0]) ** 2


def ntk_gap(X, depth: int, widths, *, inits: int, rng) -> np.ndarray:
    """Relative gap ``||J J^T - Theta^(L)||_F / ||Theta^(L)||_F``, median over ``inits`` nets.

    Returns one median per width, ``(len(widths),)``.
    """
    theta, _ = deep.ntk_inf(X, depth)
    gaps = np.empty(len(widths))
    for j, m in enumerate(widths):
        draws = [deep.ntk(X, deep.init_deep(X.shape[1], m, depth, rng=rng)) for _ in range(inits)]
        gaps[j] = np.median([np.linalg.norm(E - theta) / np.linalg.norm(theta) for E in draws])
    return gaps


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return the checked scalars and the series of the figure."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, depths, m, reps, tol = (
        cfg["n"],
        cfg["d"],
        cfg["depths"],
        cfg["m"],
        cfg["reps"],
        cfg["tol"],
    )
    rng_data, rng_ntk, rng_train = np.random.default_rng(seed).spawn(3)

    # %% Set-up: inputs on the sphere, the analytic NTK of every depth
    X = data.unit_sphere(n, d, rng=rng_data)  # (n, d)
    ys = [data.gaussian_labels(n, rng=rng_data) for _ in range(reps)]  # reps x (n,)
    analytic = {}
    for L in cfg["analytic_depths"]:
        lam = np.linalg.eigvalsh(deep.ntk_inf(X, L)[0])  # (n,) ascending
        analytic[L] = (lam[0], lam[-1])

    # %% (1) Empirical NTK at init against the recursion, over widths
    widths = np.asarray(cfg["ntk_widths"], dtype=float)
    gaps = {}
    for i, L in enumerate(depths):
        progress(i, 2 * len(depths), f"NTK gap, L = {L}")
        gaps[L] = ntk_gap(X, L, cfg["ntk_widths"], inits=cfg["ntk_inits"], rng=rng_ntk)

    # %% (2) GD on every layer at eta = 1 / lambda_max(Theta^(L)), reps (init, labels) draws
    steps = {L: np.empty(reps) for L in depths}
    steps_pred = {L: np.empty(reps) for L in depths}
    steps_pred_inf = {L: np.empty(reps) for L in depths}
    lam_min_emp = {L: np.empty(reps) for L in depths}
    curves = {}
    for i, L in enumerate(depths):
        progress(len(depths) + i, 2 * len(depths), f"GD, L = {L}")
        theta_inf = deep.ntk_inf(X, L)[0]
        eta = 1.0 / analytic[L][1]
        for j, y in enumerate(ys):
            params = deep.init_deep(d, m, L, rng=rng_train)
            theta0 = deep.ntk(X, params)  # (n, n), empirical NTK at init
            r0 = deep.predict(X, params) - y  # (n,)
            loss, _ = deep.train(X, y, params, eta=eta, steps=cfg["max_steps"], tol=tol / 2)
            ratio = loss / loss[0]
            steps[L][j] = steps_to(ratio, tol)
            pred = predicted_ratio(theta0, r0, eta=eta, steps=cfg["max_steps"])
            steps_pred[L][j] = steps_to(pred, tol)
            pred_inf = predicted_ratio(theta_inf, r0, eta=eta, steps=cfg["max_steps"])
            steps_pred_inf[L][j] = steps_to(pred_inf, tol)
            lam_min_emp[L][j] = np.linalg.eigvalsh(theta0)[0]
            if j == 0:
                curves[L] = (ratio, pred[: len(ratio)])

    # %% Measure
    def per_depth(L: int) -> dict:
        lam_min, lam_max = analytic[L]
        return {
            "kappa": lam_max / lam_min,
            "lam_min_over_diag": lam_min / (L + 1),
            "lam_max_over_diag": lam_max / (L + 1),
            "gap_exponent": fit.power_law(widths, gaps[L])[0],
            "gap_widest": float(gaps[L][-1]),
            "lam_min_emp_over_inf": float(np.median(lam_min_emp[L]) / lam_min),
            "steps": float(np.median(steps[L])),
            "over_prediction": float(np.median(steps[L] / steps_pred[L])),
            "over_analytic": float(np.median(steps[L] / steps_pred_inf[L])),
        }

    q = {L: per_depth(L) for L in depths}  # checked names below assume depths (1, 2, 3)
    speedup = float(np.median(steps[1] / steps[3]))
    predicted_speedup = float(np.median(steps_pred[1] / steps_pred[3]))
    out = {
        "n": n,
        "d": d,
        "m": m,
        "tol": tol,
        "ntk_gap_exponent_L1": q[1]["gap_exponent"],
        "ntk_gap_exponent_L2": q[2]["gap_exponent"],
        "ntk_gap_exponent_L3": q[3]["gap_exponent"],
        "ntk_gap_widest_L1": q[1]["gap_widest"],
        "ntk_gap_widest_L2": q[2]["gap_widest"],
        "ntk_gap_widest_L3": q[3]["gap_widest"],
        "kappa_L1": q[1]["kappa"],
        "kappa_L2": q[2]["kappa"],
        "kappa_L3": q[3]["kappa"],
        "kappa_ratio_first_over_last": q[1]["kappa"] / q[3]["kappa"],
        "lam_min_over_diag_L1": q[1]["lam_min_over_diag"],
        "lam_min_over_diag_L2": q[2]["lam_min_over_diag"],
        "lam_min_over_diag_L3": q[3]["lam_min_over_diag"],
        "lam_min_over_diag_gain": q[3]["lam_min_over_diag"] / q[1]["lam_min_over_diag"],
        "lam_max_over_diag_L1": q[1]["lam_max_over_diag"],
        "lam_max_over_diag_L2": q[2]["lam_max_over_diag"],
        "lam_max_over_diag_L3": q[3]["lam_max_over_diag"],
        "lam_min_emp_over_inf_L1": q[1]["lam_min_emp_over_inf"],
        "lam_min_emp_over_inf_L2": q[2]["lam_min_emp_over_inf"],
        "lam_min_emp_over_inf_L3": q[3]["lam_min_emp_over_inf"],
        "steps_L1": q[1]["steps"],
        "steps_L2": q[2]["steps"],
        "steps_L3": q[3]["steps"],
        "steps_over_prediction_L1": q[1]["over_prediction"],
        "steps_over_prediction_L2": q[2]["over_prediction"],
        "steps_over_prediction_L3": q[3]["over_prediction"],
        "steps_over_analytic_L1": q[1]["over_analytic"],
        "steps_over_analytic_L2": q[2]["over_analytic"],
        "steps_over_analytic_L3": q[3]["over_analytic"],
        "speedup_last_over_first": speedup,
        "predicted_speedup_last_over_first": predicted_speedup,
        "speedup_over_prediction": speedup / predicted_speedup,
    }

    # series for the figure
    out["depths"] = np.asarray(depths)
    out["ntk_widths"] = widths
    for L in depths:
        out[f"ntk_gap_L{L}"] = gaps[L]
        out[f"loss_L{L}"], out[f"predicted_loss_L{L}"] = curves[L]
        out[f"steps_all_L{L}"] = steps[L]
        out[f"steps_pred_all_L{L}"] = steps_pred[L]
    out["analytic_depths"] = np.asarray(cfg["analytic_depths"])
    out["analytic_lam_min"] = np.array([analytic[L][0] for L in cfg["analytic_depths"]])
    out["analytic_lam_max"] = np.array([analytic[L][1] for L in cfg["analytic_depths"]])
    return out


def plot(result: dict):
    fig, axes = subplots(1, 4, width=3.4, height=3.0)
    depths = [int(L) for L in result["depths"]]
    colors = dict(zip(depths, width_colors(len(depths))[::-1], strict=True))

    ax = axes[0]
    widths = np.asarray(result["ntk_widths"])
    for L in depths:
        p = result[f"ntk_gap_exponent_L{L}"]
        ax.loglog(widths, result[f"ntk_gap_L{L}"], "o-", color=colors[L], label=f"L = {L}: {p:.2f}")
    ref = np.asarray(result[f"ntk_gap_L{depths[-1]}"])[0] * (widths / widths[0]) ** -0.5
    ax.loglog(widths, ref, "k:", lw=1, label="$m^{-1/2}$")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(widths, [f"{w:.0f}" for w in widths])
    ax.set(
        xlabel="width m",
        ylabel=r"$\|JJ^T - \Theta^{(L)}\|_F / \|\Theta^{(L)}\|_F$",
        title="(a) empirical vs analytic NTK",
    )
    ax.legend(fontsize=7)

    ax = axes[1]
    Ls = np.asarray(result["analytic_depths"])
    lmin, lmax = np.asarray(result["analytic_lam_min"]), np.asarray(result["analytic_lam_max"])
    ax.plot(Ls, lmin / (Ls + 1), "o-", color="C0", label=r"$\lambda_{min} / (L+1)$")
    ax.set(xlabel="hidden layers L", ylabel=r"$\lambda_{min}(\Theta^{(L)}) / (L + 1)$")
    ax2 = ax.twinx()
    ax2.plot(Ls, lmax / lmin, "s--", color="C3", label=r"$\kappa$")
    ax2.set_ylabel(r"$\kappa = \lambda_{max} / \lambda_{min}$", color="C3")
    ax.set_title("(b) conditioning of the analytic NTK")
    ax.legend(loc="center right", fontsize=7)

    ax = axes[2]
    for L in depths:
        loss = np.asarray(result[f"loss_L{L}"])
        ax.semilogy(loss, color=colors[L], label=f"L = {L}")
        ax.semilogy(result[f"predicted_loss_L{L}"], "--", color=colors[L], lw=0.9)
    ax.axhline(result["tol"], color="0.6", lw=0.8, ls=":")
    ax.plot([], [], "k--", lw=0.9, label=r"$\|(I-\eta\Theta(0))^k r_0\|^2$")
    ax.set(
        xlabel="step k",
        ylabel="L(k) / L(0)",
        title=rf"(c) GD, $\eta = 1/\lambda_{{max}}$, m = {result['m']}",
    )
    ax.legend(fontsize=7)

    ax = axes[3]
    for L in depths:
        ax.plot(
            result[f"steps_pred_all_L{L}"],
            result[f"steps_all_L{L}"],
            "o",
            color=colors[L],
            label=f"L = {L}",
        )
    lim = [0, 1.1 * max(max(result[f"steps_all_L{L}"]) for L in depths)]
    ax.plot(lim, lim, "k:", lw=1, label="measured = predicted")
    ax.set(
        xlabel=f"predicted steps to L/L(0) = {result['tol']:g}",
        ylabel="measured steps",
        title="(d) rate vs spectral prediction",
        xlim=lim,
        ylim=lim,
    )
    ax.legend(fontsize=7)
    fig.suptitle(f"Deep ReLU nets, NTK parameterisation: n = {result['n']}, d = {result['d']}")
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
