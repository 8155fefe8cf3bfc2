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
from shared.plotting import subplots

CONFIG = {
    # sets: data sets, inits: nets per data set (every pair gets a catapult run, a stable run
    # and a bisection of the window's end); steps: GD steps per run
    "quick": {"n": 16, "d": 16, "m": 1000, "steps": 300, "sets": 5, "inits": 2},
    "full": {"n": 16, "d": 16, "m": 1000, "steps": 1000, "sets": 8, "inits": 4},
}
RATIO_CATAPULT, RATIO_STABLE = 3.0, 1.8  # eta lambda_max(H(0)) of the two runs of every pair
RATIO_TOP = 12.0  # top of the bisection bracket: Lewkowycz et al.'s largest window for ReLU nets
BISECTIONS = 5  # halvings of [3, 12] in log(eta): the window's end to a factor 4^(1/32) ~ 4.4%
SPIKE = 2.0  # a run "spikes" when max_k L(k) / L(0) exceeds this
CONVERGED = 1e-6  # a run "converges" when L(K) / L(0) falls below this


def lambda_max(X: np.ndarray, W: np.ndarray) -> float:
    """Top eigenvalue of ``H(W)`` (Du et al. 2019, Sec. 3): the curvature GD feels along ``u``."""
    return float(np.linalg.eigvalsh(kernels.gram_h(X, W))[-1])


def train_tracking_kernel(X, y, W0, a, *, eta: float, steps: int, track: bool = True):
    """GD (``net.train``) watching ``lambda_max(H(W(k)))`` at every step through its callback.

    Returns
    -------
    loss : (K + 1,) ndarray, ``L(k)`` (``K < steps`` if the run diverged).
    lam_max : ``lambda_max(H(W(k)))``, ``(K + 1,)`` with ``track``, else ``(2,)``: ``k = 0, K``.
    W : (m, d) ndarray, the last weights kept.
    """
    lam = []

    def watch(k, W, a, u):
        lam.append(lambda_max(X, W))

    with np.errstate(over="ignore", invalid="ignore"):
        res = net.train(
            X,
            y,
            W0,
            a,
            eta=eta,
            steps=steps,
            record_every=1 if track else steps,
            on_divergence="flag",
            callback=watch if track else None,
        )
    if not track:
        lam = [lambda_max(X, W0), lambda_max(X, res.W)]
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


def converges(X, y, W0, a, *, ratio: float, lam_max0: float, steps: int) -> tuple[bool, float]:
    """Whether GD at ``eta = ratio / lambda_max(H(0))`` reaches ``L(K) / L(0) < CONVERGED``.

    Returns ``(converged, peak)``, ``peak = max_k L(k) / L(0)`` (``inf`` if it diverged).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        res = net.train(
            X, y, W0, a, eta=ratio / lam_max0, steps=steps, record_every=steps, on_divergence="flag"
        )
    if res.diverged:
        return False, float("inf")
    L = res.loss / res.loss[0]
    return bool(L[-1] < CONVERGED), float(L.max())


def window_end(X, y, W0, a, *, lam_max0: float, steps: int, converged_at_catapult: bool):
    """The largest ``eta lambda_max(H(0))`` at which GD converges, by bisection in ``log eta``.

    The bracket is ``[RATIO_CATAPULT, RATIO_TOP]``: a pair that does not converge at the
    catapult step ends its window there (``RATIO_CATAPULT``), one that still converges at
    ``RATIO_TOP`` is reported at ``RATIO_TOP`` (censored); otherwise ``BISECTIONS`` halvings
    keep a converged ``lo`` and a failed ``hi`` and return their geometric mean. Whether
    GD converges need not be monotone in ``eta``, so this is a crossing, not the only one.

    Returns
    -------
    end : float; tried : list of ``(ratio, converged, peak)``, the runs of the bisection.
    """
    if not converged_at_catapult:
        return RATIO_CATAPULT, []
    ok, peak = converges(X, y, W0, a, ratio=RATIO_TOP, lam_max0=lam_max0, steps=steps)
    tried = [(RATIO_TOP, ok, peak)]
    if ok:
        return RATIO_TOP, tried
    lo, hi = RATIO_CATAPULT, RATIO_TOP
    for _ in range(BISECTIONS):
        mid = float(np.sqrt(lo * hi))
        ok, peak = converges(X, y, W0, a, ratio=mid, lam_max0=lam_max0, steps=steps)
        tried.append((mid, ok, peak))
        lo, hi = (mid, hi) if ok else (lo, mid)
    return float(np.sqrt(lo * hi)), tried


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """A catapult run, a stable run, the linearised model and the window's end, for every pair."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, m, steps = cfg["n"], cfg["d"], cfg["m"], cfg["steps"]
    n_pairs = cfg["sets"] * cfg["inits"]

    rows = []  # one dict per (data set, init) pair
    for s, rng in enumerate(np.random.default_rng(seed).spawn(cfg["sets"])):
        # %% Set-up: one data set, its inits, lambda_max(H(0)) of each
        X = data.unit_sphere(n, d, rng=rng)
        y = data.gaussian_labels(n, rng=rng)
        for j in range(cfg["inits"]):
            progress(len(rows), n_pairs, f"data set {s}, init {j}")
            W0, a = net.init_net(d, m, rng=rng)
            H0 = kernels.gram_h(X, W0)
            lam_max0 = float(np.linalg.eigvalsh(H0)[-1])
            eta = RATIO_CATAPULT / lam_max0
            watched = not rows  # the first pair's kernel is tracked at every step (figure)

            # %% Train: the catapult run and the stable run
            loss_c, lam_c, _ = train_tracking_kernel(
                X, y, W0, a, eta=eta, steps=steps, track=watched
            )
            loss_s, lam_s, _ = train_tracking_kernel(
                X, y, W0, a, eta=RATIO_STABLE / lam_max0, steps=steps, track=watched
            )
            ratio_c, ratio_s = loss_c / loss_c[0], loss_s / loss_s[0]
            done = loss_c.size == steps + 1 and bool(ratio_c[-1] < CONVERGED)

            # %% The linearised model at the catapult step, and the window's end
            r0 = net.predict(X, W0, a) - y
            lin = linearised_log10_loss_ratio(H0, r0, eta=eta, steps=steps)
            end, tried = window_end(
                X, y, W0, a, lam_max0=lam_max0, steps=steps, converged_at_catapult=done
            )
            rows.append(
                {
                    "spike": float(ratio_c.max()) if np.all(np.isfinite(ratio_c)) else np.inf,
                    "spike_step": int(np.argmax(ratio_c)),
                    "converged": done,
                    "final": float(ratio_c[-1]) if loss_c.size == steps + 1 else np.inf,
                    "edge": float(lam_c[-1] * eta / 2.0),
                    "shrink": float(lam_c[-1] / lam_c[0]),
                    "stable_spike": float(ratio_s.max()),
                    "stable_after_start": float(ratio_s[1:].max()),
                    "stable_final": float(ratio_s[-1]),
                    "stable_shrink": float(lam_s[-1] / lam_s[0]),
                    "lin": float(lin[-1]),
                    "end": end,
                    "tried": tried,
                    "series": (ratio_c, ratio_s, lin, lam_c * eta, lam_s * RATIO_STABLE / lam_max0)
                    if watched
                    else None,
                }
            )
    progress(n_pairs, n_pairs, "done")

    # %% Measure: medians, extremes and fractions over the pairs
    def col(key):  # (n_pairs,)
        return np.array([row[key] for row in rows], dtype=float)

    converged = col("converged").astype(bool)
    catapulted = converged & (col("spike") > SPIKE)
    ends = col("end")
    ratio_c, ratio_s, lin, eta_lam_c, eta_lam_s = rows[0]["series"]
    nan = float("nan")
    return {
        "eta_lambda_max_H0": RATIO_CATAPULT,
        "pairs": n_pairs,
        # the catapult step: spike, convergence (a probability over the pairs), the kernel
        "spike_ratio": float(np.median(col("spike"))),
        "log10_spike_ratio": float(np.log10(np.median(col("spike")))),
        "spike_ratio_min": float(np.min(col("spike"))),
        "catapult_converged_fraction": float(np.mean(converged)),
        "catapulted_fraction": float(np.mean(catapulted)),
        "final_loss_ratio_median": float(np.median(col("final"))),
        # the third-best pair: above -6 when fewer than 3 of the 10 (quick) pairs converge; a loss
        # that reaches exactly 0 is floored at the smallest normal float64 (log10 = -307.65)
        "log10_final_loss_ratio_third": float(
            np.log10(max(np.sort(col("final"))[2], np.finfo(np.float64).tiny))
        ),
        "kernel_final_over_2_eta": float(np.max(col("edge")[converged]))
        if converged.any()
        else nan,
        "kernel_shrink": float(np.median(col("shrink")[converged])) if converged.any() else nan,
        "kernel_shrink_max": float(np.max(col("shrink")[converged])) if converged.any() else nan,
        "lin_log10_loss_ratio": float(np.min(col("lin"))),
        # the stable step
        "stable_spike_ratio": float(np.max(col("stable_spike"))),
        # max_{k >= 1} L(k) / L(0): below 1 unless the stable run rises above its start
        "stable_loss_max_after_start": float(np.max(col("stable_after_start"))),
        "stable_final_loss_ratio": float(np.max(col("stable_final"))),
        "stable_kernel_shrink": float(np.min(col("stable_shrink"))),
        # the window's end, by bisection per pair
        "window_end_median": float(np.median(ends)),
        "window_end_fraction_above_4": float(np.mean(ends > 4.0)),
        "window_end_fraction_below_top": float(np.mean(ends < RATIO_TOP)),
        # series: the first pair's runs, and every pair's bisection
        "step": np.arange(ratio_c.size),
        "loss_ratio_catapult": ratio_c,
        "loss_ratio_stable": ratio_s,
        "lin_log10_loss_ratio_series": lin,
        "eta_lam_catapult": eta_lam_c,
        "eta_lam_stable": eta_lam_s,
        "ratio_stable": RATIO_STABLE,
        "window_ends": ends,
        "converged_at_catapult": converged,
        "spikes": col("spike"),
        "tried": [np.array(row["tried"], dtype=float).reshape(-1, 3) for row in rows],
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
    ends = np.asarray(result["window_ends"], dtype=float)
    for i, tried in enumerate(result["tried"]):
        tried = np.asarray(tried, dtype=float).reshape(-1, 3)  # (runs, 3): ratio, converged, peak
        ok = tried[:, 1] > 0
        ax.plot(tried[ok, 0], np.full(ok.sum(), i), "o", color="C0", ms=3)
        ax.plot(tried[~ok, 0], np.full((~ok).sum(), i), "x", color="C3", ms=4)
        done = bool(result["converged_at_catapult"][i])
        ax.plot([RATIO_CATAPULT], [i], "o" if done else "x", color="C0" if done else "C3", ms=3)
        ax.plot([ends[i]], [i], "|", color="k", ms=9)
    ax.axvline(4.0, color="C2", ls="--", lw=0.8, label="4: end for a linear net")
    ax.axvline(
        result["window_end_median"],
        color="k",
        lw=0.8,
        label=f"median end {result['window_end_median']:.2f}",
    )
    ax.set_xscale("log")
    ax.set_xticks([2, 3, 4, 6, 8, 12], ["2", "3", "4", "6", "8", "12"])
    ax.set_xticks([], minor=True)
    ax.set(
        xlabel=r"$\eta\,\lambda_{max}(H(0))$",
        ylabel="(data set, init) pair",
        title="(c) window's end: o converged, x not",
        xlim=(2.5, 14),
    )
    ax.legend(fontsize=7, loc="lower right")
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
