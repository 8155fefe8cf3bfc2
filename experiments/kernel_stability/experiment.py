"""kernel_stability: the Gram matrix H(k) barely moves while GD drives the loss to zero.

Du et al. (ICLR 2019) prove linear convergence by showing that the finite-width
Gram matrix ``H(k) = H(W(k))`` stays close to ``H(0)``, and ``H(0)`` close to
``H_inf``, so that ``lambda_min(H(k)) >= lam0 / 2`` at every step (Lemma 3.2 and
Thm 3.2 for gradient flow; Thm 4.1 / Lemma 4.1 for GD). The width enters only
through how far ``H`` can drift.

This experiment trains the two-layer ReLU net (first layer only, the paper's
setting) at a sweep of widths ``m`` and records, every ``s`` steps,
``lambda_min(H(k))`` (``net.train(..., track_kernel=True)``) and the spectral
drift ``||H(k) - H(0)||_2``. It checks that ``lambda_min(H(k)) / lam0`` stays
above 1/2 at moderate width and that ``max_k ||H(k) - H(0)||_2`` falls with
``m`` as a power law, whose exponent is measured rather than assumed.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net
from shared.plotting import subplots, width_colors

CONFIG = {
    # widths: the sweep of m; moderate: the smallest width of the lambda_min claim;
    # inits: nets per width; every: steps between two kernel measurements
    "quick": {
        "n": 30,
        "d": 10,
        "widths": (256, 512, 1024, 2048, 4096),
        "moderate": 1024,
        "inits": 2,
        "steps": 150,
        "every": 10,
    },
    "full": {
        "n": 100,
        "d": 20,
        "widths": (512, 1024, 2048, 4096, 8192, 16384, 32768),
        "moderate": 2048,
        "inits": 2,
        "steps": 200,
        "every": 10,
    },
}


def train_tracking_kernel(X, y, W0, a0, *, eta: float, steps: int, every: int) -> dict:
    """GD recording ``lambda_min(H(k))`` and ``||H(k) - H(0)||_2`` every ``every`` steps.

    ``net.train`` records ``lambda_min(H(k))`` (``track_kernel``); the drift is
    measured by its callback from the current ``W(k)``.

    Returns
    -------
    dict with ``loss (steps + 1,)``, ``k (steps // every + 1,)``,
    ``lam_min (steps // every + 1,)`` and ``drift (steps // every + 1,)``.
    """
    if steps % every:
        raise ValueError(f"steps: expected a multiple of every={every}, got {steps}")
    H0 = kernels.gram_h(X, W0)  # (n, n)
    drift = []

    def watch(k, W, a, u):
        drift.append(float(np.linalg.norm(kernels.gram_h(X, W) - H0, 2)))

    res = net.train(
        X, y, W0, a0, eta=eta, steps=steps, track_kernel=True, record_every=every, callback=watch
    )
    return {
        "loss": res.loss,
        "k": res.recorded_steps,
        "lam_min": res.lambda_min_H,
        "drift": np.asarray(drift),
    }


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, widths = cfg["n"], cfg["d"], cfg["widths"]

    # %% Set-up: data, H_inf and its spectrum, the step 1 / lambda_max(H_inf)
    rng = np.random.default_rng(seed)
    X = data.unit_sphere(n, d, rng=rng)
    y = data.gaussian_labels(n, rng=rng)
    lam = np.linalg.eigvalsh(kernels.h_inf(X))  # (n,) ascending
    lam0 = lam[0]
    eta = 1.0 / lam[-1]

    # %% Train: every width, several inits, watching the kernel
    drift_max = np.empty((len(widths), cfg["inits"]))  # max_k ||H(k) - H(0)||_2
    ratio_min = np.empty_like(drift_max)  # min_k lambda_min(H(k)) / lam0
    ratio_init = np.empty_like(drift_max)  # lambda_min(H(0)) / lam0
    final_loss_ratio = np.empty_like(drift_max)
    traces = []  # first init of each width, for the figure
    total = len(widths) * cfg["inits"]
    for i, m in enumerate(widths):
        for j in range(cfg["inits"]):
            progress(i * cfg["inits"] + j, total, f"m = {m}")
            W0, a0 = net.init_net(d, m, rng=rng)
            tr = train_tracking_kernel(
                X, y, W0, a0, eta=eta, steps=cfg["steps"], every=cfg["every"]
            )
            drift_max[i, j] = tr["drift"].max()
            ratio_min[i, j] = tr["lam_min"].min() / lam0
            ratio_init[i, j] = tr["lam_min"][0] / lam0
            final_loss_ratio[i, j] = tr["loss"][-1] / tr["loss"][0]
            if j == 0:
                traces.append(tr)

    # %% Measure: lambda_min against lam0 / 2, the drift exponent in m
    drift_mean = drift_max.mean(axis=1)  # (len(widths),)
    exponent, exponent_se = fit.power_law(np.asarray(widths, dtype=float), drift_mean)
    mod = widths.index(cfg["moderate"])
    return {
        "lam0": lam0,
        "eta": eta,
        "moderate_width": cfg["moderate"],
        "lam_min_ratio_moderate": float(ratio_min[mod:].min()),
        "lam_min_ratio_narrowest": float(ratio_min[0].min()),
        "drift_exponent": exponent,
        "drift_exponent_se": exponent_se,
        "drift_over_lam0_widest": float(drift_mean[-1] / lam0),
        "max_final_loss_ratio": float(final_loss_ratio.max()),
        "widths": np.asarray(widths),
        "drift_mean": drift_mean,
        "drift_all": drift_max,
        "ratio_min": ratio_min,
        "ratio_init": ratio_init,
        "trace_k": traces[0]["k"],
        "trace_lam_min_ratio": np.array([t["lam_min"] / lam0 for t in traces]),
        "trace_drift": np.array([t["drift"] for t in traces]),
        "trace_loss_ratio": np.array([t["loss"] / t["loss"][0] for t in traces]),
    }


def plot(result: dict):
    fig, axes = subplots(2, 2, width=4.2, height=3.1)
    widths = np.asarray(result["widths"])
    colors = width_colors(len(widths))
    k = np.asarray(result["trace_k"])

    ax = axes[0, 0]
    for loss, m, c in zip(result["trace_loss_ratio"], widths, colors, strict=True):
        ax.semilogy(np.arange(len(loss)), loss, color=c, label=f"m = {m}")
    ax.set(xlabel="step k", ylabel="L(k) / L(0)", title="GD loss, $\\eta = 1/\\lambda_{max}$")
    ax.legend()

    ax = axes[0, 1]
    for ratio, c in zip(result["trace_lam_min_ratio"], colors, strict=True):
        ax.plot(k, ratio, ".-", color=c)
    ax.axhline(0.5, color="C3", ls="--", label=r"$\lambda_0 / 2$ (Thm 4.1)")
    ax.set(
        xlabel="step k",
        ylabel=r"$\lambda_{min}(H(k)) / \lambda_0$",
        title=r"$\lambda_{min}(H(k))$, one init per width",
        ylim=(0, 1.1),
    )
    ax.legend(loc="lower right")

    ax = axes[1, 0]
    for drift, c in zip(result["trace_drift"], colors, strict=True):
        ax.plot(k, drift / result["lam0"], ".-", color=c)
    ax.set(
        xlabel="step k",
        ylabel=r"$\|H(k) - H(0)\|_2 / \lambda_0$",
        title="kernel drift (colours as in the loss panel)",
    )

    ax = axes[1, 1]
    m = widths.astype(float)
    drift_all = np.asarray(result["drift_all"])
    ax.loglog(
        np.repeat(m, drift_all.shape[1]),
        drift_all.ravel(),
        "o",
        color="0.7",
        ms=3,
        label="each init",
    )
    ax.loglog(
        m,
        result["drift_mean"],
        "o-",
        label=f"mean, slope {result['drift_exponent']:.2f} "
        f"$\\pm$ {result['drift_exponent_se']:.2f}",
    )
    d0 = result["drift_mean"][0]
    ax.loglog(m, d0 * (m[0] / m) ** 0.5, "k--", lw=0.8, label="$m^{-1/2}$")
    ax.loglog(m, d0 * (m[0] / m), "k:", lw=0.8, label="$m^{-1}$")
    ax.set(xlabel="width m", ylabel=r"$\max_k \|H(k) - H(0)\|_2$", title="drift vs width")
    ax.set_xticks(m, [str(int(w)) for w in m], minor=False)
    ax.set_xticks([], minor=True)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend()
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
