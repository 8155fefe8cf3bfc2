"""catapult: above 2 / lambda_max the loss spikes, the kernel shrinks, and GD converges anyway.

Full-batch GD on Du et al.'s two-layer ReLU net (``shared.net``, only ``W``
trained) at a step ``eta`` with ``2 < eta lambda_max(H(0)) < ~4``. The linearised
model ``r(k+1) = (I - eta H(0)) r(k)`` is unstable there and diverges
geometrically. The net is not linear: while the loss spikes the weights move
far, activation patterns flip, and ``lambda_max(H)`` drops until it is below
``2 / eta``; the loss then converges (Lewkowycz, Bahri, Dyer, Sohl-Dickstein,
Gur-Ari 2020, "The large learning rate phase of deep learning: the catapult
mechanism", Sec. 2). Below ``2 / lambda_max(H(0))`` nothing spikes.

The kernel ``H(W)`` of this net depends on the activation patterns only
(``H = (X X^T) * (A A^T) / m``), so here the catapult shrinks the kernel by
switching neurons off on some inputs rather than by shrinking weights. The
window is found by a sweep over ``eta lambda_max(H(0))`` (quick: one init,
full: five), which records for each step whether the loss spiked and whether
it converged.
"""

from __future__ import annotations

import numpy as np

from shared import data, kernels, net
from shared.plotting import subplots, width_colors

CONFIG = {
    # ratios: the swept eta lambda_max(H(0)); inits: nets per ratio
    "quick": {
        "n": 16,
        "d": 16,
        "m": 1000,
        "steps": 300,
        "ratios": [1.6, 2.4, 3.2, 4.0, 6.0, 8.0],
        "inits": 1,
    },
    "full": {
        "n": 16,
        "d": 16,
        "m": 1000,
        "steps": 1000,
        "ratios": [1.6, 1.9, 2.1, 2.4, 2.8, 3.2, 3.6, 4.0, 4.5, 5.0, 6.0, 8.0],
        "inits": 5,
    },
}
RATIO_CATAPULT, RATIO_STABLE = 3.0, 1.8  # eta lambda_max(H(0)) of the two watched runs
SPIKE = 2.0  # a run "spikes" when max_k L(k) / L(0) exceeds this
CONVERGED = 1e-6  # a run "converges" when L(K) / L(0) falls below this


def lambda_max(X: np.ndarray, W: np.ndarray) -> float:
    """Top eigenvalue of ``H(W)`` (Du et al. 2019, Sec. 3): the curvature GD feels along ``u``."""
    return float(np.linalg.eigvalsh(kernels.gram_h(X, W))[-1])


def train_tracking_kernel(X, y, W0, a, *, eta: float, steps: int):
    """GD (``net.train``) watching ``lambda_max(H(W(k)))`` at every step through its callback.

    Returns
    -------
    loss : (K + 1,) ndarray, ``L(k)`` (``K < steps`` if the run diverged).
    lam_max : (K + 1,) ndarray, ``lambda_max(H(W(k)))``.
    W : (m, d) ndarray, the last weights kept.
    """
    lam = []

    def watch(k, W, a, u):
        lam.append(lambda_max(X, W))

    res = net.train(X, y, W0, a, eta=eta, steps=steps, on_divergence="flag", callback=watch)
    return res.loss, np.array(lam), res.W


def linearised_log10_loss_ratio(H0, r0, *, eta: float, steps: int) -> np.ndarray:
    """``log10(L_lin(k) / L_lin(0))`` for the linearised model ``r(k+1) = (I - eta H0) r(k)``.

    ``||r(k)||^2 = sum_i (1 - eta lambda_i)^(2k) (v_i.r0)^2`` (Arora et al. 2019,
    Sec. 4), summed in log space so that growth like ``3^(2k)`` does not overflow.

    Returns
    -------
    (steps + 1,) ndarray
    """
    lam, V = np.linalg.eigh(H0)
    with np.errstate(divide="ignore"):
        log_p = np.log((V.T @ r0) ** 2)  # (n,)
        log_f = 2.0 * np.log(np.abs(1.0 - eta * lam))  # (n,)
    k = np.arange(steps + 1)[:, None]  # (steps + 1, 1)
    log_L = np.logaddexp.reduce(k * log_f[None, :] + log_p[None, :], axis=1)
    return (log_L - log_L[0]) / np.log(10.0)


def sweep(X, y, inits, lam_max0, ratios, *, steps: int):
    """Final and peak loss ratios of GD at ``eta = ratio / lambda_max(H(0))`` for each init.

    Returns ``(len(inits), len(ratios))`` arrays: peak ``max_k L(k) / L(0)`` and
    final ``L(K) / L(0)`` (``inf`` when the run diverged).
    """
    peak = np.empty((len(inits), len(ratios)))
    final = np.empty_like(peak)
    for i, ((W0, a), lm) in enumerate(zip(inits, lam_max0, strict=True)):
        for j, ratio in enumerate(ratios):
            with np.errstate(over="ignore", invalid="ignore"):
                res = net.train(
                    X,
                    y,
                    W0,
                    a,
                    eta=ratio / lm,
                    steps=steps,
                    record_every=steps,
                    on_divergence="flag",
                )
                L = res.loss / res.loss[0]
            peak[i, j] = np.inf if res.diverged else L.max()
            final[i, j] = np.inf if res.diverged else L[-1]
    return peak, final


def window_close(ratios, final) -> float:
    """Smallest swept ``eta lambda_max(H(0))`` from which on no init converges (``inf`` if none)."""
    failed = ~np.any(final < CONVERGED, axis=0)  # (len(ratios),): no init converged
    for j in range(len(ratios)):
        if np.all(failed[j:]):
            return float(ratios[j])
    return float("inf")


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """One catapult run, one stable run, the linearised model, and a sweep over eta."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, m, steps, ratios = cfg["n"], cfg["d"], cfg["m"], cfg["steps"], cfg["ratios"]

    # %% Set-up: data, the inits of the sweep (the first one is watched), lambda_max(H(0))
    rng = np.random.default_rng(seed)
    X = data.unit_sphere(n, d, rng=rng)
    y = data.gaussian_labels(n, rng=rng)
    inits = [net.init_net(d, m, rng=rng) for _ in range(cfg["inits"])]
    W0, a = inits[0]
    lam0_max = lambda_max(X, W0)
    eta = RATIO_CATAPULT / lam0_max
    eta_stable = RATIO_STABLE / lam0_max

    # %% Train: the catapult run and the stable run, watching the kernel
    loss_c, lam_c, _ = train_tracking_kernel(X, y, W0, a, eta=eta, steps=steps)
    progress(1, 3, "catapult run")
    loss_s, lam_s, _ = train_tracking_kernel(X, y, W0, a, eta=eta_stable, steps=steps)
    progress(2, 3, "stable run")

    # %% The linearised model at the catapult step, and the sweep over eta
    H0 = kernels.gram_h(X, W0)
    lin = linearised_log10_loss_ratio(H0, net.predict(X, W0, a) - y, eta=eta, steps=steps)
    peak, final = sweep(X, y, inits, [lambda_max(X, W) for W, _ in inits], ratios, steps=steps)
    progress(3, 3, "sweep")

    # %% Measure
    ratio_c = loss_c / loss_c[0]
    r = np.asarray(ratios)
    catapulted = (peak > SPIKE) & (final < CONVERGED)  # (inits, len(ratios))
    return {
        "eta_lambda_max_H0": RATIO_CATAPULT,
        "lambda_max_H0": lam0_max,
        "spike_ratio": float(ratio_c.max()),
        "spike_step": int(np.argmax(ratio_c)),
        "final_loss_ratio": float(ratio_c[-1]),
        "steps_completed": int(loss_c.size - 1),
        "kernel_final_over_2_eta": float(lam_c[-1] * eta / 2.0),
        "kernel_shrink": float(lam_c[-1] / lam_c[0]),
        "lin_log10_loss_ratio": float(lin[-1]),
        "stable_spike_ratio": float(np.max(loss_s / loss_s[0])),
        "stable_final_loss_ratio": float(loss_s[-1] / loss_s[0]),
        "stable_kernel_shrink": float(lam_s[-1] / lam_s[0]),
        "sweep_peak_below_2": float(peak[:, r < 2.0].max()),
        "sweep_catapult_fraction_2_to_4": float(np.mean(catapulted[:, (r > 2.0) & (r <= 4.0)])),
        "sweep_window_close": window_close(ratios, final),
        # series
        "step": np.arange(loss_c.size),
        "loss_ratio_catapult": ratio_c,
        "loss_ratio_stable": loss_s / loss_s[0],
        "lin_log10_loss_ratio_series": lin,
        "eta_lam_catapult": lam_c * eta,
        "eta_lam_stable": lam_s * eta_stable,
        "ratio_stable": RATIO_STABLE,
        "sweep_ratios": r,
        "sweep_peak": peak,
        "sweep_final": final,
        "sweep_catapulted": catapulted,
    }


def plot(result: dict):
    fig, axes = subplots(1, 3, width=4.0, height=3.4)
    k = np.asarray(result["step"])
    below = np.flatnonzero(np.asarray(result["loss_ratio_catapult"]) < 1e-12)
    k_max = min(k[-1], int(1.5 * below[0]) if below.size else k[-1])
    ax = axes[0]
    ax.semilogy(
        k,
        result["loss_ratio_catapult"],
        "C3-",
        label=rf"ReLU net, $\eta\lambda_{{max}}(H(0))$={result['eta_lambda_max_H0']:.1f}",
    )
    ax.semilogy(
        np.arange(len(result["loss_ratio_stable"])),
        result["loss_ratio_stable"],
        "C0-",
        label=rf"ReLU net, $\eta\lambda_{{max}}(H(0))$={result['ratio_stable']:.1f}",
    )
    lin = np.asarray(result["lin_log10_loss_ratio_series"])
    ax.semilogy(
        np.arange(lin.size),
        10.0 ** np.minimum(lin, 8),
        "k--",
        label="linearised model, same $\\eta$ (clipped)",
    )
    ax.set(
        xlabel="step k",
        ylabel="L(k) / L(0)",
        title="(a) loss: spike, then convergence",
        ylim=(1e-12, 1e8),
        xlim=(0, k_max),
    )
    ax.legend(fontsize=7)

    ax = axes[1]
    ax.plot(k, result["eta_lam_catapult"] / 2, "C3-", label="catapult run")
    ax.plot(
        np.arange(len(result["eta_lam_stable"])),
        np.asarray(result["eta_lam_stable"]) / 2,
        "C0-",
        label="stable run",
    )
    ax.axhline(1.0, color="k", ls=":", lw=1, label=r"$\lambda_{max}(H) = 2/\eta$")
    ax.set(
        xlabel="step k",
        ylabel=r"$\eta\,\lambda_{max}(H(W(k)))\,/\,2$",
        title="(b) the kernel shrinks below 2/eta",
        xlim=(0, k_max),
    )
    ax.legend(fontsize=7)

    ax = axes[2]
    ratios = np.asarray(result["sweep_ratios"])
    peak = np.asarray(result["sweep_peak"], dtype=float)
    final = np.asarray(result["sweep_final"], dtype=float)
    colors = width_colors(peak.shape[0])
    top = 1e10  # peaks above this (or overflowing) are drawn on the top line
    for i in range(peak.shape[0]):
        ok = np.isfinite(final[i]) & (final[i] < CONVERGED)
        shown = np.where(np.isfinite(peak[i]), np.minimum(peak[i], top), top)
        ax.semilogy(ratios, shown, "-", color=colors[i], lw=0.8, alpha=0.7)
        ax.semilogy(ratios[ok], shown[ok], "o", color=colors[i], ms=4)
        ax.semilogy(ratios[~ok], shown[~ok], "x", color=colors[i], ms=6)
    ax.axvline(2.0, color="k", ls=":", lw=1)
    ax.axhline(SPIKE, color="C3", ls="--", lw=0.8, label=f"spike threshold {SPIKE:g}")
    ax.set(
        xlabel=r"$\eta\,\lambda_{max}(H(0))$",
        ylabel=r"$\max_k L(k)/L(0)$ (capped at 1e10)",
        title="(c) sweep: o converged, x did not",
        ylim=(0.5, 3 * top),
    )
    ax.legend(fontsize=7, loc="center right")
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
