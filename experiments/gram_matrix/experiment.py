"""gram_matrix: the infinite-width Gram matrix H_inf, its smallest eigenvalue lam0, and H(0).

Du, Zhai, Poczos and Singh (ICLR 2019) rest their linear-convergence proof on
one matrix, ``H_inf_ij = x_i.x_j (pi - arccos(x_i.x_j)) / (2 pi)`` (Sec. 3), and
one number, ``lam0 = lambda_min(H_inf)``, which is positive when no two inputs
are parallel (Thm 3.1). This experiment checks four facts about them:

(a) the closed form equals the expectation it stands for, ``E_w[x_i.x_j
1{w.x_i >= 0, w.x_j >= 0}]``: Monte Carlo estimates agree within their standard
errors, and their error falls like ``draws^(-1/2)``; (b) ``lam0`` on the unit
sphere grows with ``d`` and falls with ``n``; (c) duplicated points, and
``d + 1`` antipodal pairs ``{x, -x}``, make ``H_inf`` singular while ``d`` pairs
do not; (d) at random init the finite-width ``H(0)`` is within ``O(m^(-1/2))``
of ``H_inf`` in spectral norm (Lemma 3.1), which is why ``lambda_min(H(0)) >=
3 lam0 / 4`` once ``m`` is large.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels
from shared.plotting import subplots, width_colors

CONFIG = {
    "quick": {
        "mc_n": 30,
        "mc_d": 10,
        "draws": 2 ** np.arange(8, 17, 2),
        "mc_repeats": 24,
        "table_n": (20, 60, 180),
        "table_d": (5, 10, 20, 40),
        "table_draws": 31,
        "deg_n": 40,
        "deg_d": 10,
        "deg_sets": 9,  # the degenerate quantities are medians over this many input sets
        "dev_n": 30,
        "dev_d": 10,
        "widths": 2 ** np.arange(6, 14),
        "dev_inits": 40,
    },
    "full": {
        "mc_n": 150,
        "mc_d": 20,
        "draws": 2 ** np.arange(8, 19, 2),
        "mc_repeats": 4,
        "table_n": (25, 60, 150, 400),
        "table_d": (5, 10, 25, 50, 100),
        "table_draws": 9,
        "deg_n": 200,
        "deg_d": 20,
        "deg_sets": 3,
        "dev_n": 200,
        "dev_d": 20,
        "widths": 2 ** np.arange(6, 16),
        "dev_inits": 10,
    },
}


def monte_carlo(X: np.ndarray, draws: np.ndarray, repeats: int, *, rng) -> dict:
    """RMS error of ``h_inf_monte_carlo`` per draw count, and z-scores at the largest count.

    ``z_ij = |H_inf_ij - H_hat_ij| / stderr_ij`` over the upper triangle
    (diagonal included), pooled over ``repeats`` independent estimates.
    """
    H = kernels.h_inf(X)  # (n, n)
    iu = np.triu_indices(X.shape[0])
    rms, z = [], []
    for n_draws in draws:
        errs = []
        for _ in range(repeats):
            H_hat, stderr = kernels.h_inf_monte_carlo(X, n_draws=int(n_draws), rng=rng)
            diff = (H_hat - H)[iu]  # (n (n + 1) / 2,)
            errs.append(np.sqrt(np.mean(diff**2)))
            if n_draws == draws[-1]:
                z.append(np.abs(diff) / stderr[iu])
        rms.append(np.mean(errs))
    rms = np.asarray(rms)
    z = np.concatenate(z)
    exponent, exponent_se = fit.power_law(draws.astype(float), rms)
    return {
        "mc_max_z": float(z.max()),
        "mc_frac_beyond_3se": float(np.mean(z > 3.0)),
        "log10_mc_frac_beyond_3se": float(np.log10(np.mean(z > 3.0))),
        "mc_error_exponent": exponent,
        "mc_error_exponent_se": exponent_se,
        "mc_draws": draws,
        "mc_rms_error": rms,
        "mc_z": z,
    }


def lam0_table(ns, ds, n_draws: int, *, rng) -> np.ndarray:
    """Median ``lam0`` over ``n_draws`` unit-sphere data sets per cell: ``(len(ns), len(ds))``."""
    table = np.empty((len(ns), len(ds)))
    for i, n in enumerate(ns):
        for j, d in enumerate(ds):
            lams = [
                kernels.lambda_min(kernels.h_inf(data.unit_sphere(n, d, rng=rng)))
                for _ in range(n_draws)
            ]
            table[i, j] = np.median(lams)
    return table


def h_inf_stable_angles(X: np.ndarray) -> np.ndarray:
    """``H_inf`` with each angle from ``2 arctan2(|u - v|, |u + v|)`` (``u, v`` the unit rows).

    Same closed form as ``kernels.h_inf``, ``x_i.x_j (pi - t_ij) / (2 pi)``, but the
    angle stays accurate near 0 and pi, where ``arccos`` of a cosine one rounding
    step away from +-1 is off by ~1.5e-8 (half the digits). Exactly parallel or
    antipodal rows then give exactly singular combinations up to ~1e-16 instead
    of ~1e-9. Memory ``O(n^2 d)``: for the small degenerate sets only.

    Returns
    -------
    H : (n, n) ndarray
    """
    norms = np.linalg.norm(X, axis=1)  # (n,)
    U = X / norms[:, None]  # (n, d)
    diff = np.linalg.norm(U[:, None, :] - U[None, :, :], axis=2)  # (n, n), |u_i - u_j|
    summ = np.linalg.norm(U[:, None, :] + U[None, :, :], axis=2)  # (n, n), |u_i + u_j|
    t = 2.0 * np.arctan2(diff, summ)  # (n, n), angles in [0, pi]
    return (X @ X.T) * (np.pi - t) / (2.0 * np.pi)


def antipodal_orthonormal(n: int, d: int, n_pairs: int, *, rng) -> np.ndarray:
    """``n`` unit inputs in ``R^d`` whose last ``n_pairs`` rows negate the first ``n_pairs``.

    The first ``d`` rows are a random orthonormal basis (the rows of a Haar-random
    rotation), the others uniform on the sphere, so with ``n_pairs <= d`` the pair
    directions are as far from linearly dependent as ``n_pairs`` unit vectors can be.

    Returns
    -------
    X : (n, d) ndarray
    """
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    Q, R = np.linalg.qr(rng.standard_normal((d, d)))  # (d, d)
    X[:d] = (Q * np.sign(np.diag(R))).T  # Haar-random orthonormal rows
    X[n - n_pairs :] = -X[:n_pairs]
    return X


def degenerate(n: int, d: int, *, rng) -> dict:
    """Spectra of ``H_inf`` for random, duplicated and antipodal inputs, ``n`` points in ``R^d``.

    The antipodal sets share their points: ``d`` pairs along an orthonormal basis, and the
    same ``d`` pairs plus one more (``antipodal_orthonormal``).
    """
    X_random = data.unit_sphere(n, d, rng=rng)
    X_duplicate = data.duplicate_inputs(n, d, n_copies=1, rng=rng)
    base = antipodal_orthonormal(n, d, d + 1, rng=rng)  # d + 1 pairs
    X_antipodal_d1 = base
    X_antipodal_d = base.copy()
    X_antipodal_d[n - 1] = data.unit_sphere(1, d, rng=rng)[0]  # undo the (d + 1)-th pair

    def spectrum(X, h_inf=h_inf_stable_angles):  # (n,) ascending
        return np.linalg.eigvalsh(h_inf(X))

    def log10_rel(lam) -> float:
        """``log10 |lambda_min| / lambda_max``: rounding can leave a singular H_inf at -1e-17
        (and, rarely, at exactly 0: ``-inf``)."""
        with np.errstate(divide="ignore"):
            return float(np.log10(abs(lam[0]) / lam[-1]))

    random, duplicate = spectrum(X_random), spectrum(X_duplicate)
    antipodal_d, antipodal_d1 = spectrum(X_antipodal_d), spectrum(X_antipodal_d1)
    diff = h_inf_stable_angles(X_random) - kernels.h_inf(X_random)  # (n, n)
    return {
        "lam0_rel_random": float(random[0] / random[-1]),
        "log10_lam0_rel_duplicate": log10_rel(duplicate),
        "log10_lam0_rel_antipodal_d": log10_rel(antipodal_d),
        "log10_lam0_rel_antipodal_d1": log10_rel(antipodal_d1),
        "spectrum_random": random,
        "spectrum_duplicate": duplicate,
        "spectrum_antipodal_d": antipodal_d,
        "spectrum_antipodal_d1": antipodal_d1,
        # the library's kernels.h_inf on the same inputs, for reference
        "log10_lam0_rel_antipodal_d1_library": log10_rel(spectrum(X_antipodal_d1, kernels.h_inf)),
        # the two forms agree away from the degenerate angles: largest and RMS difference
        "stable_vs_arccos_max_diff_random": float(np.abs(diff).max()),
        "log10_stable_vs_arccos_rms_diff_random": float(np.log10(np.sqrt(np.mean(diff**2)))),
    }


def init_deviation(X: np.ndarray, widths: np.ndarray, n_inits: int, *, rng) -> dict:
    """Mean over inits of ``||H(0) - H_inf||_2`` at each width, and its fitted exponent in ``m``."""
    H = kernels.h_inf(X)
    d = X.shape[1]
    dev = np.array(
        [
            np.mean(
                [
                    np.linalg.norm(kernels.gram_h(X, rng.standard_normal((m, d))) - H, 2)
                    for _ in range(n_inits)
                ]
            )
            for m in widths
        ]
    )
    exponent, exponent_se = fit.power_law(widths.astype(float), dev)
    lam0 = kernels.lambda_min(H)
    return {
        "dev_exponent": exponent,
        "dev_exponent_se": exponent_se,
        "dev_lam0": lam0,
        # width above which ||H(0) - H_inf||_2 <= lam0 / 4 on the fitted line
        "dev_width_quarter_lam0": float(
            np.exp(np.log(dev[-1] / (lam0 / 4.0)) / -exponent) * widths[-1]
        ),
        "dev_widths": widths,
        "dev_norm": dev,
    }


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    cfg = CONFIG["quick" if quick else "full"]
    rng_mc, rng_tab, rng_deg, rng_dev = np.random.default_rng(seed).spawn(4)

    # %% (a) The closed form against Monte Carlo estimates of the expectation
    progress(0, 4, "Monte Carlo vs closed form")
    X = data.unit_sphere(cfg["mc_n"], cfg["mc_d"], rng=rng_mc)
    mc = monte_carlo(X, cfg["draws"], cfg["mc_repeats"], rng=rng_mc)

    # %% (b) lam0 on the unit sphere over a grid of n and d
    progress(1, 4, "lam0 table")
    ns, ds = cfg["table_n"], cfg["table_d"]
    table = lam0_table(ns, ds, cfg["table_draws"], rng=rng_tab)

    # %% (c) Degenerate inputs: duplicates and antipodal pairs
    progress(2, 4, "degenerate inputs")
    sets = [
        degenerate(cfg["deg_n"], cfg["deg_d"], rng=rng) for rng in rng_deg.spawn(cfg["deg_sets"])
    ]
    degenerate_spectra = {  # medians of the scalars over the sets; the first set's spectra
        key: (float(np.median([s[key] for s in sets])) if np.ndim(val) == 0 else val)
        for key, val in sets[0].items()
    }
    degenerate_spectra["stable_vs_arccos_max_diff_random"] = max(
        s["stable_vs_arccos_max_diff_random"] for s in sets
    )

    # %% (d) H(0) at random init against H_inf, over widths
    progress(3, 4, "||H(0) - H_inf|| vs width")
    X = data.unit_sphere(cfg["dev_n"], cfg["dev_d"], rng=rng_dev)
    deviation = init_deviation(X, cfg["widths"], cfg["dev_inits"], rng=rng_dev)
    progress(4, 4, "done")

    return {
        **mc,
        # smallest relative step along each axis: positive iff the ordering holds everywhere
        "lam0_margin_d": float(np.min(np.diff(table, axis=1) / table[:, 1:])),
        "lam0_margin_n": float(np.min(-np.diff(table, axis=0) / table[:-1])),
        "lam0_table": table,
        "table_n": np.asarray(ns),
        "table_d": np.asarray(ds),
        **degenerate_spectra,
        **deviation,
    }


def plot(result: dict):
    fig, axes = subplots(2, 3, width=3.6, height=3.0)
    ax = axes[0, 0]
    z = np.asarray(result["mc_z"])
    ax.hist(z, bins=40, density=True, alpha=0.6, label="|H_inf - H_hat| / s.e.")
    t = np.linspace(0, max(4.5, z.max()), 200)
    ax.plot(t, 2 * np.exp(-(t**2) / 2) / np.sqrt(2 * np.pi), "k--", label="half-normal")
    ax.axvline(3.0, color="grey", lw=0.8)
    ax.set(
        xlabel="z-score",
        ylabel="density",
        title=f"(a) MC vs closed form: max z = {result['mc_max_z']:.2f}",
    )
    ax.legend()

    ax = axes[0, 1]
    draws = np.asarray(result["mc_draws"], dtype=float)
    err = np.asarray(result["mc_rms_error"])
    ax.loglog(draws, err, "o-", label=f"measured, slope {result['mc_error_exponent']:.3f}")
    ax.loglog(draws, err[0] * np.sqrt(draws[0] / draws), "k--", label="draws$^{-1/2}$")
    ax.set(xlabel="Monte Carlo draws", ylabel="RMS error of $\\hat H$", title="(a) MC error")
    ax.legend()

    ax = axes[0, 2]
    table = np.asarray(result["lam0_table"])
    ds = np.asarray(result["table_d"])
    for row, n, c in zip(table, result["table_n"], width_colors(len(table)), strict=True):
        ax.semilogy(ds, row, "o-", color=c, label=f"n = {n}")
    ax.set(
        xlabel="input dimension d",
        ylabel=r"$\lambda_0$ (median of draws)",
        title=r"(b) $\lambda_0$ on the unit sphere",
        xscale="log",
    )
    ax.legend()

    ax = axes[1, 0]
    labels = {
        "random": "random",
        "antipodal_d": "d antipodal pairs",
        "antipodal_d1": "d+1 antipodal pairs",
        "duplicate": "one duplicate",
    }
    for name, lab in labels.items():
        lam = np.asarray(result[f"spectrum_{name}"])[:12]  # the smallest eigenvalues
        ax.semilogy(np.arange(1, lam.size + 1), np.maximum(np.abs(lam), 1e-18), ".-", label=lab)
    ax.set(
        xlabel="eigenvalue index i (ascending)",
        ylabel=r"$|\lambda_i(H_\infty)|$",
        title="(c) smallest eigenvalues of $H_\\infty$",
    )
    ax.legend()

    ax = axes[1, 1]
    vals = [
        result["lam0_rel_random"],
        10.0 ** result["log10_lam0_rel_antipodal_d"],
        10.0 ** result["log10_lam0_rel_antipodal_d1"],
        10.0 ** result["log10_lam0_rel_duplicate"],
    ]
    ax.bar(range(len(vals)), np.maximum(vals, 1e-18), color=["C0", "C1", "C2", "C3"])
    ax.axhline(1e-10, color="k", ls="--", lw=0.8, label="1e-10")
    ax.set_yscale("log")
    ax.set_xticks(range(len(vals)), ["random", "d pairs", "d+1 pairs", "dup."])
    ax.set(ylabel=r"$|\lambda_0| / \lambda_{max}$", title="(c) relative $\\lambda_0$")
    ax.legend()

    ax = axes[1, 2]
    m = np.asarray(result["dev_widths"], dtype=float)
    dev = np.asarray(result["dev_norm"])
    ax.loglog(m, dev, "o-", label=f"measured, slope {result['dev_exponent']:.3f}")
    ax.loglog(m, dev[0] * np.sqrt(m[0] / m), "k--", label="$m^{-1/2}$")
    ax.axhline(result["dev_lam0"], color="C3", lw=0.8, label=r"$\lambda_0$")
    ax.set(
        xlabel="width m",
        ylabel=r"$\|H(0) - H_\infty\|_2$ (mean of inits)",
        title="(d) H(0) at init",
    )
    ax.legend(loc="upper right")
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
