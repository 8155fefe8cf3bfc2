"""label_corruption: complexity, distance moved and test error all grow with label noise.

Arora, Du, Hu, Li, Wang (ICML 2019, arXiv 1901.08584) bound the generalization
gap of a wide two-layer ReLU net trained by GD with the data-dependent complexity
``sqrt(2 y^T H_inf^-1 y / n)`` (their Theorem 5.1), and note that the weights
travel ``||W(k) - W(0)||_F -> sqrt(y^T H_inf^-1 y)`` (Sec. 5). Their Figure 2
(MNIST, CIFAR) shows that as a larger fraction of the training labels is replaced
by random ones, the complexity, the distance moved and the test error all grow.

This experiment repeats that protocol at small scale. A fraction ``p`` of the
training labels is replaced by fair coin flips, which flips ``p n / 2`` of them
on average; it is done as exactly ``round(p n / 2)`` sign flips with
``data.corrupt_labels``. (Flipping a fraction ``p > 1/2`` would instead make the
labels anti-correlated with the truth, and ``y^T H^-1 y`` is even in ``y``.)
For each ``p`` the net (antisymmetric init, ``u(0) = 0``, first layer trained)
is fitted by GD to small training loss from the same init, and the complexity,
``||W - W(0)||_F`` and the test error against the clean test labels are recorded.
Quick mode uses synthetic two-cluster data and a small subset of the digits 3
vs 8 from scikit-learn's bundled ``load_digits``; full mode the digits at scale.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from shared import data, kernels, net
from shared.plotting import subplots, width_colors

LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # fraction p of labels replaced by coin flips
CONFIG = {  # one entry per data set, trained in this order; full mode: the digits only
    "quick": {
        "synthetic": {
            "n": 40,
            "n_test": 400,
            "d": 10,
            "margin": 0.1,
            "m": 2000,
            "steps": 600,
            "draws": 2,
        },
        "digits": {"n": 50, "pair": (3, 8), "m": 1000, "steps": 300, "draws": 2},
    },
    "full": {"digits": {"n": 200, "pair": (3, 8), "m": 3000, "steps": 1200, "draws": 2}},
}


def load_digits_pair(pair, *, n: int, rng: np.random.Generator):
    """Two classes of scikit-learn's 8x8 digits as unit rows with +-1 labels.

    The images are shuffled with ``rng`` and split into ``n`` training points and
    the rest for testing. Pixels are centred by the training mean (so that
    ``H_inf`` is not dominated by one all-positive direction) and every row is
    then normalised to the unit sphere (per row, never by the Frobenius norm).

    Returns
    -------
    X : (n, 64) ndarray; y : (n,) ndarray; X_test : (n_test, 64) ndarray; y_test : (n_test,) ndarray
        Label ``+1`` for ``pair[0]``, ``-1`` for ``pair[1]``.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(
            "label_corruption needs scikit-learn for its digits data; install the 'data' extra: "
            'pip install -e ".[data]"'
        ) from err
    digits = load_digits()
    keep = np.isin(digits.target, pair)
    if n >= np.count_nonzero(keep):
        raise ValueError(
            f"n: expected fewer than {np.count_nonzero(keep)} training digits, got {n}"
        )
    order = rng.permutation(np.count_nonzero(keep))
    X_all = digits.data[keep][order].astype(np.float64)  # (N, 64)
    y_all = np.where(digits.target[keep][order] == pair[0], 1.0, -1.0)  # (N,)
    X_all -= X_all[:n].mean(axis=0)
    X_all /= np.linalg.norm(X_all, axis=1, keepdims=True)
    return X_all[:n], y_all[:n], X_all[n:], y_all[n:]


def load_synthetic(cfg: dict, rng: np.random.Generator):
    """``data.two_clusters`` split into ``n`` training and ``n_test`` test points."""
    X_all, y_all = data.two_clusters(
        cfg["n"] + cfg["n_test"], cfg["d"], margin=cfg["margin"], rng=rng
    )
    n = cfg["n"]
    return X_all[:n], y_all[:n], X_all[n:], y_all[n:]


def sweep(
    X,
    y,
    X_test,
    y_test,
    *,
    m: int,
    steps: int,
    draws: int,
    rng,
    progress=lambda i, total, label="": None,
) -> dict:
    """Train from one antisymmetric init at every corruption level in ``LEVELS``.

    Each level is repeated with ``draws`` independent corruptions of ``y``.

    Returns
    -------
    dict of (len(LEVELS), draws) arrays: ``complexity``, ``distance``,
    ``predicted_distance`` (``sqrt(y^T H_inf^-1 y)``), ``test_error``,
    ``train_error`` (against the corrupted labels), ``final_loss_ratio``;
    ``loss (len(LEVELS), steps + 1)`` of the first draw; and
    ``expected_complexity (len(LEVELS),)``, the square root of the mean of
    ``2 y_p^T H_inf^-1 y_p / n`` over independent flips at rate ``p / 2``.
    """
    n, d = X.shape
    H = kernels.h_inf(X)  # (n, n)
    lam = np.linalg.eigvalsh(H)  # (n,) ascending
    eta = 1.0 / lam[-1]
    # E[y_p^T H^-1 y_p] = (1 - p)^2 y^T H^-1 y + (1 - (1 - p)^2) tr(H^-1) for independent flips
    corr = (1.0 - np.asarray(LEVELS)) ** 2  # (len(LEVELS),) E[s_i s_j], i != j, s = y_p / y
    expected_sq = corr * kernels.rkhs_norm_sq(H, y) + (1.0 - corr) * np.sum(1.0 / lam)
    W0, a0 = net.init_net(d, m, rng=rng, antisymmetric=True)  # u(0) = 0
    keys = (
        "complexity",
        "distance",
        "predicted_distance",
        "test_error",
        "train_error",
        "final_loss_ratio",
    )
    out = {k: np.empty((len(LEVELS), draws)) for k in keys}
    out["loss"] = np.empty((len(LEVELS), steps + 1))
    for i, p in enumerate(LEVELS):
        progress(i, len(LEVELS), f"p = {p:.1f}")
        for j in range(draws):
            y_p, _ = data.corrupt_labels(y, fraction=p / 2, rng=rng)  # (n,)
            res = net.train(X, y_p, W0, a0, eta=eta, steps=steps, record_every=steps)
            u_test = net.predict(X_test, res.W, res.a)  # (n_test,)
            out["complexity"][i, j] = kernels.complexity_measure(H, y_p)
            out["predicted_distance"][i, j] = np.sqrt(kernels.rkhs_norm_sq(H, y_p))
            out["distance"][i, j] = res.move_fro[-1]
            out["test_error"][i, j] = np.mean(np.sign(u_test) != y_test)
            out["train_error"][i, j] = np.mean(np.sign(res.u) != y_p)
            out["final_loss_ratio"][i, j] = res.loss[-1] / res.loss[0]
            if j == 0:
                out["loss"][i] = res.loss / res.loss[0]
    out["eta"] = eta
    out["expected_complexity"] = np.sqrt(2.0 * expected_sq / n)  # (len(LEVELS),)
    return out


def summarize(s: dict, c: dict, n_test: int) -> dict:
    """Scalars of one sweep (rank correlations with ``p`` and the end points) and its series.

    ``s`` is what :func:`sweep` returned for the data set of ``CONFIG`` entry ``c``.
    """
    p = np.asarray(LEVELS)
    mean = {k: s[k].mean(axis=1) for k in ("complexity", "distance", "test_error")}  # (levels,)
    rho = {k: float(spearmanr(p, v).statistic) for k, v in mean.items()}
    ratio = s["distance"] / s["predicted_distance"]
    return {
        "rho_complexity": rho["complexity"],
        "rho_distance": rho["distance"],
        "rho_test_error": rho["test_error"],
        "complexity_growth": mean["complexity"][-1] / mean["complexity"][0],
        "test_error_clean": mean["test_error"][0],
        "test_error_random": mean["test_error"][-1],
        "distance_ratio_min": float(ratio.min()),
        "distance_ratio_max": float(ratio.max()),
        "max_final_loss_ratio": float(s["final_loss_ratio"].max()),
        "max_train_error": float(s["train_error"].max()),
        # series for the figure; the four by level are (len(LEVELS), draws)
        "n": c["n"],
        "n_test": n_test,
        "width": c["m"],
        "loss": s["loss"],
        "expected_complexity": s["expected_complexity"],
        "complexity": s["complexity"],
        "distance": s["distance"],
        "predicted_distance": s["predicted_distance"],
        "test_error": s["test_error"],
    }


def _by_level(ax, p, values, color, label):
    """Each draw as a faint dot, the mean over draws as a line."""
    values = np.asarray(values)  # (len(LEVELS), draws)
    ax.plot(np.repeat(p, values.shape[1]), values.ravel(), ".", color=color, alpha=0.35, ms=4)
    ax.plot(p, values.mean(axis=1), "o-", color=color, label=label)


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    cfg = CONFIG["quick" if quick else "full"]
    rng = np.random.default_rng(seed)
    out: dict = {"levels": np.asarray(LEVELS), "datasets": list(cfg)}

    # %% Synthetic two clusters (quick mode): train from one init at every corruption level
    if "synthetic" in cfg:
        c = cfg["synthetic"]
        X, y, X_test, y_test = load_synthetic(c, rng)
        s = sweep(
            X,
            y,
            X_test,
            y_test,
            m=c["m"],
            steps=c["steps"],
            draws=c["draws"],
            rng=rng,
            progress=progress,
        )
        syn = summarize(s, c, len(y_test))
        out |= {
            "rho_complexity_synthetic": syn["rho_complexity"],
            "rho_distance_synthetic": syn["rho_distance"],
            "rho_test_error_synthetic": syn["rho_test_error"],
            "complexity_growth_synthetic": syn["complexity_growth"],
            "test_error_clean_synthetic": syn["test_error_clean"],
            "test_error_random_synthetic": syn["test_error_random"],
            "distance_ratio_min_synthetic": syn["distance_ratio_min"],
            "distance_ratio_max_synthetic": syn["distance_ratio_max"],
            "max_final_loss_ratio_synthetic": syn["max_final_loss_ratio"],
            "max_train_error_synthetic": syn["max_train_error"],
            "n_synthetic": syn["n"],
            "n_test_synthetic": syn["n_test"],
            "width_synthetic": syn["width"],
            "loss_synthetic": syn["loss"],
            "expected_complexity_synthetic": syn["expected_complexity"],
            "complexity_synthetic": syn["complexity"],
            "distance_synthetic": syn["distance"],
            "predicted_distance_synthetic": syn["predicted_distance"],
            "test_error_synthetic": syn["test_error"],
        }

    # %% Digits 3 vs 8: the same protocol on real images
    c = cfg["digits"]
    X, y, X_test, y_test = load_digits_pair(c["pair"], n=c["n"], rng=rng)
    s = sweep(
        X,
        y,
        X_test,
        y_test,
        m=c["m"],
        steps=c["steps"],
        draws=c["draws"],
        rng=rng,
        progress=progress,
    )
    dig = summarize(s, c, len(y_test))
    out |= {
        "rho_complexity_digits": dig["rho_complexity"],
        "rho_distance_digits": dig["rho_distance"],
        "rho_test_error_digits": dig["rho_test_error"],
        "complexity_growth_digits": dig["complexity_growth"],
        "test_error_clean_digits": dig["test_error_clean"],
        "test_error_random_digits": dig["test_error_random"],
        "distance_ratio_min_digits": dig["distance_ratio_min"],
        "distance_ratio_max_digits": dig["distance_ratio_max"],
        "max_final_loss_ratio_digits": dig["max_final_loss_ratio"],
        "max_train_error_digits": dig["max_train_error"],
        "n_digits": dig["n"],
        "n_test_digits": dig["n_test"],
        "width_digits": dig["width"],
        "loss_digits": dig["loss"],
        "expected_complexity_digits": dig["expected_complexity"],
        "complexity_digits": dig["complexity"],
        "distance_digits": dig["distance"],
        "predicted_distance_digits": dig["predicted_distance"],
        "test_error_digits": dig["test_error"],
    }
    return out


def plot(result: dict):
    names = list(result["datasets"])
    fig, axes = subplots(len(names), 4, width=3.3, height=2.8, squeeze=False)
    p = np.asarray(result["levels"])
    colors = width_colors(len(p))[::-1]  # light = clean, dark = random
    xlabel = "fraction p of labels randomised"
    for row, name in zip(axes, names, strict=True):
        ax = row[0]
        for q, curve, c in zip(p, result[f"loss_{name}"], colors, strict=True):
            ax.semilogy(curve, color=c, label=f"p = {q:.1f}")
        ax.set(
            xlabel="step k",
            ylabel="L(k) / L(0)",
            title=f"{name}: n = {result[f'n_{name}']}, m = {result[f'width_{name}']}",
        )
        ax.legend(ncol=2, fontsize=7, loc="upper right")

        ax = row[1]
        _by_level(ax, p, result[f"complexity_{name}"], "C0", "measured")
        ax.plot(p, result[f"expected_complexity_{name}"], "k--", lw=0.9, label="expected")
        ax.set(
            xlabel=xlabel,
            ylabel=r"$\sqrt{2 y^T H_\infty^{-1} y / n}$",
            title="complexity measure",
            ylim=(0, None),
        )
        ax.legend()

        ax = row[2]
        _by_level(ax, p, result[f"distance_{name}"], "C2", r"$\|W - W(0)\|_F$")
        pred = np.asarray(result[f"predicted_distance_{name}"]).mean(axis=1)
        ax.plot(p, pred, "k--", lw=0.9, label=r"$\sqrt{y^T H_\infty^{-1} y}$")
        ax.set(xlabel=xlabel, ylabel="distance from init", title="distance moved", ylim=(0, None))
        ax.legend()

        ax = row[3]
        _by_level(ax, p, result[f"test_error_{name}"], "C3", "trained net")
        ax.axhline(0.5, color="0.6", ls=":", lw=0.9)
        ax.set(
            xlabel=xlabel,
            ylabel="test error (clean labels)",
            title=f"test error, {result[f'n_test_{name}']} test points",
            ylim=(0, 0.75),
        )
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
