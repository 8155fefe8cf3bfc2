"""width_threshold: how wide is wide enough for GD to fit the data, and how does it grow with n?

Du et al. (ICLR 2019, Thm 4.1) prove linear convergence of GD once the width is
``m = Omega(n^6 / (lam0^4 delta^3))`` (``delta`` the failure probability). Up to
its unspecified constant that is an astronomically large number, and it grows
faster than ``n^6`` because ``lam0`` itself falls with ``n``. This experiment
measures the width GD actually needs, at several ``n``, and fits how it grows.

For each ``n`` (points uniform on the sphere in ``R^d``, Gaussian labels, ``d``
fixed) the first layer is trained by full-batch GD at ``eta = 1 / lambda_max(H_inf)``
for ``K = 30 / (eta lam0)`` steps, a budget in which the infinite-width net
(the kernel regime) brings its slowest mode down by ``e^-60``. The threshold
width ``m*`` is where the median over inits of ``log10 L(K) / L(0)`` crosses the
target ``-3``: found by bisection on a grid of widths a quarter-octave apart,
between ``m d / n = 1/2`` (fewer weights than points) and ``m d / n = 16``, and
interpolated in ``log m`` between the two grid widths that bracket it. The inits
are nested (width ``m`` uses the first ``m`` neurons of one long init), so the
widths of one ``n`` differ only in how many neurons they keep. A power law
``m* ~ n^p`` fitted over the ``n`` gives the exponent that is checked, against
the ``n^6 / lam0^4`` of the theorem and the ``m d ~ n^2`` of the best proven
bounds for moderate widths (Oymak and Soltanolkotabi 2020).
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net
from shared.plotting import subplots, width_colors

TARGET = -3.0  # log10 of the loss ratio L(K) / L(0) that counts as fitted
DECAY = 30.0  # budget K = DECAY / (eta lam0): the kernel regime's slowest mode falls by e^-60
DELTA = 0.1  # failure probability in Thm 4.1's width
PER_OCTAVE = 4  # grid widths per doubling of m
SPAN = (0.5, 16.0)  # the bisection bracket, in weights per data point m d / n ...
MAX_SPAN = 128.0  # ... whose top doubles, up to this, until the median init fits there

CONFIG = {
    # ns: the sample sizes; sets: data sets per n (the small n are cheap and the noisiest);
    # inits: nested inits per data set
    "quick": {"ns": (15, 30, 60, 120), "sets": (8, 4, 2, 1), "d": 10, "inits": 8},
    "full": {"ns": (25, 50, 100, 200, 400), "sets": (4, 2, 2, 1, 1), "d": 20, "inits": 8},
}


def log_loss_ratios(X, y, W0, a0, *, eta: float, steps: int, stop_at: float | None = None):
    """``log10 L(k) / L(0)`` of full-batch GD on ``W``, for ``J`` inits at once.

    The step of :func:`shared.net.train` (Du et al. 2019, Eq. (6); ``a`` fixed),
    ``w_r <- w_r - eta (1/sqrt m) a_r sum_i (u_i - y_i) 1{w_r.x_i >= 0} x_i``,
    vectorised over the inits: the nets here are so small (``m`` of a few tens)
    that one step of ``net.train`` costs its call overhead, and ``J`` inits in
    one batched product cost little more than one.

    Parameters
    ----------
    X : (n, d) ndarray; y : (n,) ndarray
    W0 : (J, m, d) ndarray; a0 : (J, m) ndarray
        ``J`` inits of width ``m``; not modified.
    stop_at : stop after the first step at which every init has ``log10 L(k) / L(0) <= stop_at``
        (``None``: run all ``steps``).

    Returns
    -------
    ratio : (k_stop + 1, J) ndarray, ``log10 L(k) / L(0)``; ``k_stop = steps`` without a stop.
    """
    c = 1.0 / np.sqrt(W0.shape[1])
    W = W0.copy()  # (J, m, d)
    ca = (c * a0)[:, None, :]  # (J, 1, m)
    step = (eta * c) * a0[:, :, None]  # (J, m, 1)
    XT = np.ascontiguousarray(X.T)  # (d, n)
    loss = np.empty((steps + 1, W0.shape[0]))
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging init reads +inf below
        for k in range(steps + 1):
            Z = W @ XT  # (J, m, n), w_r . x_i
            r = (ca @ np.maximum(Z, 0.0))[:, 0, :] - y  # (J, n), u - y
            loss[k] = 0.5 * np.einsum("jn,jn->j", r, r)
            fitted = stop_at is not None and np.all(loss[k] <= 10.0**stop_at * loss[0])
            if k == steps or fitted:
                loss = loss[: k + 1]
                break
            np.greater_equal(Z, 0.0, out=Z)  # (J, m, n), the pattern 1{w_r . x_i >= 0}
            Z *= r[:, None, :]
            W -= step * (Z @ X)  # sum_i (u_i - y_i) 1{.} x_i, times eta c a_r
    with np.errstate(divide="ignore", invalid="ignore"):  # an exact fit reads -inf
        ratio = np.log10(loss / loss[0])
    return np.where(np.isnan(ratio), np.inf, ratio)


def width_grid(n: int, d: int, top: float = MAX_SPAN) -> np.ndarray:
    """Integer widths a quarter-octave apart, ``m d / n`` from ``SPAN[0]`` to ``top``: ``(g,)``."""
    lo, hi = SPAN[0] * n / d, top * n / d
    steps = np.arange(int(np.floor(PER_OCTAVE * np.log2(hi / lo))) + 1)
    return np.unique(np.maximum(1, np.round(lo * 2.0 ** (steps / PER_OCTAVE))).astype(int))


def threshold(X, y, W0, a0, *, eta: float, steps: int) -> dict:
    """Smallest width at which the median init reaches ``TARGET`` within ``steps``, by bisection.

    ``W0 (J, m_max, d)`` and ``a0 (J, m_max)`` are nested inits: width ``m`` keeps the
    first ``m`` neurons (``m_max`` the last width of :func:`width_grid`). The bracket is
    ``m d / n`` from ``SPAN[0]`` to ``SPAN[1]``; where the median init does not fit at the
    top its width doubles until it does, up to ``MAX_SPAN`` (a ``ValueError`` beyond, or if
    the median init already fits at the bottom). The top only needs to show that the inits
    get there, so it stops once they all have. The threshold is interpolated in ``log m``
    between the last bracket.

    Returns
    -------
    dict with ``m_star``; the evaluated ``widths`` (ascending) with the ``median`` and
    ``final`` ``(len(widths), J)`` log10 loss ratios at ``steps`` (the widest: where it
    stopped) and one ``curve`` per width (init 0); ``wide_steps``, the step at which the
    median init reached the target at the widest grid width, and ``wide_fitted``, the
    fraction of inits that reached it there within ``steps``.
    """
    n, d = X.shape
    grid = width_grid(n, d)
    top = len(width_grid(n, d, SPAN[1])) - 1
    evals = {}

    def median_at(i, *, stop=False):
        if i not in evals or (not stop and len(evals[i]) < steps + 1):
            m = grid[i]
            evals[i] = log_loss_ratios(
                X, y, W0[:, :m], a0[:, :m], eta=eta, steps=steps, stop_at=TARGET if stop else None
            )
        return float(np.median(evals[i][-1]))

    if not median_at(0) > TARGET:
        raise ValueError(f"SPAN: at m d / n = {SPAN[0]} the median init already fits (n = {n})")
    lo = 0
    while not median_at(top, stop=True) <= TARGET:
        if top == len(grid) - 1:
            raise ValueError(f"MAX_SPAN: at m d / n = {MAX_SPAN} the median init does not fit")
        lo, top = top, min(top + PER_OCTAVE, len(grid) - 1)
    hits = evals[top] <= TARGET  # (k_stop + 1, J)
    first = np.where(hits.any(axis=0), hits.argmax(axis=0), steps + 1)  # (J,), steps + 1: never
    wide_steps, wide_fitted = float(np.median(first)), float(hits.any(axis=0).mean())
    hi = top
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if median_at(mid) > TARGET:
            lo = mid
        else:
            hi = mid
    a, b = median_at(lo), median_at(hi)  # the widest is rerun to the full budget if it is hi
    t = (a - TARGET) / (a - b) if np.isfinite(b) else 1.0  # fraction of the way from lo to hi
    idx = sorted(evals)
    return {
        "m_star": float(np.exp((1.0 - t) * np.log(grid[lo]) + t * np.log(grid[hi]))),
        "widths": grid[idx],
        "median": np.array([np.median(evals[i][-1]) for i in idx]),
        "final": np.array([evals[i][-1] for i in idx]),
        "curve": [evals[i][:, 0] for i in idx],
        "wide_steps": wide_steps,
        "wide_fitted": wide_fitted,
        "top_span": float(grid[top] * d / n),
    }


def theoretical_width(n: int, lam0: float, delta: float = DELTA) -> float:
    """``n^6 / (lam0^4 delta^3)``: Thm 4.1's width requirement with its constant set to 1."""
    return float(n) ** 6 / (lam0**4 * delta**3)


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    cfg = CONFIG["quick" if quick else "full"]
    ns, sets, d, inits = cfg["ns"], cfg["sets"], cfg["d"], cfg["inits"]
    streams = np.random.default_rng(seed).spawn(len(ns))

    per_n = []  # per n: one dict per data set
    for i, (n, n_sets, rng_n) in enumerate(zip(ns, sets, streams, strict=True)):
        progress(i, len(ns), f"n = {n}")
        runs = []
        for rng in rng_n.spawn(n_sets):
            # %% Set-up: data, H_inf, the step and the budget
            X = data.unit_sphere(n, d, rng=rng)
            y = data.gaussian_labels(n, rng=rng)
            lam = np.linalg.eigvalsh(kernels.h_inf(X))  # (n,) ascending
            eta = 1.0 / lam[-1]
            steps = int(np.ceil(DECAY / (eta * lam[0])))
            # %% Nested inits: width m keeps the first m neurons of each
            m_max = int(width_grid(n, d)[-1])  # the widest the bisection may need
            W0 = np.empty((inits, m_max, d))
            a0 = np.empty((inits, m_max))
            for j in range(inits):
                W0[j], a0[j] = net.init_net(d, m_max, rng=rng)
            # %% Train and bisect
            res = threshold(X, y, W0, a0, eta=eta, steps=steps)
            res.update(lam0=lam[0], eta=eta, budget=steps, m_theory=theoretical_width(n, lam[0]))
            runs.append(res)
        per_n.append(runs)
    progress(len(ns), len(ns), "done")

    # %% Measure: the threshold's growth with n (geometric means over the data sets of each n),
    # against Thm 4.1's width
    def geo(key):  # (len(ns),)
        return np.array([np.exp(np.mean(np.log([r[key] for r in runs]))) for runs in per_n])

    n_arr = np.asarray(ns, dtype=float)
    m_star, lam0s, m_theory = geo("m_star"), geo("lam0"), geo("m_theory")
    p, p_se = fit.power_law(n_arr, m_star)
    everything = [r for runs in per_n for r in runs]
    i_ref = ns.index(30) if 30 in ns else len(ns) // 2
    theory_ref = [r["m_theory"] for r in per_n[i_ref]]
    return {
        "ns": np.asarray(ns),
        "d": d,
        "lam0": lam0s,
        "m_star": m_star,
        "threshold_exponent_n": p,
        "threshold_exponent_n_se": p_se,
        "weights_per_point": m_star * d / n_arr,
        "weights_per_point_min": float(np.min(m_star * d / n_arr)),
        "log10_weights_per_point_mean": float(np.mean(np.log10(m_star * d / n_arr))),
        "lam0_exponent_n": fit.power_law(n_arr, lam0s)[0],
        # Thm 4.1's width grows like n^6 / lam0^4 over the same data sets
        "m_theory": m_theory,
        "theorem_exponent_n": fit.power_law(n_arr, m_theory)[0],
        "n_reference": ns[i_ref],
        "m_theory_reference": float(m_theory[i_ref]),
        "m_theory_reference_min": float(min(theory_ref)),
        "m_theory_reference_max": float(max(theory_ref)),
        "log10_width_ratio": float(np.log10(m_theory[i_ref] / m_star[i_ref])),
        # the bracket ends: at m d / n = 1/2 (fewer weights than points) GD stalls, the
        # median over the inits and data sets of each n, the lowest n; at the top (m d / n =
        # 16 unless it had to double) the median init fits, in a fraction of the budget
        "narrow_log10_loss_min": float(
            min(np.median([r["final"][0] for r in runs]) for runs in per_n)
        ),
        "wide_steps_over_budget": float(
            max(np.median([r["wide_steps"] / r["budget"] for r in runs]) for runs in per_n)
        ),
        "wide_fitted_fraction_min": float(min(r["wide_fitted"] for r in everything)),
        "top_span_max": float(max(r["top_span"] for r in everything)),
        # series for the figure: the first data set of each n
        "budget": np.array([runs[0]["budget"] for runs in per_n]),
        "widths": [runs[0]["widths"] for runs in per_n],
        "median_log10_loss": [runs[0]["median"] for runs in per_n],
        "final_log10_loss": [runs[0]["final"] for runs in per_n],
        "curves": [runs[0]["curve"] for runs in per_n],
        "m_star_sets": [np.array([r["m_star"] for r in runs]) for runs in per_n],
    }


def plot(result: dict):
    fig, axes = subplots(2, 2, width=4.2, height=3.1)
    ns, d = np.asarray(result["ns"]), result["d"]
    colors = width_colors(len(ns))
    m_star = np.asarray(result["m_star"])

    ax = axes[0, 0]
    m_first = [np.asarray(ms)[0] for ms in result["m_star_sets"]]
    for n, widths, med, ms, c in zip(
        ns, result["widths"], result["median_log10_loss"], m_first, colors, strict=True
    ):
        x = np.asarray(widths) * d / n
        order = np.argsort(x)
        ax.semilogx(x[order], np.asarray(med)[order], "o-", color=c, ms=3, label=f"n = {n}")
        ax.axvline(ms * d / n, color=c, lw=0.6, ls=":")
    ax.axhline(TARGET, color="k", ls="--", lw=0.8)
    ax.axvline(1.0, color="C3", lw=0.8)
    ax.set(
        xlabel="weights per data point  m d / n",
        ylabel=r"median $\log_{10} L(K) / L(0)$",
        title="bisection, one data set per n (dotted: m*)",
    )
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    i = int(np.flatnonzero(ns == result["n_reference"])[0])
    widths = np.asarray(result["widths"][i])
    for curve, m, c in zip(result["curves"][i], widths, width_colors(len(widths)), strict=True):
        ax.plot(np.arange(len(curve)), curve, color=c, lw=1, label=f"m = {m}")
    ax.axhline(TARGET, color="k", ls="--", lw=0.8)
    ax.set(
        xlabel="step k",
        ylabel=r"$\log_{10} L(k) / L(0)$",
        ylim=(-12, 0.5),
        title=f"n = {ns[i]}: one init at each evaluated width",
    )
    ax.legend(fontsize=6, ncol=2)

    ax = axes[1, 0]
    p = result["threshold_exponent_n"]
    for n, ms in zip(ns, result["m_star_sets"], strict=True):
        ax.loglog(np.full(len(ms), n), ms, ".", color="C2", alpha=0.4, ms=3)
    ax.loglog(ns, m_star, "o", color="C2", label=f"m* (GD), fit $n^{{{p:.2f}}}$")
    fitted = m_star[0] * (ns / ns[0]) ** p
    ax.loglog(ns, np.exp(np.mean(np.log(m_star / fitted))) * fitted, "-", color="C2", lw=0.8)
    ax.loglog(ns, ns / d, "--", color="C3", lw=0.8, label="m d = n")
    ax.loglog(
        ns,
        result["m_theory"],
        "s-",
        color="C0",
        label=rf"Thm 4.1 $n^6/(\lambda_0^4\delta^3)$, $n^{{{result['theorem_exponent_n']:.1f}}}$",
    )
    ax.set(xlabel="n", ylabel="width m", title=f"threshold width vs n (d = {d})")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xticks([], minor=True)
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    ax.semilogx(ns, result["weights_per_point"], "o-", color="C2")
    ax.axhline(1.0, color="C3", lw=0.8, label="m d = n")
    ax.set(
        xlabel="n",
        ylabel="m* d / n",
        ylim=(0, None),
        title="weights per data point at the threshold",
    )
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xticks([], minor=True)
    ax.legend()
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
