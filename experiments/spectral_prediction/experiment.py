"""spectral_prediction: the eigen-decomposition of H_inf predicts the whole GD residual curve.

Arora, Du, Hu, Li, Wang (ICML 2019, arXiv 1901.08584) sharpen the linear-rate
bound of Du et al. into a prediction of the whole trajectory: with
``H_inf = sum_i lambda_i v_i v_i^T`` and ``u(0) = 0``,
``||y - u(k)|| ~= sqrt(sum_i (1 - eta lambda_i)^(2k) (v_i . y)^2)`` (their Sec. 4,
Theorem 4.1). Labels whose energy sits on the top eigenvectors are learned fast;
random labels spread over the whole spectrum and are learned slowly. The distance
travelled by the weights tends to ``sqrt(y^T H_inf^-1 y)`` (their Sec. 5).

(a) With the antisymmetric init (``u(0) = 0`` exactly) the measured residual curve
is compared with the prediction at several widths; the worst gap over the run,
relative to ``||y||``, is fitted as a power of ``m``. (b) On the same inputs,
structured labels ``sign(x_1)`` (``data.two_clusters``) and random +-1 labels are
compared: the fraction of ``||y||^2`` on the top ``d + 1`` eigenvectors of
``H_inf``, the loss after ``K`` steps, and ``||W(k) - W(0)||_F`` at convergence
against ``sqrt(y^T H_inf^-1 y)``.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net
from shared.plotting import subplots

CONFIG = {
    "quick": {
        "n": 60,
        "d": 12,
        "margin": 0.1,
        "widths": (250, 1000, 4000, 16000),
        "inits": {"structured": 4, "random": 1},
        "random_fit_from": 1000,
        "width_long": 4000,
        "steps_curve": 200,
        "steps_long": 1000,
    },
    "full": {
        "n": 100,
        "d": 30,
        "margin": 0.1,
        "widths": (250, 1000, 4000, 16000, 64000),
        "inits": {"structured": 1, "random": 1},
        "random_fit_from": 1000,
        "width_long": 16000,
        "steps_curve": 400,
        "steps_long": 3000,
    },
}
LABELS = ("structured", "random")


def top_fraction(V: np.ndarray, y: np.ndarray, k: int) -> float:
    """Fraction of ``||y||^2`` on the last ``k`` columns of ``V (n, n)`` (top eigenvectors)."""
    proj = V[:, -k:].T @ y  # (k,)
    return float(proj @ proj / (y @ y))


def predicted_distance(lam: np.ndarray, V: np.ndarray, y: np.ndarray, *, eta: float, steps: int):
    """``||W(k) - W(0)||_F`` of the kernel-regime dynamics for ``k = 0..steps``, ``u(0) = 0``.

    With ``J`` the Jacobian of ``u`` in ``W`` and ``H = J J^T = sum_i lambda_i v_i v_i^T``,
    GD moves ``W(k) - W(0) = J^T H^-1 (I - (I - eta H)^k) y``, so
    ``||W(k) - W(0)||_F^2 = sum_i (1 - (1 - eta lambda_i)^k)^2 (v_i . y)^2 / lambda_i``,
    which tends to ``y^T H^-1 y`` (Arora et al. 2019, Sec. 5) as ``k`` grows.
    ``lam (n,)`` and ``V (n, n)`` are the eigen-decomposition of ``H_inf``.

    Returns
    -------
    distance : (steps + 1,) ndarray
    """
    k = np.arange(steps + 1)[:, None]  # (steps + 1, 1)
    reached = 1.0 - (1.0 - eta * lam)[None, :] ** k  # (steps + 1, n)
    return np.sqrt(reached**2 @ ((V.T @ y) ** 2 / lam))


def curve_error(loss: np.ndarray, predicted: np.ndarray, y: np.ndarray) -> float:
    """``max_k | ||y - u(k)|| - predicted(k) | / ||y||`` over the steps both curves cover."""
    k = min(len(loss), len(predicted))
    measured = np.sqrt(2.0 * loss[:k])  # L = 1/2 ||u - y||^2
    return float(np.max(np.abs(measured - predicted[:k])) / np.linalg.norm(y))


def summarize(y, res, err, predicted, *, lam, V, eta, widths, k_top: int, K: int) -> dict:
    """The quantities of one label vector ``y (n,)``.

    ``err (len(widths),)`` holds the curve errors at each width (fitted as a power of ``m``),
    ``res`` the long run, ``predicted`` the spectral residual curve; ``K`` is the number of
    steps over which the losses are compared, ``k_top`` the number of top eigenvectors
    (columns of ``V``) and ``lam (n,)``, ``V (n, n)`` the eigen-decomposition of ``H_inf``.
    """
    exponent, exponent_se = fit.power_law(np.asarray(widths, dtype=float), err)
    steps = len(res.loss) - 1
    distance_curve = predicted_distance(lam, V, y, eta=eta, steps=steps)  # (steps + 1,)
    ratio = res.loss / res.loss[0]  # (steps + 1,), L(k) / L(0)
    predicted_ratio = (predicted[: steps + 1] / predicted[0]) ** 2
    return {
        "curve_error_exponent": exponent,
        "curve_error_exponent_se": exponent_se,
        "curve_error_widest": err[-1],
        "top_fraction": top_fraction(V, y, k_top),
        "mean_loss_ratio_K": float(ratio[: K + 1].mean()),
        "predicted_mean_loss_ratio_K": float(predicted_ratio[: K + 1].mean()),
        "loss_ratio_K": ratio[K],
        "final_loss_ratio": ratio[-1],
        "distance": res.move_fro[-1],
        "predicted_distance": distance_curve[-1],
        "distance_limit": np.sqrt(np.sum((V.T @ y) ** 2 / lam)),  # sqrt(y^T H_inf^-1 y)
        "distance_ratio": res.move_fro[-1] / distance_curve[-1],
        # series for the figure
        "residual": np.sqrt(2.0 * res.loss) / np.linalg.norm(y),
        "predicted_residual": predicted / np.linalg.norm(y),
        "energy": ((V.T @ y) ** 2 / (y @ y))[::-1],  # top eigenvector first
        "move_steps": res.recorded_steps,
        "move_fro": res.move_fro,
        "predicted_move_fro": distance_curve[res.recorded_steps],
    }


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    cfg = CONFIG["quick" if quick else "full"]
    rng = np.random.default_rng(seed)
    n, d, widths, inits = cfg["n"], cfg["d"], np.asarray(cfg["widths"]), cfg["inits"]
    steps_curve, steps_long = cfg["steps_curve"], cfg["steps_long"]

    # %% Set-up: inputs with structured and random labels, H_inf's spectrum, the predictions
    X, y_struct = data.two_clusters(n, d, margin=cfg["margin"], rng=rng)  # (n, d), (n,)
    y_rand = rng.choice([-1.0, 1.0], size=n)  # (n,), same X, labels independent of X
    ys = {"structured": y_struct, "random": y_rand}
    H = kernels.h_inf(X)  # (n, n)
    lam, V = kernels.spectrum(H)  # (n,) ascending, (n, n)
    eta = 1.0 / lam[-1]
    predicted = {
        key: kernels.predicted_residuals(H, y, eta=eta, steps=steps_long) for key, y in ys.items()
    }  # each (steps_long + 1,)

    # %% Train: (a) residual curve vs prediction at each width, the mean over `inits` inits;
    # (b) the first init at width_long runs steps_long steps
    err = {key: np.empty((len(widths), inits[key])) for key in LABELS}
    long = {}
    runs, done = len(widths) * sum(inits.values()), 0
    for i, m in enumerate(widths):
        for r in range(max(inits.values())):
            long_run = m == cfg["width_long"] and r == 0
            W0, a0 = net.init_net(d, m, rng=rng, antisymmetric=True)  # u(0) = 0 exactly
            for key in (key for key in LABELS if r < inits[key]):
                progress(done, runs, f"m = {m}, {key} labels")
                done += 1
                steps, every = (steps_long, 10) if long_run else (steps_curve, steps_curve)
                res = net.train(X, ys[key], W0, a0, eta=eta, steps=steps, record_every=every)
                err[key][i, r] = curve_error(res.loss[: steps_curve + 1], predicted[key], ys[key])
                if long_run:
                    long[key] = res

    # %% Measure: (a) the mean curve error against m; (b) structured vs random labels
    k_top = d + 1
    common = {"lam": lam, "V": V, "eta": eta, "k_top": k_top, "K": steps_curve}
    err_mean = {key: e.mean(axis=1) for key, e in err.items()}  # each (len(widths),)
    wide = widths >= cfg["random_fit_from"]  # random labels: fit where the net is lazy
    st = summarize(
        y_struct,
        long["structured"],
        err_mean["structured"],
        predicted["structured"],
        widths=widths,
        **common,
    )
    rd = summarize(
        y_rand,
        long["random"],
        err_mean["random"][wide],
        predicted["random"],
        widths=widths[wide],
        **common,
    )
    speed_ratio = rd["mean_loss_ratio_K"] / st["mean_loss_ratio_K"]
    distance_ratio = rd["distance"] / st["distance"]
    return {
        "eta": eta,
        "lam0": lam[0],
        "lam_max": lam[-1],
        "width_long": cfg["width_long"],
        "steps_long": steps_long,
        "k_top": k_top,
        "K": steps_curve,
        "curve_error_exponent_structured": st["curve_error_exponent"],
        "curve_error_exponent_se_structured": st["curve_error_exponent_se"],
        "curve_error_widest_structured": st["curve_error_widest"],
        "top_fraction_structured": st["top_fraction"],
        "loss_ratio_K_structured": st["loss_ratio_K"],
        "mean_loss_ratio_K_structured": st["mean_loss_ratio_K"],
        "predicted_mean_loss_ratio_K_structured": st["predicted_mean_loss_ratio_K"],
        "final_loss_ratio_structured": st["final_loss_ratio"],
        "distance_structured": st["distance"],
        "predicted_distance_structured": st["predicted_distance"],
        "distance_limit_structured": st["distance_limit"],
        "distance_ratio_structured": st["distance_ratio"],
        "curve_error_exponent_random": rd["curve_error_exponent"],
        "curve_error_exponent_se_random": rd["curve_error_exponent_se"],
        "curve_error_widest_random": rd["curve_error_widest"],
        "top_fraction_random": rd["top_fraction"],
        "loss_ratio_K_random": rd["loss_ratio_K"],
        "mean_loss_ratio_K_random": rd["mean_loss_ratio_K"],
        "predicted_mean_loss_ratio_K_random": rd["predicted_mean_loss_ratio_K"],
        "final_loss_ratio_random": rd["final_loss_ratio"],
        "distance_random": rd["distance"],
        "predicted_distance_random": rd["predicted_distance"],
        "distance_limit_random": rd["distance_limit"],
        "distance_ratio_random": rd["distance_ratio"],
        "top_fraction_ratio": st["top_fraction"] / (k_top / n),  # E (v_i . y)^2 = 1, random
        "speed_ratio": speed_ratio,
        "log10_speed_ratio": np.log10(speed_ratio),
        "predicted_speed_ratio": rd["predicted_mean_loss_ratio_K"]
        / st["predicted_mean_loss_ratio_K"],
        "distance_random_over_structured": distance_ratio,
        "log10_distance_random_over_structured": np.log10(distance_ratio),
        "predicted_distance_random_over_structured": rd["predicted_distance"]
        / st["predicted_distance"],
        # series for the figure
        "widths": widths,
        "random_fit_from": cfg["random_fit_from"],
        "curve_error_structured": err_mean["structured"],
        "residual_structured": st["residual"],
        "predicted_residual_structured": st["predicted_residual"],
        "energy_structured": st["energy"],
        "move_steps_structured": st["move_steps"],
        "move_fro_structured": st["move_fro"],
        "predicted_move_fro_structured": st["predicted_move_fro"],
        "curve_error_random": err_mean["random"],
        "residual_random": rd["residual"],
        "predicted_residual_random": rd["predicted_residual"],
        "energy_random": rd["energy"],
        "move_steps_random": rd["move_steps"],
        "move_fro_random": rd["move_fro"],
        "predicted_move_fro_random": rd["predicted_move_fro"],
        "spectrum": lam[::-1],
    }


def plot(result: dict):
    fig, axes = subplots(2, 3, width=3.9, height=3.1)
    colors = {"structured": "C0", "random": "C3"}
    K = result["K"]

    for ax, logy in ((axes[0, 0], False), (axes[0, 1], True)):
        for key in LABELS:
            r = np.asarray(result[f"residual_{key}"])
            pred = np.asarray(result[f"predicted_residual_{key}"])
            last = K + 1 if not logy else len(r)
            ax.plot(r[:last], color=colors[key], label=f"{key} labels")
            ax.plot(pred[:last], "k--", lw=0.9)
        ax.plot(
            [], [], "k--", lw=0.9, label=r"$\sqrt{\sum_i (1-\eta\lambda_i)^{2k}(v_i\cdot y)^2}$"
        )
        ax.set(xlabel="step k", ylabel=r"$\|y - u(k)\| / \|y\|$")
    axes[0, 0].set(title=f"residual vs prediction, m = {result['width_long']}", ylim=(0, 1.02))
    axes[0, 0].legend()
    axes[0, 1].set_yscale("log")
    axes[0, 1].set(title="the same, whole run, log scale", ylim=(1e-8, 1.5))
    axes[0, 1].axvline(K, color="0.6", lw=0.8, ls=":")

    ax = axes[0, 2]
    widths = np.asarray(result["widths"], dtype=float)
    for key in LABELS:
        p = result[f"curve_error_exponent_{key}"]
        err = np.asarray(result[f"curve_error_{key}"])
        fitted = widths >= (result["random_fit_from"] if key == "random" else 0)
        ax.loglog(widths, err, ":", color=colors[key])
        ax.loglog(
            widths[fitted], err[fitted], "o-", color=colors[key], label=f"{key}: slope {p:.2f}"
        )
    ref = result["curve_error_random"][-1] * (widths / widths[-1]) ** -0.5
    ax.loglog(widths, ref, "k:", label="$m^{-1/2}$")
    ax.set(
        xlabel="width m",
        ylabel=f"max over k <= {K} of |gap| / ||y||",
        title="prediction error vs width",
    )
    ax.legend()

    ax = axes[1, 0]
    n = len(result["spectrum"])
    idx = np.arange(1, n + 1)
    for key in LABELS:
        ax.plot(idx, np.cumsum(result[f"energy_{key}"]), color=colors[key], label=key)
    ax.plot(idx, idx / n, "k:", lw=0.9, label="random, expected k/n")
    ax.axvline(result["k_top"], color="0.6", lw=0.8, ls="--")
    ax.set(
        xlabel="k, number of top eigenvectors of $H_\\infty$",
        ylabel=r"$\sum_{i \leq k} (v_i \cdot y)^2 / \|y\|^2$",
        title=f"label energy on the top k (k = {result['k_top']} dashed)",
        ylim=(0, 1.02),
    )
    ax.legend(loc="lower right")

    ax = axes[1, 1]
    x = np.arange(len(LABELS))
    measured = [result[f"mean_loss_ratio_K_{key}"] for key in LABELS]
    predicted = [result[f"predicted_mean_loss_ratio_K_{key}"] for key in LABELS]
    ax.bar(x - 0.2, measured, 0.4, color=[colors[k] for k in LABELS], label="measured")
    ax.bar(x + 0.2, predicted, 0.4, color="0.75", label="spectral prediction")
    ax.set_yscale("log")
    ax.set_xticks(x, LABELS)
    ax.set(
        ylabel=f"mean of L(k) / L(0), k <= {K}",
        title=f"loss over the first K = {K} steps (ratio {result['speed_ratio']:.1f})",
    )
    ax.legend()

    ax = axes[1, 2]
    for key in LABELS:
        ax.plot(
            result[f"move_steps_{key}"], result[f"move_fro_{key}"], color=colors[key], label=key
        )
        ax.plot(result[f"move_steps_{key}"], result[f"predicted_move_fro_{key}"], "k--", lw=0.9)
        ax.axhline(result[f"distance_limit_{key}"], color=colors[key], ls=":", lw=0.9)
    ax.plot([], [], "k--", lw=0.9, label="kernel regime, same step")
    ax.plot([], [], "k:", lw=0.9, label=r"limit $\sqrt{y^T H_\infty^{-1} y}$")
    ax.set(xlabel="step k", ylabel=r"$\|W(k) - W(0)\|_F$", title="distance from init")
    ax.legend(loc="center right")
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
