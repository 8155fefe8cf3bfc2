"""both_layers: training both layers adds G_inf to the kernel and speeds up the slowest direction.

When only ``W`` is trained, predictions move with ``H_inf`` (Du et al., ICLR 2019,
Sec. 3). When ``a`` is trained too, the gradient with respect to ``a_r`` adds the
second-layer Gram matrix ``G`` and the kernel becomes the neural tangent kernel
``Theta_inf = H_inf + G_inf`` (Du et al. 2019, Sec. 3.2; Jacot et al. 2018).
``G_inf`` is positive definite, so ``lambda_min(Theta_inf) > lambda_min(H_inf)``
(Weyl's inequality) and the asymptotic rate of GD improves.

This experiment computes both kernels and their smallest eigenvalues, trains the
same net from the same init with one step size ``eta`` twice, once on ``W``
alone and once on ``(W, a)``, and compares each fitted per-step slope of
``log L(k)`` with ``2 ln(1 - eta lambda_min)`` of its own kernel. It also checks
that the empirical kernel ``H(W) + G(W)`` at init converges to the closed form
``Theta_inf`` like ``m^(-1/2)``. The step ``eta = 1 / lambda_max(Theta_inf)``
is stable for both runs: ``lambda_max(H_inf) < lambda_max(Theta_inf)``, so
``eta lambda_max < 2`` holds for either kernel.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net
from shared.plotting import subplots, width_colors

FLOOR = fit.floor_ratio(np.float64)  # 1e-14: the slope fit ends there, so training may too
CONFIG = {
    "quick": {
        "n": 40,
        "d": 20,
        "m": 16000,
        "steps": 1200,
        "widths": (100, 400, 1600, 6400),
        "draws": 12,
    },
    "full": {
        "n": 200,
        "d": 50,
        "m": 8000,
        "steps": 4000,
        "widths": (250, 1000, 4000, 16000, 64000),
        "draws": 3,
    },
}


def kernel_error(X: np.ndarray, Theta: np.ndarray, *, widths, draws: int, rng) -> np.ndarray:
    """Relative error ``||H(W) + G(W) - Theta_inf||_2 / ||Theta_inf||_2`` at init.

    Returns
    -------
    err : (len(widths), draws) ndarray, one fresh ``W ~ N(0, I)`` per entry.
    """
    scale = np.linalg.norm(Theta, 2)
    err = np.empty((len(widths), draws))
    for i, m in enumerate(widths):
        for j in range(draws):
            W, _ = net.init_net(X.shape[1], m, rng=rng)  # (m, d)
            K = kernels.gram_h(X, W) + kernels.gram_g(X, W)  # (n, n)
            err[i, j] = np.linalg.norm(K - Theta, 2) / scale
    return err


def _slope_line(ax, loss, slope, **kw):
    """Dashed line ``L(k0) exp(slope (k - k0))`` through the loss where it crosses 1e-3 L(0)."""
    ratio = loss / loss[0]
    k0 = int(np.argmax(ratio <= 1e-3)) if np.any(ratio <= 1e-3) else len(loss) // 2
    k = np.arange(len(loss))
    ax.semilogy(k, ratio[k0] * np.exp(slope * (k - k0)), "--", **kw)


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    cfg = CONFIG["quick" if quick else "full"]
    rng = np.random.default_rng(seed)
    n, d, m, steps = cfg["n"], cfg["d"], cfg["m"], cfg["steps"]

    # %% Set-up: data, the two limit kernels H_inf and Theta_inf, one step eta, one init
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    y = data.gaussian_labels(n, rng=rng)  # (n,)

    H = kernels.h_inf(X)  # (n, n), W trained
    Theta = kernels.ntk_inf(X)  # (n, n), W and a trained
    lam_H = np.linalg.eigvalsh(H)  # (n,) ascending
    lam_T = np.linalg.eigvalsh(Theta)
    eta = 1.0 / lam_T[-1]  # eta lambda_max(H_inf) < eta lambda_max(Theta_inf) = 1 < 2

    W0, a0 = net.init_net(d, m, rng=rng)
    u0 = net.predict(X, W0, a0)  # (n,)

    # %% Train: GD on W alone, then on (W, a), each beside its kernel-regime prediction
    runs = {}
    for i, (name, train_a, K, lam0) in enumerate(
        (("W", False, H, lam_H[0]), ("Wa", True, Theta, lam_T[0]))
    ):
        progress(i, 3, f"GD on {name}, m = {m}")
        res = net.train(
            X, y, W0, a0, eta=eta, steps=steps, train_a=train_a, record_every=steps, tol=FLOOR
        )
        # kernel-regime loss 1/2 ||(I - eta K)^k (y - u(0))||^2 (Arora et al. 2019, Sec. 4)
        kernel_loss = 0.5 * kernels.predicted_residuals(K, y, eta=eta, steps=steps, u0=u0) ** 2
        runs[name] = {
            "loss": res.loss,
            "steps": np.inf if res.stopped_step is None else res.stopped_step,
            "slope": fit.log_rate(res.loss),
            "predicted": 2.0 * np.log(1.0 - eta * lam0),
            "windowed": fit.log_rate(kernel_loss),
            "kernel_loss": kernel_loss,
        }

    # %% Measure: the empirical kernel at init against Theta_inf, over widths
    progress(2, 3, "kernel at init")
    widths = cfg["widths"]
    err = kernel_error(X, Theta, widths=widths, draws=cfg["draws"], rng=rng)
    err_mean = err.mean(axis=1)  # (len(widths),)
    exponent, exponent_se = fit.power_law(np.asarray(widths, dtype=float), err_mean)

    W, Wa = runs["W"], runs["Wa"]
    return {
        "lam0_H": lam_H[0],
        "lam0_ntk": lam_T[0],
        "lam0_ratio": lam_T[0] / lam_H[0],
        "lam_max_H": lam_H[-1],
        "lam_max_ntk": lam_T[-1],
        "eta": eta,
        "slope_W": W["slope"],
        "slope_Wa": Wa["slope"],
        "predicted_slope_W": W["predicted"],
        "predicted_slope_Wa": Wa["predicted"],
        "rate_ratio_W": W["slope"] / W["predicted"],
        "rate_ratio_Wa": Wa["slope"] / Wa["predicted"],
        "windowed_slope_W": W["windowed"],
        "windowed_slope_Wa": Wa["windowed"],
        "windowed_ratio_W": W["slope"] / W["windowed"],
        "windowed_ratio_Wa": Wa["slope"] / Wa["windowed"],
        "speedup": Wa["slope"] / W["slope"],
        "predicted_speedup": Wa["predicted"] / W["predicted"],
        "final_loss_ratio_W": W["loss"][-1] / W["loss"][0],
        "final_loss_ratio_Wa": Wa["loss"][-1] / Wa["loss"][0],
        "steps_to_floor_W": W["steps"],
        "steps_to_floor_Wa": Wa["steps"],
        "kernel_error_exponent": exponent,
        "kernel_error_exponent_se": exponent_se,
        "kernel_error_widest": err_mean[-1],
        "width_trained": m,
        "loss_W": W["loss"],
        "loss_Wa": Wa["loss"],
        "kernel_loss_W": W["kernel_loss"],
        "kernel_loss_Wa": Wa["kernel_loss"],
        "spectrum_H": lam_H,
        "spectrum_ntk": lam_T,
        "widths": np.asarray(widths),
        "kernel_error_mean": err_mean,
        "kernel_error_all": err,
    }


def plot(result: dict):
    fig, axes = subplots(1, 3, width=4.0, height=3.2)
    colors = {"W": "C0", "Wa": "C3"}
    labels = {"W": "W only ($H_\\infty$)", "Wa": "W and a ($H_\\infty + G_\\infty$)"}

    ax = axes[0]
    for key in ("W", "Wa"):
        loss = np.asarray(result[f"loss_{key}"])
        ax.semilogy(loss / loss[0], color=colors[key], label=f"GD on {labels[key]}")
        kernel_loss = np.asarray(result[f"kernel_loss_{key}"])
        ax.semilogy(kernel_loss / kernel_loss[0], "k:", lw=1.0)
        _slope_line(ax, loss, result[f"predicted_slope_{key}"], color=colors[key], lw=1.0)
    ax.plot([], [], "k:", lw=1.0, label=r"kernel regime $\|(I-\eta K)^k(y-u(0))\|^2$")
    ax.plot([], [], "k--", lw=1.0, label=r"slope $2\ln(1-\eta\lambda_{min}(K))$")
    ax.set(
        xlabel="step k",
        ylabel="L(k) / L(0)",
        ylim=(1e-16, 2),
        title=f"same $\\eta = 1/\\lambda_{{max}}(\\Theta_\\infty)$, m = {result['width_trained']}",
    )
    ax.legend(loc="upper right", fontsize=7)

    ax = axes[1]
    for key, lab in (("W", "$H_\\infty$"), ("Wa", "$H_\\infty + G_\\infty$")):
        lam = np.asarray(result["spectrum_H" if key == "W" else "spectrum_ntk"])[::-1]
        ax.semilogy(np.arange(1, len(lam) + 1), lam, ".-", color=colors[key], label=lab)
    ax.set(
        xlabel="index i",
        ylabel=r"$\lambda_i$",
        title=f"spectra: $\\lambda_{{min}}$ ratio {result['lam0_ratio']:.2f}",
    )
    ax.legend()

    ax = axes[2]
    widths = np.asarray(result["widths"], dtype=float)
    err = np.asarray(result["kernel_error_all"])
    ax.loglog(np.repeat(widths, err.shape[1]), err.ravel(), "o", color="0.7", ms=3, label="draws")
    c = width_colors(2)[1]
    ax.loglog(widths, result["kernel_error_mean"], "o-", color=c, label="mean")
    ref = result["kernel_error_mean"][0] * (widths / widths[0]) ** -0.5
    ax.loglog(widths, ref, "k:", label="$m^{-1/2}$")
    ax.set(
        xlabel="width m",
        ylabel=r"$\|H(0)+G(0)-\Theta_\infty\|_2 / \|\Theta_\infty\|_2$",
        title=f"kernel at init: slope {result['kernel_error_exponent']:.2f}",
    )
    ax.legend()
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
