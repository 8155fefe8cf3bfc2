"""mean_field_vs_ntk: the same net, output 1/sqrt(m) or 1/m; only the first stays lazy.

The two-layer ReLU net ``u = c_m sum_r a_r relu(w_r . x)`` is trained on both layers by
full-batch GD from three inits per width, each twice: with the NTK scaling ``c_m = m^(-1/2)`` and
step ``eta0``, and with the mean-field scaling ``c_m = 1/m`` and step ``eta0 m``. At step 0
both runs move their predictions by the same ``-eta0 Theta(0) (u - y)``, so both start on the
kernel prediction ``(I - eta0 Theta_inf)^k (u(0) - y)``; what differs is what it costs each
neuron. Under NTK scaling a neuron moves ``O(m^-1/2)`` and the kernel stays put (Jacot et al.
2018; Du et al. 2019); under mean-field scaling every neuron moves ``O(1)``, the kernel changes
by ``O(1)`` at any width and the residuals leave the kernel prediction (Mei, Montanari, Nguyen
2018; Chizat and Bach 2018; Chizat, Oyallon, Bach 2019, Sec. 2).

Per width and scaling the run records the RMS per-neuron move, the relative kernel drift
``||Theta(K) - Theta(0)||_2 / ||Theta(0)||_2`` of the empirical kernel ``J J^T`` and the largest
departure of the residual from the kernel prediction; exponents in ``m`` are least-squares
slopes. Under NTK scaling all three fall with ``m``; under mean-field scaling all three are flat.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net, twolayer
from shared.plotting import subplots

CONFIG = {
    # CI: seconds
    "quick": {
        "n": 20,
        "d": 20,
        "widths": (100, 200, 400, 800, 1600, 3200),
        "inits": 3,
        "steps": 300,
    },
    # paper scale: n = d = 50, widths over two decades
    "full": {
        "n": 50,
        "d": 50,
        "widths": (125, 250, 500, 1000, 2000, 4000, 8000, 16000),
        "inits": 3,
        "steps": 600,
    },
}
# eta0 lambda_max(Theta_inf): the mean-field kernel grows during training (lambda_max by 2-5x
# at n = 20), and GD follows its gradient flow only while eta0 lambda_max(Theta(k)) stays well
# below 2; 1/4 keeps it below 1.3 (checked: mf_sharpness_max).
ETA_TIMES_LAM_MAX = 0.25
SCALINGS = {"ntk": "ntk", "mf": "mean_field"}  # key in the results -> twolayer scaling


def kernel_prediction(Theta: np.ndarray, r0: np.ndarray, *, eta: float, steps: int) -> np.ndarray:
    """Residuals ``r(k) = (I - eta Theta)^k r0`` of the linearised model, ``(steps + 1, n)``.

    The kernel regime of Jacot et al. (2018) and Arora et al. (2019, Sec. 4), in discrete
    time; ``Theta (n, n)``, ``r0 (n,)``.
    """
    lam, V = np.linalg.eigh(Theta)  # (n,), (n, n)
    k = np.arange(steps + 1)[:, None]  # (steps + 1, 1)
    return ((1.0 - eta * lam)[None, :] ** k * (V.T @ r0)[None, :]) @ V.T  # (steps + 1, n)


def one_run(X, y, W0, a0, Theta_inf, *, scaling: str, eta0: float, steps: int) -> dict:
    """Train ``(W, a)`` with ``scaling`` and step ``eta0`` (NTK) or ``eta0 m`` (mean field).

    Returns the RMS per-neuron move, the relative kernel drift, the largest departure
    ``max_k ||r(k) - r_pred(k)|| / ||r(0)||`` from :func:`kernel_prediction`, the residual
    norms ``||r(k)|| / ||r(0)||`` and ``||r_pred(k)|| / ||r(0)||``, the final loss ratio, and
    ``lambda_min`` and ``eta0 lambda_max`` of the final kernel. Kernels are in the NTK's units:
    the mean-field ``J J^T`` is ``1/m`` times the NTK one, so it is multiplied by ``m``.
    """
    m = W0.shape[0]
    units = m if scaling == "mean_field" else 1  # eta J J^T = eta0 (units J J^T) in both scalings
    eta = eta0 * units
    res = twolayer.train(X, y, W0, a0, eta=eta, steps=steps, scaling=scaling, train_a=True)
    move_sq = np.sum((res.W - W0) ** 2, axis=1) + (res.a - a0) ** 2  # (m,)
    K0 = twolayer.ntk(X, W0, a0, scaling=scaling) * units  # (n, n)
    KK = twolayer.ntk(X, res.W, res.a, scaling=scaling) * units
    R = res.u - y  # (steps + 1, n)
    R_pred = kernel_prediction(Theta_inf, R[0], eta=eta0, steps=steps)
    r0 = np.linalg.norm(R[0])
    lam_K = np.linalg.eigvalsh(KK)
    return {
        "move": float(np.sqrt(move_sq.mean())),
        "drift": np.linalg.norm(KK - K0, 2) / np.linalg.norm(K0, 2),
        "departure": float(np.max(np.linalg.norm(R - R_pred, axis=1)) / r0),
        "residual": np.linalg.norm(R, axis=1) / r0,
        "residual_pred": np.linalg.norm(R_pred, axis=1) / r0,
        "loss_ratio": res.loss[-1] / res.loss[0],
        "lam_min_final": lam_K[0],
        "sharpness_final": eta0 * lam_K[-1],
    }


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return the checked scalars and the series of the figure."""
    cfg = CONFIG["quick" if quick else "full"]
    widths = cfg["widths"]
    rng_data, rng_net = np.random.default_rng(seed).spawn(2)

    # %% Set-up: data, the infinite-width kernel of both layers, one step for both scalings
    X = data.unit_sphere(cfg["n"], cfg["d"], rng=rng_data)  # (n, d)
    y = data.gaussian_labels(cfg["n"], rng=rng_data)  # (n,)
    Theta_inf = kernels.ntk_inf(X)  # (n, n), H_inf + G_inf
    lam = np.linalg.eigvalsh(Theta_inf)
    lam0 = lam[0]
    eta0 = ETA_TIMES_LAM_MAX / lam[-1]

    # %% Train: `inits` inits per width, each trained with both scalings
    runs = {key: [[] for _ in widths] for key in SCALINGS}
    for i, m in enumerate(widths):
        progress(i, len(widths), f"m = {m}")
        for _ in range(cfg["inits"]):
            W0, a0 = net.init_net(cfg["d"], m, rng=rng_net)
            for key, scaling in SCALINGS.items():
                runs[key][i].append(
                    one_run(X, y, W0, a0, Theta_inf, scaling=scaling, eta0=eta0, steps=cfg["steps"])
                )

    # %% Measure: medians over inits, exponents in m, values at the widest width
    m = np.asarray(widths, dtype=float)
    med = {
        (key, q): np.array([np.median([r[q] for r in per_m]) for per_m in rs])
        for key, rs in runs.items()
        for q in ("move", "drift", "departure", "lam_min_final")
    }

    def slope(key, q):
        return fit.power_law(m, med[key, q])[0]

    every = [r for rs in runs.values() for per_m in rs for r in per_m]
    ntk_widest, mf_widest = runs["ntk"][-1][0], runs["mf"][-1][0]  # first init, for the figure
    return {
        "lam0": lam0,
        "eta0": eta0,
        "ntk_move_exponent": slope("ntk", "move"),
        "mf_move_exponent": slope("mf", "move"),
        "move_ratio_widest": med["mf", "move"][-1] / med["ntk", "move"][-1],
        "ntk_drift_exponent": slope("ntk", "drift"),
        "mf_drift_exponent": slope("mf", "drift"),
        "ntk_drift_widest": med["ntk", "drift"][-1],
        "mf_drift_widest": med["mf", "drift"][-1],
        "ntk_departure_exponent": slope("ntk", "departure"),
        "mf_departure_exponent": slope("mf", "departure"),
        "ntk_departure_widest": med["ntk", "departure"][-1],
        "mf_departure_widest": med["mf", "departure"][-1],
        "ntk_kernel_gain_widest": med["ntk", "lam_min_final"][-1] / lam0,
        "mf_kernel_gain_widest": med["mf", "lam_min_final"][-1] / lam0,
        "mf_sharpness_max": max(r["sharpness_final"] for per_m in runs["mf"] for r in per_m),
        "max_final_loss_ratio": max(r["loss_ratio"] for r in every),
        # series for the figure
        "widths": m,
        "ntk_move": med["ntk", "move"],
        "mf_move": med["mf", "move"],
        "ntk_drift": med["ntk", "drift"],
        "mf_drift": med["mf", "drift"],
        "ntk_departure": med["ntk", "departure"],
        "mf_departure": med["mf", "departure"],
        "ntk_residual_widest": ntk_widest["residual"],
        "mf_residual_widest": mf_widest["residual"],
        "ntk_residual_pred_widest": ntk_widest["residual_pred"],
        "mf_residual_pred_widest": mf_widest["residual_pred"],
    }


def plot(result: dict):
    fig, axes = subplots(2, 2, width=4.2, height=3.2)
    m = np.asarray(result["widths"])
    style = {"ntk": ("C0", r"NTK, $1/\sqrt{m}$"), "mf": ("C3", "mean field, $1/m$")}
    panels = (  # axis, quantity, reference exponent, y label, title
        (axes[0, 0], "move", -0.5, "RMS per-neuron move", "(a) per-neuron move"),
        (
            axes[0, 1],
            "drift",
            -1.0,
            r"$\|\Theta(K)-\Theta(0)\|_2/\|\Theta(0)\|_2$",
            "(b) kernel drift",
        ),
        (
            axes[1, 0],
            "departure",
            -0.5,
            r"$\max_k \|r(k) - r_{\Theta_\infty}(k)\| / \|r(0)\|$",
            "(c) departure from the kernel prediction",
        ),
    )
    for ax, q, p_ref, ylabel, title in panels:
        for key, (c, label) in style.items():
            p = result[f"{key}_{q}_exponent"]
            ax.loglog(m, result[f"{key}_{q}"], "o-", color=c, label=f"{label}: $m^{{{p:.2f}}}$")
        ref = result[f"ntk_{q}"][0] * (m / m[0]) ** p_ref
        ax.loglog(m, ref, "k:", lw=1, label=f"$m^{{{p_ref:g}}}$")
        ax.set(xlabel="width m", ylabel=ylabel, title=title)
        ax.legend(fontsize=7)
    ax = axes[1, 1]
    for key, (c, label) in style.items():
        r = np.asarray(result[f"{key}_residual_widest"])
        ax.semilogy(np.arange(r.size), r, color=c, label=f"GD, {label}")
        ax.semilogy(np.asarray(result[f"{key}_residual_pred_widest"]), "--", color=c, lw=1)
    ax.plot([], [], "k--", lw=1, label=r"kernel prediction $(I - \eta_0\Theta_\infty)^k r(0)$")
    ax.set(
        xlabel="step k",
        ylabel=r"$\|r(k)\| / \|r(0)\|$",
        title=f"(d) residuals at m = {int(m[-1])}",
        ylim=(1e-8, 2),
    )
    ax.legend(fontsize=7)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
