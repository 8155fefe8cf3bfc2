"""feature_learning: a target the kernel regime cannot learn from n samples and a non-lazy net can.

The target is the 2-sparse parity (XOR) ``y = s_1 s_2`` of ``s ~ unif{-1, +1}^d``, seen as the
unit input ``x = s / sqrt(d)``. It is a degree-2 polynomial orthogonal to every linear one, and
a rotation-invariant kernel such as ``H_inf`` fits the degree-2 part of a target only once ``n``
is of order ``d^2`` (Ghorbani, Mei, Misiakiewicz, Montanari, "Linearized two-layers neural
networks in high dimension", Ann. Statist. 2021). Wei, Lee, Liu, Ma (NeurIPS 2019) prove a
separation for an XOR-type distribution: the NTK needs ``Omega(d^2)`` samples, a regularized
net ``O(d)``. With ``n = 5 d`` training points (``n << d^2``) we compare (a) kernel regression
with ``H_inf``, (b) GD on Du et al.'s net at the NTK scale, and (c) the same GD from the same
init at a small output scale ``alpha``.

The output scale follows Chizat, Oyallon and Bach (NeurIPS 2019): the model ``alpha f(W)`` is
trained on ``(1 / alpha^2) L``, so at ``k = 0`` every ``alpha`` moves the predictions with the
same kernel ``H(0)``, but the weights move ``1 / alpha`` times further. An antisymmetric init
makes ``f(W(0)) = 0``, so no centring is needed. What changes with ``alpha`` is whether the
kernel moves: it is measured by the kernel-target alignment ``y^T K y / (||K||_F ||y||^2)``
(Cristianini et al. 2001) of the tangent kernel ``H(W(k))`` on fresh test inputs (Baratin et
al., AISTATS 2021, report such a rise on trained networks).
"""

from __future__ import annotations

import itertools

import numpy as np

from shared import data, features, kernels, net
from shared.plotting import subplots

CONFIG = {
    "quick": {
        "d": 40,
        "n": 200,
        "n_test": 500,
        "m": 500,
        "steps": 200,
        "alphas": (1.0, 0.3, 0.1, 0.03, 0.01),
        "rich_inits": 3,
        "checkpoints": (0, 5, 10, 20, 50, 100, 200),
        "sample_sizes": (),
    },
    "full": {
        "d": 40,
        "n": 200,
        "n_test": 2000,
        "m": 2000,
        "steps": 300,
        "alphas": (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01),
        "rich_inits": 3,
        "checkpoints": (0, 5, 10, 20, 50, 100, 200, 300),
        "sample_sizes": (50, 100, 200, 400, 800, 1600),
    },
}


def train_scaled(X, y, W0, a0, *, alpha: float, eta: float, checkpoints) -> tuple[list, np.ndarray]:
    """GD on ``(1 / alpha^2) 1/2 ||alpha f(W) - y||^2`` over ``W``, stopping at each checkpoint.

    ``net.train`` with output ``scale = alpha`` and step ``eta / alpha^2`` is exactly this GD
    (Chizat et al. 2019, Sec. 2): the predictions move by ``-eta H(W) (u - y)`` to first order at
    every ``alpha``. ``W0, a0`` must give ``f(W0) = 0`` (antisymmetric init).

    Returns
    -------
    Ws : list of (m, d) ndarrays, ``W`` at every checkpoint (the first is ``W0``).
    loss : (checkpoints[-1] + 1,) ndarray, ``1/2 ||alpha f(W(k)) - y||^2`` at every step ``k``.
    """
    Ws, losses, W = [W0], [], W0
    for k0, k1 in itertools.pairwise(checkpoints):
        res = net.train(
            X, y, W, a0, eta=eta / alpha**2, steps=k1 - k0, scale=alpha, record_every=k1 - k0
        )
        W = res.W
        Ws.append(W)
        losses.append(res.loss if not losses else res.loss[1:])
    return Ws, np.concatenate(losses)


#: The sign-error level behind the margin quantile: the ``MARGIN_LEVEL`` quantile of ``y u`` is
#: positive exactly when fewer than that fraction of the points get the wrong sign.
MARGIN_LEVEL = 0.15


def error_and_mse(u: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Sign error ``mean(sign(u) != y)`` and squared error ``mean((u - y)^2)`` (``E y^2 = 1``)."""
    return float(np.mean(np.sign(u) != y)), float(np.mean((u - y) ** 2))


def margin_quantile(u: np.ndarray, y: np.ndarray, level: float = MARGIN_LEVEL) -> float:
    """The ``level`` quantile of the margins ``y_i u_i`` (``u, y : (n_test,)``).

    Positive iff fewer than a fraction ``level`` of the points have the wrong sign (up to the
    interpolation between two order statistics), so it carries the claim "test error below
    ``level``" as a continuous number, with the distance from failing in units of ``y``.
    """
    return float(np.quantile(y * u, level))


def rich_run(X, y, X_test, y_test, W0, a0, *, alpha: float, eta: float, steps: int, u_kernel):
    """One non-lazy run from ``(W0, a0)``: what the checks read at its end.

    Returns a dict of floats: ``error``, ``mse`` and ``margin`` (:func:`margin_quantile`) on the
    test points, ``gain`` (alignment of
    ``H(W(K))`` over that of ``H(W0)`` on the test inputs), ``gap``
    (``||u - u_kernel|| / ||u_kernel||``), ``rel_change`` and ``loss`` (``L(K) / L(0)``).
    """
    Ws, loss = train_scaled(X, y, W0, a0, alpha=alpha, eta=eta, checkpoints=(0, steps))
    u = alpha * net.predict(X_test, Ws[-1], a0)  # (n_test,)
    error, mse = error_and_mse(u, y_test)
    margin = margin_quantile(u, y_test)
    align = [
        features.kernel_alignment(features.gram_h_cross(X_test, X_test, W), y_test) for W in Ws
    ]
    return {
        "error": error,
        "mse": mse,
        "margin": margin,
        "gain": align[-1] / align[0],
        "gap": float(np.linalg.norm(u - u_kernel) / np.linalg.norm(u_kernel)),
        "rel_change": float(np.linalg.norm(Ws[-1] - W0) / np.linalg.norm(W0)),
        "loss": float(loss[-1] / loss[0]),
    }


def kernel_baseline(X, y, X_test, y_test) -> tuple[float, float, np.ndarray]:
    """Test error and MSE of the minimum-norm ``H_inf`` interpolant; its test predictions."""
    u = features.kernel_predict(kernels.h_inf(X), features.h_inf_cross(X_test, X), y)
    return (*error_and_mse(u, y_test), u)


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return the checked scalars and the series of the figure."""
    cfg = CONFIG["quick" if quick else "full"]
    d, n, m, alphas, ks = cfg["d"], cfg["n"], cfg["m"], cfg["alphas"], cfg["checkpoints"]
    rng_data, rng_net, rng_sweep, rng_rich = np.random.default_rng(seed).spawn(4)

    # %% Set-up: XOR data, H_inf, the kernel predictor, one antisymmetric init
    X, y = data.sparse_parity(n, d, k=2, rng=rng_data)  # (n, d), (n,)
    X_test, y_test = data.sparse_parity(cfg["n_test"], d, k=2, rng=rng_data)
    lam = np.linalg.eigvalsh(kernels.h_inf(X))  # (n,) ascending
    eta = 1.0 / lam[-1]
    kernel_error, kernel_mse, u_kernel = kernel_baseline(X, y, X_test, y_test)
    W0, a0 = net.init_net(d, m, rng=rng_net, antisymmetric=True)  # f(W0) = 0
    align0 = features.kernel_alignment(features.gram_h_cross(X_test, X_test, W0), y_test)

    # %% Train: the same init at every output scale alpha (alphas[0] = 1 is the NTK scale)
    sweep = {key: np.empty(len(alphas)) for key in ("error", "mse", "gain", "rel_change", "loss")}
    tracks, u_end = {}, {}  # the lazy and the most non-lazy run, step by step
    for i, alpha in enumerate(alphas):
        progress(i, len(alphas), f"alpha = {alpha:g}")
        Ws, loss = train_scaled(X, y, W0, a0, alpha=alpha, eta=eta, checkpoints=ks)
        u = alpha * net.predict(X_test, Ws[-1], a0)  # (n_test,)
        sweep["error"][i], sweep["mse"][i] = error_and_mse(u, y_test)
        sweep["rel_change"][i] = np.linalg.norm(Ws[-1] - W0) / np.linalg.norm(W0)
        sweep["loss"][i] = loss[-1] / loss[0]
        if i in (0, len(alphas) - 1):
            K_test = [features.gram_h_cross(X_test, X_test, W) for W in Ws]
            tracks[i] = {
                "loss": loss / loss[0],
                "alignment": np.array([features.kernel_alignment(K, y_test) for K in K_test]),
                "error": np.array(
                    [error_and_mse(alpha * net.predict(X_test, W, a0), y_test)[0] for W in Ws]
                ),
            }
            sweep["gain"][i] = tracks[i]["alignment"][-1] / align0
            u_end[i] = u
        else:
            K = features.gram_h_cross(X_test, X_test, Ws[-1])
            sweep["gain"][i] = features.kernel_alignment(K, y_test) / align0

    # %% The non-lazy run from more inits: the features it finds vary from init to init, so its
    # quantities are medians over `rich_inits` antisymmetric inits (the first is W0 above)
    rich_rows = [
        {
            "error": sweep["error"][-1],
            "mse": sweep["mse"][-1],
            "margin": margin_quantile(u_end[len(alphas) - 1], y_test),
            "gain": sweep["gain"][-1],
            "gap": float(
                np.linalg.norm(u_end[len(alphas) - 1] - u_kernel) / np.linalg.norm(u_kernel)
            ),
            "rel_change": sweep["rel_change"][-1],
            "loss": sweep["loss"][-1],
        }
    ]
    for _ in range(cfg["rich_inits"] - 1):
        W0_r, a0_r = net.init_net(d, m, rng=rng_rich, antisymmetric=True)
        rich_rows.append(
            rich_run(
                X,
                y,
                X_test,
                y_test,
                W0_r,
                a0_r,
                alpha=alphas[-1],
                eta=eta,
                steps=ks[-1],
                u_kernel=u_kernel,
            )
        )
    rich_median = {key: float(np.median([r[key] for r in rich_rows])) for key in rich_rows[0]}

    # %% Sample-size sweep (full mode): kernel regression against the non-lazy net
    sizes = cfg["sample_sizes"]
    size_kernel_error, size_rich_error = np.empty(len(sizes)), np.empty(len(sizes))
    for j, n_j in enumerate(sizes):
        progress(j, len(sizes), f"n = {n_j}")
        Xj, yj = data.sparse_parity(n_j, d, k=2, rng=rng_sweep)
        size_kernel_error[j] = kernel_baseline(Xj, yj, X_test, y_test)[0]
        eta_j = 1.0 / np.linalg.eigvalsh(kernels.h_inf(Xj))[-1]
        Ws, _ = train_scaled(Xj, yj, W0, a0, alpha=alphas[-1], eta=eta_j, checkpoints=(0, ks[-1]))
        u = alphas[-1] * net.predict(X_test, Ws[-1], a0)
        size_rich_error[j] = error_and_mse(u, y_test)[0]

    # %% Measure
    lazy, rich = 0, len(alphas) - 1
    log_gain = np.log(sweep["gain"])  # (len(alphas),), alphas from 1 down
    lazy_gap = float(np.linalg.norm(u_end[lazy] - u_kernel) / np.linalg.norm(u_kernel))
    out = {}
    if len(sizes):
        out["kernel_error_largest_n"] = float(size_kernel_error[-1])
        out["rich_error_smallest_n"] = float(size_rich_error[0])
    return out | {
        "d": d,
        "n": n,
        "m": m,
        "eta": eta,
        "alpha_rich": alphas[rich],
        "kernel_test_error": kernel_error,
        "kernel_test_mse": kernel_mse,
        "lazy_test_error": sweep["error"][lazy],
        "lazy_test_mse": sweep["mse"][lazy],
        "rich_test_error": rich_median["error"],
        "rich_test_mse": rich_median["mse"],
        "rich_test_margin_q15": rich_median["margin"],
        "lazy_final_loss_ratio": sweep["loss"][lazy],
        "rich_final_loss_ratio": rich_median["loss"],
        "lazy_kernel_gap": lazy_gap,
        "rich_kernel_gap": rich_median["gap"],
        # the same data set and test points: how many times further the non-lazy net's test
        # predictions are from the kernel predictor than the lazy net's
        "kernel_gap_rich_over_lazy": rich_median["gap"] / lazy_gap,
        "alignment_init": align0,
        "lazy_alignment_gain": sweep["gain"][lazy],
        "rich_alignment_gain": rich_median["gain"],
        # d log(gain) / d log(alpha), least squares over the alphas; and the smallest rise of
        # log(gain) from one alpha to the next smaller one (> 0 iff the gain rises at every step)
        "alignment_gain_alpha_exponent": float(np.polyfit(np.log(alphas), log_gain, 1)[0]),
        "alignment_gain_log_step_min": float(np.min(np.diff(log_gain))),
        "lazy_rel_change": sweep["rel_change"][lazy],
        "rich_rel_change": rich_median["rel_change"],
        "rich_test_error_max": max(r["error"] for r in rich_rows),
        # series for the figure
        "alphas": np.asarray(alphas),
        "alpha_test_error": sweep["error"],
        "alpha_test_mse": sweep["mse"],
        "alpha_alignment_gain": sweep["gain"],
        "alpha_rel_change": sweep["rel_change"],
        "checkpoints": np.asarray(ks),
        "lazy_loss": tracks[lazy]["loss"],
        "rich_loss": tracks[rich]["loss"],
        "lazy_alignment": tracks[lazy]["alignment"],
        "rich_alignment": tracks[rich]["alignment"],
        "lazy_error_track": tracks[lazy]["error"],
        "rich_error_track": tracks[rich]["error"],
        "sample_sizes": np.asarray(sizes),
        "size_kernel_error": size_kernel_error,
        "size_rich_error": size_rich_error,
    }


def plot(result: dict):
    has_sizes = len(result["sample_sizes"]) > 0
    fig, axes = subplots(1, 5 if has_sizes else 4, width=3.2, height=3.0)
    ks = np.asarray(result["checkpoints"])
    colors = {"lazy": "C0", "rich": "C3"}
    labels = {"lazy": r"$\alpha = 1$ (NTK scale)", "rich": rf"$\alpha = {result['alpha_rich']:g}$"}

    ax = axes[0]
    for key in ("lazy", "rich"):
        loss = np.asarray(result[f"{key}_loss"])
        ax.semilogy(np.arange(len(loss)), loss, color=colors[key], label=labels[key])
    ax.set(xlabel="step k", ylabel="L(k) / L(0)", title="(a) training loss")
    ax.legend()

    ax = axes[1]
    for key in ("lazy", "rich"):
        ax.plot(ks, result[f"{key}_error_track"], "o-", color=colors[key], ms=3, label=labels[key])
    ax.axhline(result["kernel_test_error"], color="k", ls=":", lw=1, label=r"$H_\infty$ regression")
    ax.axhline(0.5, color="0.8", lw=0.8)
    ax.set(xlabel="step k", ylabel="test error", title="(b) test error", ylim=(-0.02, 0.6))
    ax.legend()

    ax = axes[2]
    for key in ("lazy", "rich"):
        ax.plot(ks, result[f"{key}_alignment"], "o-", color=colors[key], ms=3, label=labels[key])
    ax.set(
        xlabel="step k",
        ylabel=r"$y^T K y / (\|K\|_F \|y\|^2)$ on test inputs",
        title="(c) alignment of H(W(k))",
    )
    ax.legend()

    ax = axes[3]
    alphas = np.asarray(result["alphas"])
    ax.semilogx(alphas, result["alpha_test_error"], "o-", color="C2", label="test error")
    ax.semilogx(alphas, result["alpha_test_mse"], "s--", color="C2", label="test MSE")
    ax.axhline(result["kernel_test_error"], color="k", ls=":", lw=1, label=r"$H_\infty$ error")
    ax2 = ax.twinx()
    ax2.semilogx(alphas, result["alpha_alignment_gain"], "^-", color="C4")
    ax2.set_ylabel("alignment gain A(K) / A(0)", color="C4")
    ax.set(xlabel=r"output scale $\alpha$", ylabel="test error, MSE", title="(d) lazy to rich")
    ax.invert_xaxis()
    ax.legend(fontsize=7, loc="center left")

    if has_sizes:
        ax = axes[4]
        sizes = np.asarray(result["sample_sizes"])
        ax.semilogx(
            sizes, result["size_kernel_error"], "o-", color="k", label=r"$H_\infty$ regression"
        )
        ax.semilogx(sizes, result["size_rich_error"], "o-", color="C3", label=labels["rich"])
        ax.axvline(result["d"] ** 2 / 2, color="0.6", ls=":", lw=1, label=r"$d^2/2$")
        ax.axhline(0.5, color="0.8", lw=0.8)
        ax.set(xlabel="training points n", ylabel="test error", title="(e) sample size")
        ax.legend(fontsize=7)
    fig.suptitle(f"2-sparse parity (XOR), d = {result['d']}, n = {result['n']}, m = {result['m']}")
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
