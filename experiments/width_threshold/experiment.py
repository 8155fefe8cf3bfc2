"""width_threshold: how wide is wide enough for GD to drive the loss to zero?

Du et al. (ICLR 2019, Thm 4.1) prove linear convergence of GD once the width is
``m = Omega(n^6 / (lam0^4 delta^3))`` (``delta`` the failure probability). Up to
its unspecified constant that is an astronomically large number for any data
set one can train on. This experiment puts it next to what GD actually needs.

For one data set (``n`` points uniform on the sphere in ``R^d``, Gaussian
labels) it trains nets over a grid of widths, several inits each, at the fixed
step ``eta = 1 / lambda_max(H_inf)`` and a fixed budget of steps, and calls a
run converged when ``L(k) / L(0) <= 1e-3`` within the budget. Nets with
``m d < n`` have fewer trainable weights than data points and cannot
interpolate; they stall. The empirical width is the smallest width at which
every init converges; its ratio to ``n^6 / (lam0^4 delta^3)`` (``delta = 0.1``)
says how loose the width requirement of the theorem is.
"""

from __future__ import annotations

import numpy as np

from shared import data, kernels, net
from shared.plotting import subplots, width_colors

TARGET = 1e-3  # converged: L(k) / L(0) <= TARGET within the budget
DELTA = 0.1  # failure probability in Thm 4.1's width

CONFIG = {
    "quick": {
        "n": 30,
        "d": 10,
        "widths": (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
        "inits": 4,
        "budget": 500,
    },
    "full": {
        "n": 200,
        "d": 20,
        "widths": (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384),
        "inits": 5,
        "budget": 1000,
    },
}


def train_until(X, y, W0, a0, *, eta: float, budget: int) -> np.ndarray:
    """GD for at most ``budget`` steps, stopping at the first step with ``L(k)/L(0) <= TARGET``.

    Returns
    -------
    loss : (k_stop + 1,) ndarray, ``L(k)``; ``inf`` appended if the loss became non-finite.
    """
    res = net.train(
        X, y, W0, a0, eta=eta, steps=budget, record_every=budget, tol=TARGET, on_divergence="flag"
    )
    return np.append(res.loss, np.inf) if res.diverged else res.loss


def theoretical_width(n: int, lam0: float, delta: float = DELTA) -> float:
    """``n^6 / (lam0^4 delta^3)``: Thm 4.1's width requirement with its constant set to 1."""
    return float(n) ** 6 / (lam0**4 * delta**3)


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, widths, inits = cfg["n"], cfg["d"], np.asarray(cfg["widths"]), cfg["inits"]
    rng = np.random.default_rng(seed)

    # %% Set-up: data, H_inf, one step eta for every width
    X = data.unit_sphere(n, d, rng=rng)
    y = data.gaussian_labels(n, rng=rng)
    lam = np.linalg.eigvalsh(kernels.h_inf(X))  # (n,) ascending
    lam0 = lam[0]
    eta = 1.0 / lam[-1]

    # %% Train: GD from several inits at each width, until the target or the budget
    final = np.empty((len(widths), inits))  # L(k_stop) / L(0)
    k_hit = np.full((len(widths), inits), np.nan)  # first k with L(k)/L(0) <= TARGET
    curves = []  # first init of each width, for the figure
    for i, m in enumerate(widths):
        for j in range(inits):
            progress(i * inits + j, len(widths) * inits, f"m = {m}")
            W0, a0 = net.init_net(d, int(m), rng=rng)
            loss = train_until(X, y, W0, a0, eta=eta, budget=cfg["budget"])
            final[i, j] = loss[-1] / loss[0]
            hit = np.flatnonzero(loss <= TARGET * loss[0])
            if hit.size:
                k_hit[i, j] = hit[0]
            if j == 0:
                curves.append(loss / loss[0])

    # %% Measure: the smallest width that converges on every init, against Thm 4.1's width
    converged = final <= TARGET  # (len(widths), inits)
    frac = converged.mean(axis=1)  # (len(widths),)
    narrow = widths * d < n  # fewer weights than data points
    all_wider = np.flip(np.cumprod(np.flip(frac == 1.0))).astype(bool)  # every width >= m converges
    if not all_wider.any():
        raise ValueError(f"widths: no width up to {widths[-1]} converged on every init")
    m_emp = int(widths[np.argmax(all_wider)])
    m_theory = theoretical_width(n, lam0)
    return {
        "n": n,
        "d": d,
        "lam0": lam0,
        "eta": eta,
        "budget": cfg["budget"],
        "m_theory": m_theory,
        "m_empirical": m_emp,
        "m_interpolation": n / d,
        "log10_width_ratio": float(np.log10(m_theory / m_emp)),
        "converged_fraction_narrow": float(frac[narrow].max()),
        "min_final_loss_ratio_narrow": float(final[narrow].min()),
        "converged_fraction_widest": float(frac[-1]),
        # largest fall of the converged count from one width to the next wider one
        "max_drop_in_inits": int(max(0, -np.diff(converged.sum(axis=1)).min())),
        "widths": widths,
        "converged_fraction": frac,
        "final_loss_ratio": final,
        "steps_to_target": k_hit,
        "curves": curves,
    }


def plot(result: dict):
    fig, axes = subplots(2, 2, width=4.2, height=3.1)
    widths = np.asarray(result["widths"], dtype=float)
    n, d = result["n"], result["d"]

    ax = axes[0, 0]
    colors = width_colors(len(widths))
    for curve, m, c in zip(result["curves"], widths, colors, strict=True):
        ax.semilogy(np.arange(len(curve)), curve, color=c, label=f"m = {int(m)}")
    ax.axhline(TARGET, color="k", ls="--", lw=0.8)
    ax.set(
        xlabel="step k", ylabel="L(k) / L(0)", title="GD loss, one init per width", ylim=(1e-6, 2)
    )
    ax.legend(ncol=3, fontsize=7, loc="lower left")

    ax = axes[0, 1]
    k_hit = np.asarray(result["steps_to_target"], dtype=float)
    m_all = np.repeat(widths, k_hit.shape[1])
    ok = np.isfinite(k_hit.ravel())
    ax.semilogx(m_all[ok], k_hit.ravel()[ok], "o", color="C0", ms=4, label="converged")
    ax.semilogx(
        m_all[~ok],
        np.full((~ok).sum(), result["budget"]),
        "v",
        color="C3",
        ms=4,
        label="not converged",
    )
    ax.axvline(n / d, color="C3", lw=0.8)
    ax.set(
        xlabel="width m",
        ylabel=f"steps to L/L(0) <= {TARGET:g}",
        title=f"steps needed (triangles: not within {result['budget']})",
        ylim=(0, 1.08 * result["budget"]),
    )
    ax.legend(loc="upper right")

    ax = axes[1, 0]
    ax.semilogx(widths, result["converged_fraction"], "o-")
    ax.axvline(n / d, color="C3", lw=0.8, label="m = n / d")
    ax.axvline(result["m_empirical"], color="C2", ls="--", lw=0.8, label="empirical width")
    ax.set(
        xlabel="width m",
        ylabel="fraction of inits converged",
        ylim=(-0.05, 1.05),
        title=f"converged: L/L(0) <= {TARGET:g}",
    )
    ax.legend()

    ax = axes[1, 1]
    names = ["m = n / d", "empirical", "Thm 4.1\n$n^6/(\\lambda_0^4\\delta^3)$"]
    vals = [result["m_interpolation"], result["m_empirical"], result["m_theory"]]
    ax.bar(range(3), vals, color=["C3", "C2", "C0"])
    ax.set_yscale("log")
    ax.set_xticks(range(3), names)
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.3g}", ha="center", va="bottom")
    ax.set(
        ylabel="width m",
        title=f"n = {n}, d = {d}, $\\lambda_0$ = {result['lam0']:.3f}, $\\delta$ = {DELTA}",
    )
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
