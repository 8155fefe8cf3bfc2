"""parallel_inputs: nearly parallel inputs shrink lam0 and slow GD down with it.

Du et al. (ICLR 2019, Thm 3.1) need no two inputs to be parallel: then
``lam0 = lambda_min(H_inf) > 0`` and GD converges linearly at a rate set by the
spectrum of ``H``. This experiment moves pairs of inputs towards each other
(``data.pairs_at_angle``: every point has a partner at angle ``theta``) and
measures what happens to ``lam0`` and to the rate.

For a pair at angle ``theta`` the vector ``e_x - e_x'`` is nearly an eigenvector
of ``H_inf`` with eigenvalue ``1/2 - H_inf(x, x') = theta / (2 pi) + O(theta^2)``,
so ``lam0 ~ theta`` (exponent 1, fitted below). In the kernel regime
``u(k+1) - y ~= (I - eta H)(u(k) - y)``, so the log-loss slope per step tends to
``2 ln(1 - eta lambda_min(H))`` (Arora et al. 2019, Thm 4.1; discussions/theory.md). The
measured slope (``fit.log_rate``) is compared with that prediction at a width
large enough for the angles checked; at a smaller angle the same width is no
longer enough (the width Thm 4.1 asks for grows like ``lam0^(-4)``): the
kernel's small eigenvalue collapses during training and GD is slower than
``H_inf`` predicts.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net
from shared.plotting import subplots, width_colors

CONFIG = {
    "quick": {
        "n": 10,
        "d": 10,
        "m": 8192,
        "angles": (0.8, 0.5),
        "beyond": 0.15,
        "max_steps": 300,
        "sets": 5,  # data sets (points, planes, labels, init): the checks are medians over them
        "lam0_angles": np.geomspace(1e-4, 1.6, 16),
    },
    "full": {
        "n": 20,
        "d": 10,
        "m": 65536,
        "angles": (0.8, 0.5, 0.3),
        "beyond": 0.1,
        "max_steps": 600,
        "sets": 1,
        "lam0_angles": np.geomspace(1e-4, 1.6, 20),
    },
}
SMALL = 0.03  # lam0_exponent is fitted for theta <= SMALL, where lam0 ~ theta / (2 pi)
FIT_HI = 1e-3
DECAY = 30.0  # steps = DECAY / (2 eta lam0), capped: the slowest mode falls by e^-30 ~ 1e-13


def pair_eigenvalue(theta: np.ndarray) -> np.ndarray:
    """``1/2 - H_inf(x, x')`` for unit inputs at angle ``theta``: the pair's small eigenvalue."""
    return 0.5 - np.cos(theta) * (np.pi - theta) / (2.0 * np.pi)


def lam0_vs_angle(n: int, d: int, angles: np.ndarray, *, data_seed) -> np.ndarray:
    """``lam0`` of ``H_inf`` for ``pairs_at_angle`` data at each angle: ``(len(angles),)``.

    Every angle reuses ``data_seed``, so the base points and the planes of
    rotation are the same and only the angle changes.
    """
    return np.array(
        [
            kernels.lambda_min(
                kernels.h_inf(
                    data.pairs_at_angle(n, d, angle=t, rng=np.random.default_rng(data_seed))
                )
            )
            for t in angles
        ]
    )


def gd_at_angle(
    theta: float, y: np.ndarray, *, d: int, m: int, max_steps: int, data_seed, init_seed
) -> dict:
    """Train at one angle; measured and predicted log-loss slopes per step.

    The same ``data_seed`` and ``init_seed`` at every angle: the inputs differ
    only by the angle within each pair, and the init ``W(0), a`` is the same.
    """
    X = data.pairs_at_angle(y.shape[0], d, angle=theta, rng=np.random.default_rng(data_seed))
    H = kernels.h_inf(X)  # (n, n)
    lam = np.linalg.eigvalsh(H)  # (n,) ascending
    lam0, eta = lam[0], 1.0 / lam[-1]
    W0, a0 = net.init_net(d, m, rng=np.random.default_rng(init_seed))
    steps = min(int(np.ceil(DECAY / (2.0 * eta * lam0))), max_steps)
    every = max(steps // 20, 1)
    res = net.train(X, y, W0, a0, eta=eta, steps=steps, track_kernel=True, record_every=every)
    slope = fit.log_rate(res.loss, hi=FIT_HI)
    # the whole spectrum: ||y - u(k)|| = ||(I - eta H_inf)^k (y - u(0))||, fitted in the same window
    r_pred = kernels.predicted_residuals(H, y, eta=eta, steps=steps, u0=net.predict(X, W0, a0))
    slope_spec = fit.log_rate(r_pred**2, hi=FIT_HI)
    return {
        "lam0": lam0,
        "slope": slope,
        "pred_inf": 2.0 * np.log(1.0 - eta * lam0),
        "pred_spec": slope_spec,
        "lam_min_over_lam0": float(res.lambda_min_H.min() / lam0),
        "loss_ratio": res.loss / res.loss[0],
        "k_kernel": res.recorded_steps,
        "lam_min_ratio": res.lambda_min_H / lam0,
    }


def one_set(cfg: dict, angles: tuple, seeds, progress) -> dict:
    """The whole measurement on one data set: ``seeds = (data, init, label)`` SeedSequences."""
    data_seed, init_seed, label_seed = seeds
    n, d, m = cfg["n"], cfg["d"], cfg["m"]
    # lam0 against the angle between two inputs, down to nearly parallel
    th = cfg["lam0_angles"]
    lam0_curve = lam0_vs_angle(n, d, th, data_seed=data_seed)
    small = th <= SMALL  # the small-angle regime where lam0 ~ theta / (2 pi)
    p, p_se = fit.power_law(th[small], lam0_curve[small])
    # GD at each angle: same points, planes, labels and init, only theta changes
    y = data.gaussian_labels(n, rng=np.random.default_rng(label_seed))
    runs = []
    for i, theta in enumerate(angles):
        progress(i, theta)
        runs.append(
            gd_at_angle(
                theta,
                y,
                d=d,
                m=m,
                max_steps=cfg["max_steps"],
                data_seed=data_seed,
                init_seed=init_seed,
            )
        )
    return {"lam0_curve": lam0_curve, "lam0_exponent": p, "lam0_exponent_se": p_se, "runs": runs}


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    cfg = CONFIG["quick" if quick else "full"]
    angles = (*cfg["angles"], cfg["beyond"])  # decreasing; the last beyond what m covers
    th = cfg["lam0_angles"]
    n_sets = cfg["sets"]

    # %% Every data set: lam0 against the angle, and GD at each angle (the first set is the
    # figure's)
    sets = []
    root = np.random.SeedSequence(seed)
    streams = root.spawn(3)  # (data, init, label) of the first set
    extra = root.spawn(3 * (n_sets - 1))
    all_seeds = [streams] + [extra[3 * i : 3 * i + 3] for i in range(n_sets - 1)]
    for s, seeds in enumerate(all_seeds):

        def report(i, theta, s=s):
            progress(s * len(angles) + i, n_sets * len(angles), f"set {s}, theta = {theta}")

        sets.append(one_set(cfg, angles, seeds, report))

    # %% Measure: each rate against the kernel's prediction and their order in the angle,
    # each the median over the data sets
    def med(fn):  # (len(angles),)
        return np.array([np.median([fn(st["runs"][a]) for st in sets]) for a in range(len(angles))])

    ratio_inf = med(lambda r: r["slope"] / r["pred_inf"])
    ratio_spec = med(lambda r: r["slope"] / r["pred_spec"])
    lam_min = med(lambda r: r["lam_min_over_lam0"])
    log_order = np.array(  # (len(angles) - 1,), ln rate(theta) / rate(next smaller theta)
        [
            np.median([np.log(st["runs"][a]["slope"] / st["runs"][a + 1]["slope"]) for st in sets])
            for a in range(len(angles) - 1)
        ]
    )
    first = sets[0]["runs"]
    return {
        "m": cfg["m"],
        "lam0_exponent": float(np.median([st["lam0_exponent"] for st in sets])),
        "lam0_exponent_se": sets[0]["lam0_exponent_se"],
        "lam0_over_pair_smallest": float(
            np.median([st["lam0_curve"][0] for st in sets]) / pair_eigenvalue(th[0])
        ),
        "rate_ratio_min": float(ratio_inf[:-1].min()),
        "rate_ratio_max": float(ratio_inf[:-1].max()),
        "rate_ratio_spec_min": float(ratio_spec[:-1].min()),
        "rate_ratio_spec_max": float(ratio_spec[:-1].max()),
        "lam_min_ratio_inside": float(lam_min[:-1].min()),
        "rate_ratio_beyond": float(ratio_inf[-1]),
        "lam_min_ratio_beyond": float(lam_min[-1]),
        # smallest log-ratio of the rate at one angle to the rate at the next smaller one, and
        # its log10 (checked: its lower tail is lighter; no ordering, <= 0, gives -inf)
        "rate_order_margin": float(log_order.min()),
        "log10_rate_order_margin": (
            float(np.log10(log_order.min())) if log_order.min() > 0 else -np.inf
        ),
        "lam0_angles": th,
        "lam0_curve": sets[0]["lam0_curve"],
        "angles": np.array(angles),
        "gd_lam0": np.array([r["lam0"] for r in first]),
        "slope": np.array([r["slope"] for r in first]),
        "pred_inf": np.array([r["pred_inf"] for r in first]),
        "pred_spec": np.array([r["pred_spec"] for r in first]),
        "rate_ratio": ratio_inf,
        "rate_ratio_spec": ratio_spec,
        "loss_ratio": [r["loss_ratio"] for r in first],
        "k_kernel": [r["k_kernel"] for r in first],
        "lam_min_ratio": [r["lam_min_ratio"] for r in first],
    }


def plot(result: dict):
    fig, axes = subplots(2, 2, width=4.2, height=3.1)
    angles = np.asarray(result["angles"])
    colors = width_colors(len(angles))[::-1]  # dark = large angle

    ax = axes[0, 0]
    th = np.asarray(result["lam0_angles"])
    ax.loglog(
        th,
        result["lam0_curve"],
        "o-",
        label=rf"$\lambda_0$, slope {result['lam0_exponent']:.3f} (small $\theta$)",
    )
    ax.loglog(th, pair_eigenvalue(th), "k--", lw=0.8, label=r"pair: $1/2 - H_\infty(x, x')$")
    ax.loglog(th, th / (2 * np.pi), "k:", lw=0.8, label=r"$\theta / 2\pi$")
    ax.set(
        xlabel=r"angle $\theta$ between partners",
        ylabel=r"$\lambda_0 = \lambda_{min}(H_\infty)$",
        title=r"$\lambda_0$ vs angle",
    )
    ax.legend()

    ax = axes[0, 1]
    for loss, t, pred, c in zip(
        result["loss_ratio"], angles, result["pred_inf"], colors, strict=True
    ):
        k = np.arange(len(loss))
        ax.semilogy(k, loss, color=c, label=rf"$\theta$ = {t:g}")
        # the predicted slope, drawn over the fit window (or the last half if never reached)
        win = np.flatnonzero(loss <= FIT_HI)
        k0 = win[0] if win.size >= 3 else len(loss) // 2
        kk = k[k0:]
        ax.semilogy(kk, 3.0 * loss[k0] * np.exp(pred * (kk - k0)), "--", color=c, lw=0.9)
    ax.set(
        xlabel="step k",
        ylabel="L(k) / L(0)",
        ylim=(1e-16, 3),
        title=rf"GD, m = {result['m']} (dashed: prediction)",
    )
    ax.legend()

    ax = axes[1, 0]
    pred = -np.asarray(result["pred_inf"])
    meas = -np.asarray(result["slope"])
    ax.loglog(pred[:-1], meas[:-1], "o", color="C0", label="kernel regime")
    ax.loglog(pred[-1:], meas[-1:], "s", color="C3", label=rf"$\theta$ = {angles[-1]:g}: beyond")
    lim = np.array([min(pred.min(), meas.min()) / 1.5, max(pred.max(), meas.max()) * 1.5])
    ax.loglog(lim, lim, "k--", lw=0.8, label="measured = predicted")
    for t, x, yv in zip(angles, pred, meas, strict=True):
        ax.annotate(
            rf"$\theta$={t:g}", (x, yv), textcoords="offset points", xytext=(4, -10), fontsize=7
        )
    ax.set(
        xlabel=r"predicted $-2\ln(1 - \eta\lambda_0)$",
        ylabel="measured -slope of log L",
        title="rate per step",
    )
    ax.legend()

    ax = axes[1, 1]
    for k, r, t, c in zip(result["k_kernel"], result["lam_min_ratio"], angles, colors, strict=True):
        ax.plot(k, r, ".-", color=c, label=rf"$\theta$ = {t:g}")
    ax.axhline(0.5, color="C3", ls="--", lw=0.8, label=r"$\lambda_0 / 2$")
    ax.set(
        xlabel="step k",
        ylabel=r"$\lambda_{min}(H(k)) / \lambda_0$",
        title=r"smallest eigenvalue of $H(k)$",
        ylim=(0, 1.1),
    )
    ax.legend()
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
