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
is fitted by GD to ``L <= 1e-4 L(0)`` from the same init, and the complexity,
``||W - W(0)||_F`` and the test error against the clean test labels are recorded.
The data are the digits 3 vs 8 of scikit-learn's bundled ``load_digits`` (50
training images in quick mode, 200 in full mode). The whole protocol is repeated
on independent replicas (training split, init, corruptions), and the trends are
fitted to the level means over replicas.
"""

from __future__ import annotations

import numpy as np

from shared import data, kernels, net
from shared.plotting import subplots, width_colors

LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # fraction p of labels replaced by coin flips
TOL = 1e-4  # each run stops at L(k) <= TOL L(0): every |u_i - y_i| <= sqrt(2 TOL L(0)) is small
CONFIG = {  # digits 3 vs 8; steps is the most a run may take to reach TOL
    "quick": {"n": 50, "pair": (3, 8), "m": 1000, "steps": 2000, "replicas": 6},
    "full": {"n": 200, "pair": (3, 8), "m": 3000, "steps": 3000, "replicas": 2},
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


def expected_complexity(H: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sqrt(2 E[y_p^T H^-1 y_p] / n)`` at every level of ``LEVELS``, flips at rate ``p / 2``.

    ``E[y_p^T H^-1 y_p] = (1 - p)^2 y^T H^-1 y + (1 - (1 - p)^2) tr(H^-1)``: the entries of
    ``y_p / y`` are independent signs with mean ``1 - p``, so off the diagonal they keep the
    correlation ``(1 - p)^2``. Returns ``(len(LEVELS),)``.
    """
    corr = (1.0 - np.asarray(LEVELS)) ** 2  # (len(LEVELS),)
    trace = float(np.sum(1.0 / np.linalg.eigvalsh(H)))
    expected_sq = corr * kernels.rkhs_norm_sq(H, y) + (1.0 - corr) * trace
    return np.sqrt(2.0 * expected_sq / y.shape[0])


def kernel_steps(H: np.ndarray, y: np.ndarray, *, eta: float, steps: int) -> float:
    """First step ``k`` at which the kernel-regime loss ``1/2 ||(I - eta H)^k y||^2`` is at most
    ``TOL`` times its start (``u(0) = 0``; Arora et al. 2019, Sec. 4), ``inf`` if not by ``steps``.
    """
    r = kernels.predicted_residuals(H, y, eta=eta, steps=steps)  # (steps + 1,)
    below = np.flatnonzero((r / r[0]) ** 2 <= TOL)
    return float(below[0]) if below.size else np.inf


def sweep(load, *, m: int, steps: int, replicas: int, rng, progress) -> dict:
    """Repeat the protocol ``replicas`` times, each on a fresh training set, init and corruptions.

    ``load(rng)`` returns ``X (n, d), y (n,), X_test, y_test``. In each replica one
    antisymmetric init (``u(0) = 0``) is trained at every level of ``LEVELS`` by GD with
    ``eta = 1 / lambda_max(H_inf)`` until ``L(k) <= TOL L(0)``, for at most ``steps`` steps.

    Returns
    -------
    dict of (len(LEVELS), replicas) arrays: ``complexity``, ``distance``,
    ``predicted_distance`` (``sqrt(y_p^T H_inf^-1 y_p)``), ``test_error`` (clean test
    labels), ``train_error`` (corrupted training labels), ``final_loss_ratio``,
    ``fit_steps`` (the first step with ``L(k) <= TOL L(0)``, ``inf`` if none) and
    ``kernel_steps`` (the same for the kernel-regime dynamics, :func:`kernel_steps`);
    ``expected_complexity (len(LEVELS), replicas)``; ``loss``, the curves ``L(k) / L(0)`` of
    the first replica; ``n_test``, the number of test points.
    """
    keys = (
        "complexity",
        "distance",
        "predicted_distance",
        "test_error",
        "train_error",
        "final_loss_ratio",
        "fit_steps",
        "kernel_steps",
        "expected_complexity",
    )
    out = {k: np.empty((len(LEVELS), replicas)) for k in keys}
    out["loss"] = []
    for r, rng_r in enumerate(rng.spawn(replicas)):
        X, y, X_test, y_test = load(rng_r)
        out["n_test"] = len(y_test)
        H = kernels.h_inf(X)  # (n, n)
        eta = 1.0 / np.linalg.eigvalsh(H)[-1]
        out["expected_complexity"][:, r] = expected_complexity(H, y)
        W0, a0 = net.init_net(X.shape[1], m, rng=rng_r, antisymmetric=True)  # u(0) = 0
        for i, p in enumerate(LEVELS):
            progress(r * len(LEVELS) + i, replicas * len(LEVELS), f"replica {r}, p = {p:.1f}")
            y_p, _ = data.corrupt_labels(y, fraction=p / 2, rng=rng_r)  # (n,)
            res = net.train(X, y_p, W0, a0, eta=eta, steps=steps, record_every=steps, tol=TOL)
            u_test = net.predict(X_test, res.W, res.a)  # (n_test,)
            out["complexity"][i, r] = kernels.complexity_measure(H, y_p)
            out["predicted_distance"][i, r] = np.sqrt(kernels.rkhs_norm_sq(H, y_p))
            out["distance"][i, r] = res.move_fro[-1]
            out["test_error"][i, r] = np.mean(np.sign(u_test) != y_test)
            out["train_error"][i, r] = np.mean(np.sign(res.u) != y_p)
            out["final_loss_ratio"][i, r] = res.loss[-1] / res.loss[0]
            out["fit_steps"][i, r] = np.inf if res.stopped_step is None else res.stopped_step
            out["kernel_steps"][i, r] = kernel_steps(H, y_p, eta=eta, steps=steps)
            if r == 0:
                out["loss"].append(res.loss / res.loss[0])
    return out


def slope(p: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of ``values (len(p),)`` against ``p (len(p),)``."""
    return float(np.polyfit(p, values, 1)[0])


def summarize(s: dict, c: dict) -> dict:
    """Scalars of one data set's sweep (trends with ``p``, end points, ranges) and its series.

    ``s`` is what :func:`sweep` returned for the data set of ``CONFIG`` entry ``c``. Level
    means are over the replicas; the slopes of complexity and distance are relative to their
    value at ``p = 0``, the slope of the test error is in error per unit ``p``. The distance
    ratios are the extremes over levels of the replica mean of distance / prediction; the
    steps GD needs are compared with the kernel regime's run by run, and the median is kept.
    """
    p = np.asarray(LEVELS)
    mean = {k: s[k].mean(axis=1) for k in ("complexity", "distance", "test_error")}  # (levels,)
    ratio = (s["distance"] / s["predicted_distance"]).mean(axis=1)  # (levels,)
    return {
        "slope_complexity": slope(p, mean["complexity"] / mean["complexity"][0]),
        "slope_distance": slope(p, mean["distance"] / mean["distance"][0]),
        "slope_test_error": slope(p, mean["test_error"]),
        "complexity_growth": mean["complexity"][-1] / mean["complexity"][0],
        "test_error_clean": mean["test_error"][0],
        "test_error_random": mean["test_error"][-1],
        "distance_ratio_min": float(ratio.min()),
        "distance_ratio_max": float(ratio.max()),
        "distance_ratio_max_run": float((s["distance"] / s["predicted_distance"]).max()),
        "fit_steps_over_kernel": float(np.median(s["fit_steps"] / s["kernel_steps"])),
        "fit_steps_max": float(s["fit_steps"].max()),
        "unfitted_runs": int(np.sum(~np.isfinite(s["fit_steps"]))),
        "max_final_loss_ratio": float(s["final_loss_ratio"].max()),
        "max_train_error": float(s["train_error"].max()),
        # series for the figure; the five by level are (len(LEVELS), replicas)
        "n": c["n"],
        "n_test": s["n_test"],
        "width": c["m"],
        "loss": s["loss"],
        "expected_complexity": s["expected_complexity"],
        "complexity": s["complexity"],
        "distance": s["distance"],
        "predicted_distance": s["predicted_distance"],
        "test_error": s["test_error"],
    }


def _by_level(ax, p, values, color, label):
    """Each replica as a faint dot, the mean over replicas as a line."""
    values = np.asarray(values)  # (len(LEVELS), replicas)
    ax.plot(np.repeat(p, values.shape[1]), values.ravel(), ".", color=color, alpha=0.35, ms=4)
    ax.plot(p, values.mean(axis=1), "o-", color=color, label=label)


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    c = CONFIG["quick" if quick else "full"]
    rng = np.random.default_rng(seed)

    # %% Set-up and training: per replica a fresh split of the digits, init and corruptions
    s = sweep(
        lambda g: load_digits_pair(c["pair"], n=c["n"], rng=g),
        m=c["m"],
        steps=c["steps"],
        replicas=c["replicas"],
        rng=rng,
        progress=progress,
    )

    # %% Measure: trends with p, end points, distance against sqrt(y_p^T H_inf^-1 y_p)
    dig = summarize(s, c)
    return {
        "levels": np.asarray(LEVELS),
        "datasets": ["digits"],
        "replicas": c["replicas"],
        "slope_complexity_digits": dig["slope_complexity"],
        "slope_distance_digits": dig["slope_distance"],
        "slope_test_error_digits": dig["slope_test_error"],
        "complexity_growth_digits": dig["complexity_growth"],
        "test_error_clean_digits": dig["test_error_clean"],
        "test_error_random_digits": dig["test_error_random"],
        "distance_ratio_min_digits": dig["distance_ratio_min"],
        "distance_ratio_max_digits": dig["distance_ratio_max"],
        "distance_ratio_max_run_digits": dig["distance_ratio_max_run"],
        "fit_steps_over_kernel_digits": dig["fit_steps_over_kernel"],
        "fit_steps_max_digits": dig["fit_steps_max"],
        "unfitted_runs_digits": dig["unfitted_runs"],
        "max_final_loss_ratio_digits": dig["max_final_loss_ratio"],
        "max_train_error_digits": dig["max_train_error"],
        # series for the figure
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
        expected = np.asarray(result[f"expected_complexity_{name}"]).mean(axis=1)
        ax.plot(p, expected, "k--", lw=0.9, label="expected")
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
