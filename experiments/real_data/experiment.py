"""real_data: Du et al.'s Figure 1 and Arora et al.'s true-vs-random labels on handwritten digits.

Two classes of scikit-learn's 8x8 digits, each image's 64 pixels divided by its norm, so the
inputs lie on the unit sphere as the theory asks, but all in the positive orthant and clustered
by class. There ``H_inf`` has one huge eigenvalue (the common direction) and a tiny ``lam0``:
its condition number is in the thousands, against about a hundred for as many random points on
the same sphere. Linear convergence at ``(1 - eta lam0)^(2k)`` with ``eta = 1 / lambda_max``
is then a rate of a few 1e-3 per step.

Part (a) reruns the three panels of Du, Zhai, Poczos, Singh (ICLR 2019), Figure 1 (loss, the
fraction of activation patterns that flipped, the largest per-neuron move) at several widths
with the digit labels +-1, and compares the loss with the spectral prediction
``sum_i (1 - eta lambda_i)^(2k) (v_i . y)^2`` of Arora, Du, Hu, Li, Wang (ICML 2019, Sec. 4).
Part (b) repeats Arora et al.'s comparison of true and random labels on the same inputs: the
label energy on the top eigenvectors of ``H_inf``, the loss after ``K`` steps, the complexity
``sqrt(2 y^T H_inf^-1 y / n)`` (their Theorem 5.1) and the distance ``||W(K) - W(0)||_F``
against its kernel-regime value. The images are fixed; the seed draws which images are
training points (and so the test split), the random labels and the inits.
"""

from __future__ import annotations

import itertools

import numpy as np

from shared import data, fit, kernels, net
from shared.plotting import subplots, width_colors

CONFIG = {
    "quick": {
        "pair": (3, 8),
        "n": 100,
        "widths": (32, 128, 512, 2048),
        "steps": 200,
        "record_every": 5,
        "inits": 3,
        "k_top": 10,
        "all_pairs": False,
    },
    "full": {
        "pair": (3, 8),
        "n": 300,
        "widths": (128, 512, 2048, 8192),
        "steps": 400,
        "record_every": 5,
        "inits": 3,
        "k_top": 10,
        "all_pairs": True,
    },
}
LABELS = ("true", "random")


def kernel_distance(lam: np.ndarray, V: np.ndarray, y: np.ndarray, *, eta: float, k: int) -> float:
    """``||W(k) - W(0)||_F`` of GD on the linearised net from ``u(0) = 0``.

    With ``H = V diag(lam) V^T = J J^T``, the parameters move by
    ``J^T H^-1 (I - (I - eta H)^k) y``, whose squared norm is
    ``sum_i q_i^2 (v_i . y)^2 / lambda_i`` with ``q_i = 1 - (1 - eta lambda_i)^k``; it tends to
    ``sqrt(y^T H^-1 y)`` (Arora et al. 2019, Sec. 5) as ``k -> infinity``.
    """
    q = 1.0 - (1.0 - eta * lam) ** k  # (n,)
    c = V.T @ y  # (n,)
    return float(np.sqrt(np.sum(q * q * c * c / lam)))


def steps_to_ratio(lam: np.ndarray, V: np.ndarray, y: np.ndarray, *, eta: float, ratio: float):
    """Smallest ``k`` at which the spectral prediction of ``L(k) / L(0)`` falls below ``ratio``.

    The prediction ``sum_i (1 - eta lambda_i)^(2k) (v_i . y)^2 / ||y||^2`` decreases in ``k``
    (``0 < eta lambda_i <= 1``); found by doubling then bisection.
    """
    p2 = (V.T @ y) ** 2 / (y @ y)  # (n,)
    g = np.abs(1.0 - eta * lam)  # (n,)

    def pred(k):
        return float(np.sum(g ** (2 * k) * p2))

    hi = 1
    while pred(hi) > ratio:
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if pred(mid) > ratio else (lo, mid)
    return hi


def pair_conditioning(n: int, rng: np.random.Generator) -> np.ndarray:
    """``lam0`` and ``kappa`` of ``H_inf`` for ``n`` images of each of the 45 digit pairs.

    Returns a (45, 4) array of rows ``(digit_a, digit_b, lam0, kappa)``.
    """
    rows = []
    for pair in itertools.combinations(range(10), 2):
        X = data.digits(pair, n=n, rng=rng)[0]
        lam = np.linalg.eigvalsh(kernels.h_inf(X))
        rows.append((*pair, lam[0], lam[-1] / lam[0]))
    return np.asarray(rows)


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return the checked scalars and the series of the figure."""
    cfg = CONFIG["quick" if quick else "full"]
    n, widths, steps, k_top = cfg["n"], cfg["widths"], cfg["steps"], cfg["k_top"]
    rng_data, rng_pairs, *rng_nets = np.random.default_rng(seed).spawn(2 + len(widths))

    # %% Set-up: digits on the unit sphere, H_inf and its spectrum, random labels, a sphere twin
    X, y_true, X_test, y_test = data.digits(cfg["pair"], n=n, rng=rng_data)  # (n, 64), (n,)
    d = X.shape[1]
    ys = {"true": y_true, "random": rng_data.choice([-1.0, 1.0], size=n)}
    H = kernels.h_inf(X)  # (n, n)
    lam, V = kernels.spectrum(H)  # ascending
    lam0, lam_max = float(lam[0]), float(lam[-1])
    eta = 1.0 / lam_max
    lam_sphere = np.linalg.eigvalsh(kernels.h_inf(data.unit_sphere(n, d, rng=rng_data)))
    predicted = {
        key: kernels.predicted_residuals(H, yk, eta=eta, steps=steps) ** 2 / (yk @ yk)
        for key, yk in ys.items()
    }  # (steps + 1,) predicted L(k) / L(0), u(0) = 0

    # %% (a) Figure 1 on digits: true labels, antisymmetric inits (u(0) = 0) at every width;
    # the narrower widths are repeated over `inits` inits (medians), the widest is run once
    runs, finals = [], []
    for j, (m, rng) in enumerate(zip(widths, rng_nets, strict=True)):
        progress(j, len(widths) + 1, f"m = {m}")
        reps = 1 if m == widths[-1] else cfg["inits"]
        rows = []
        for _ in range(reps):
            W0, a0 = net.init_net(d, m, rng=rng, antisymmetric=True)
            r = net.train(X, y_true, W0, a0, eta=eta, steps=steps, record_every=cfg["record_every"])
            rows.append(
                (r.loss[-1] / r.loss[0], r.flip_fraction[-1], r.move_max[-1], r.move_rms[-1])
            )
        runs.append(r)  # the last init of each width, for the figure
        finals.append(np.median(rows, axis=0))  # (4,): loss ratio, flips, max move, RMS move

    # %% (b) true vs random labels at the widest width, from the same init
    progress(len(widths), len(widths) + 1, "random labels")
    res = {"true": runs[-1]}
    res["random"] = net.train(X, ys["random"], W0, a0, eta=eta, steps=steps, record_every=steps)

    # %% Measure
    def label_quantities(yk, r, predicted_K: float) -> dict:
        """Spectrum, complexity, speed and distance of one labelling ``yk`` and its run ``r``."""
        u_test = net.predict(X_test, r.W, r.a)  # (n_test,)
        return {
            "top_fraction": float(np.sum((V[:, -k_top:].T @ yk) ** 2) / (yk @ yk)),
            "complexity": kernels.complexity_measure(H, yk),
            "loss_ratio_K": r.loss[-1] / r.loss[0],
            "loss_over_prediction": (r.loss[-1] / r.loss[0]) / predicted_K,
            "distance_over_kernel": r.move_fro[-1] / kernel_distance(lam, V, yk, eta=eta, k=steps),
            "distance_fraction_of_limit": r.move_fro[-1] / np.sqrt(kernels.rkhs_norm_sq(H, yk)),
            "test_error": float(np.mean(np.sign(u_test) != y_test)),
            # mean squared error against the +-1 test labels: 1 for u = 0, 1 + E u^2 for any
            # prediction independent of the labels
            "test_mse": float(np.mean((u_test - y_test) ** 2)),
        }

    m_arr = np.asarray(widths, dtype=float)
    loss_K, flips, move_max, move_rms = np.asarray(finals).T  # each (widths,)
    out = {
        "n": n,
        "d": d,
        "pair": list(cfg["pair"]),
        "eta": eta,
        "lam0": lam0,
        "lam_max": lam_max,
        "kappa": lam_max / lam0,
        "kappa_sphere": float(lam_sphere[-1] / lam_sphere[0]),
        "kappa_over_sphere": float((lam_max / lam0) / (lam_sphere[-1] / lam_sphere[0])),
        "lam0_over_sphere": float(lam0 / lam_sphere[0]),
        "predicted_steps_to_1e_6": steps_to_ratio(lam, V, y_true, eta=eta, ratio=1e-6),
        "bound_at_K": float((1.0 - eta * lam0 / 2.0) ** steps),
        "loss_ratio_K_widest": loss_K[-1],
        "loss_over_prediction_widest": loss_K[-1] / predicted["true"][-1],
        "loss_over_prediction_narrowest": loss_K[0] / predicted["true"][-1],
        "loss_gain_widest_over_narrowest": loss_K[0] / loss_K[-1],
        "flip_exponent": fit.power_law(m_arr, flips)[0],
        "move_rms_exponent": fit.power_law(m_arr, move_rms)[0],
        "move_max_exponent": fit.power_law(m_arr, move_max)[0],
    }
    lab = {key: label_quantities(ys[key], res[key], predicted[key][-1]) for key in LABELS}
    t, r = lab["true"], lab["random"]
    out |= {
        "top_fraction_true": t["top_fraction"],
        "top_fraction_random": r["top_fraction"],
        "top_fraction_ratio": t["top_fraction"] / r["top_fraction"],
        "complexity_true": t["complexity"],
        "complexity_random": r["complexity"],
        "complexity_ratio": r["complexity"] / t["complexity"],
        "loss_ratio_K_true": t["loss_ratio_K"],
        "loss_ratio_K_random": r["loss_ratio_K"],
        "speed_ratio": r["loss_ratio_K"] / t["loss_ratio_K"],
        "loss_over_prediction_true": t["loss_over_prediction"],
        "loss_over_prediction_random": r["loss_over_prediction"],
        "distance_over_kernel_true": t["distance_over_kernel"],
        "distance_over_kernel_random": r["distance_over_kernel"],
        "distance_fraction_of_limit_true": t["distance_fraction_of_limit"],
        "distance_fraction_of_limit_random": r["distance_fraction_of_limit"],
        "test_error_true": t["test_error"],
        "test_error_random": r["test_error"],
        "test_mse_true": t["test_mse"],
        "test_mse_random": r["test_mse"],
    }

    # series for the figure
    out["widths"] = np.asarray(widths)
    out["k_top"] = k_top
    out["loss_ratio"] = [r.loss / r.loss[0] for r in runs]
    out["recorded_steps"] = runs[0].recorded_steps
    out["flip_fraction"] = [r.flip_fraction for r in runs]
    out["move_max"] = [r.move_max for r in runs]
    out["final_flips"], out["final_move_max"], out["final_move_rms"] = flips, move_max, move_rms
    for key in LABELS:
        out[f"predicted_loss_{key}"] = predicted[key]
        out[f"energy_{key}"] = ((V.T @ ys[key]) ** 2 / n)[::-1]  # top eigenvector first
    out["loss_random"] = res["random"].loss / res["random"].loss[0]
    out["spectrum"] = lam[::-1]
    out["spectrum_sphere"] = lam_sphere[::-1]
    if cfg["all_pairs"]:
        out["pairs"] = pair_conditioning(n, rng_pairs)
        out["pairs_kappa_min"] = float(out["pairs"][:, 3].min())
        out["pairs_kappa_median"] = float(np.median(out["pairs"][:, 3]))
        out["pairs_kappa_max"] = float(out["pairs"][:, 3].max())
    return out


def plot(result: dict):
    fig, axes = subplots(2, 3, width=3.7, height=3.0)
    widths, colors = result["widths"], width_colors(len(result["widths"]))
    for m, c, L, f, mv in zip(
        widths,
        colors,
        result["loss_ratio"],
        result["flip_fraction"],
        result["move_max"],
        strict=True,
    ):
        axes[0, 0].semilogy(L, color=c, label=f"m = {m}")
        axes[0, 1].plot(result["recorded_steps"], f, color=c, label=f"m = {m}")
        axes[0, 2].plot(result["recorded_steps"], mv, color=c, label=f"m = {m}")
    k = np.arange(len(result["predicted_loss_true"]))
    axes[0, 0].semilogy(k, result["predicted_loss_true"], "k--", lw=1, label="spectral prediction")
    axes[0, 0].semilogy(
        k, (1 - result["eta"] * result["lam0"] / 2) ** k, "k:", lw=1, label="Thm 4.1 bound"
    )
    axes[0, 0].set(xlabel="step k", ylabel="L(k) / L(0)", title="(a) loss, digit labels")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].set(xlabel="step k", ylabel="fraction of m*n patterns flipped", title="(b) flips")
    axes[0, 2].set(xlabel="step k", ylabel=r"$\max_r \|w_r(k) - w_r(0)\|$", title="(c) max move")
    axes[0, 1].legend(fontsize=7)

    ax = axes[1, 0]
    idx = np.arange(1, len(result["spectrum"]) + 1)
    ax.semilogy(idx, result["spectrum"], color="C0", label=f"digits {result['pair']}")
    ax.semilogy(idx, result["spectrum_sphere"], color="0.5", label="uniform on the sphere")
    ax.set(
        xlabel="index i",
        ylabel=r"$\lambda_i(H_\infty)$",
        title=f"spectrum: kappa {result['kappa']:.0f} vs {result['kappa_sphere']:.0f}",
    )
    ax.legend()

    ax = axes[1, 1]
    for key, c in zip(LABELS, ("C0", "C3"), strict=True):
        ax.plot(idx, np.cumsum(result[f"energy_{key}"]), color=c, label=f"{key} labels")
    ax.axvline(result["k_top"], color="0.6", ls="--", lw=0.8)
    ax.set(
        xlabel="k, top eigenvectors of $H_\\infty$",
        ylabel=r"$\sum_{i \leq k} (v_i \cdot y)^2 / \|y\|^2$",
        title="label energy on the top k",
        ylim=(0, 1.02),
    )
    ax.legend(loc="lower right")

    ax = axes[1, 2]
    for key, c, L in zip(
        LABELS, ("C0", "C3"), (result["loss_ratio"][-1], result["loss_random"]), strict=True
    ):
        ax.semilogy(L, color=c, label=f"{key} labels")
        ax.semilogy(result[f"predicted_loss_{key}"], "--", color=c, lw=0.9)
    ax.plot([], [], "k--", lw=0.9, label="spectral prediction")
    ax.set(xlabel="step k", ylabel="L(k) / L(0)", title=f"true vs random, m = {widths[-1]}")
    ax.legend()
    fig.suptitle(
        f"Digits {result['pair'][0]} vs {result['pair'][1]}: n = {result['n']}, "
        f"lam0 = {result['lam0']:.3g}, lambda_max = {result['lam_max']:.3g}"
    )
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
