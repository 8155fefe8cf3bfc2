"""Linear convergence and width: Du et al. (ICLR 2019), Figure 1, all three panels.

Full-batch gradient descent on the two-layer ReLU net ``u = (1/sqrt(m)) sum_r a_r relu(w_r.x)``
with only ``W`` trained, on unit-sphere inputs and Gaussian labels, at several widths ``m`` and
one fixed step ``eta``. Three panels, as in the paper: (a) the loss ratio ``L(k)/L(0)``,
(b) the fraction of the ``m * n`` activation patterns that differ from initialisation,
(c) the largest per-neuron move ``max_r ||w_r(k) - w_r(0)||``.

What is checked is the theory's claims, each separately: Theorem 4.1's bound
``L(k) <= (1 - eta lam0 / 2)^k L(0)`` is met (an observation: the theorem's width and step
hypotheses are far from satisfied here); the actual slope of ``log L`` is the spectral one, what
``||(I - eta H)^k (y - u(0))||^2`` predicts (asymptotically ``2 ln(1 - eta lambda_min(H))``), with
``H = H_inf`` at the widest net, with the net's own ``H(0)`` at every width, and exactly with the
kernel ``H(K)`` it ends with, which rules out gradient flow's ``exp(-2 eta lambda k)``; all are
far steeper than the bound; the rate improves with ``m``; pattern flips and per-neuron moves
fall like ``m^(-1/2)`` (Lemma 3.2, Corollary 4.1), the flip fraction matches the Gaussian
anti-concentration prediction from the measured moves, and ``||W(K) - W(0)||_F`` is the
minimum-norm move ``sqrt(r0^T H(0)^-1 r0)`` of the linearised net at every width. Narrow nets are
cheap and noisy, so they get several inits, and the narrowest width several data sets.

GD runs on numpy (``net.train``, which picks the function-space step ``Z -= eta c K P`` with
``K = X X^T`` here, as ``n <= d``) or, with ``sandbox run linear_convergence --backend cupy``
(or ``torch``), on a GPU through the array API (``shared.backend.train``); the measurements
after training run on numpy either way. The full mode reports its time against the products
it cannot avoid, 100 x one ``(n, n) @ (n, m)`` product per width, on the progress line.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import erf

import shared.backend as array_backend
from shared import data, fit, kernels, net
from shared.plotting import subplots, width_colors

CONFIG = {
    "quick": {
        "n": 50,
        "d": 50,
        "widths": [64, 256, 1024, 4096],
        "inits": [8, 4, 2, 1],  # inits per width: the narrow nets are cheap and the noisiest
        "narrow_sets": 16,  # data sets at the narrowest width (the first is the main one)...
        "narrow_set_inits": 4,  # ... and inits on each of the others
        "steps": 150,
        "record_every": 1,
    },
    "full": {
        "n": 1000,
        "d": 1000,
        "widths": [256, 1024, 4096, 16384],
        "inits": [4, 2, 1, 1],
        "narrow_sets": 1,
        "narrow_set_inits": 1,
        "steps": 100,
        "record_every": 5,
    },
}


def predicted_flip_fraction(X: np.ndarray, W0: np.ndarray, W: np.ndarray) -> float:
    """Anti-concentration prediction of the flip fraction from the measured moves.

    For a pair ``(r, i)`` write ``z = w_r(0).x_i ~ N(0, 1)`` and ``delta = (w_r - w_r(0)).x_i``.
    The pattern flips iff ``|z| < |delta|`` with ``z`` of opposite sign to ``delta``; treating
    ``z`` as independent of ``delta`` (moves are small), ``P(flip) = erf(|delta| / sqrt 2) / 2``.
    """
    delta = np.abs(X @ (W - W0).T)  # (n, m)
    return float(np.mean(erf(delta / np.sqrt(2.0))) / 2.0)


def spectral_slope(
    H: np.ndarray, y: np.ndarray, u0: np.ndarray, *, eta: float, steps: int
) -> float:
    """Slope of ``log L`` that the kernel ``H (n, n)`` predicts, fitted in the measured window.

    ``||y - u(k)||^2 = sum_i (1 - eta lambda_i)^(2k) (v_i . (y - u(0)))^2`` (Arora et al. 2019,
    Thm 4.1, from this init's ``u(0)``) is fitted by :func:`shared.fit.log_rate` like the
    measured loss, so the modes above ``lambda_min`` that are still alive in the window count
    on both sides; as ``k`` grows the slope tends to ``2 ln(1 - eta lambda_min(H))``.
    """
    r = kernels.predicted_residuals(H, y, eta=eta, steps=steps, u0=u0)  # (steps + 1,)
    return fit.log_rate(r**2)


def trainer(backend: str):
    """``net.train``, or the same GD with its traces on the array library ``backend``."""
    if backend == "numpy":
        return net.train
    array_backend.namespace_named(backend)  # a clear error now if it is not installed

    def train(X, y, W0, a0, **kw):
        return array_backend.train(*array_backend.arrays_on(backend, X, y, W0, a0), **kw)

    return train


def product_time(n: int, widths) -> float:
    """Seconds of one ``(n, n) @ (n, m)`` float64 product, summed over ``widths`` (best of 3)."""
    K = np.ones((n, n))
    total = 0.0
    for m in widths:
        P, out = np.ones((n, m)), np.empty((n, m))
        best = np.inf
        for _ in range(3):
            t = time.perf_counter()
            np.matmul(K, P, out=out)
            best = min(best, time.perf_counter() - t)
        total += best
    return total


def train_and_measure(
    X, y, H_inf, W0, a0, *, eta: float, steps: int, train=net.train, **train_kw
) -> dict:
    """One GD run from ``W0 (m, d), a0 (m,)`` and what it is checked against.

    The slope of ``log L`` over the spectral slopes of ``H_inf``, ``H(0)`` and the kernel
    ``H(K)`` at the last step (:func:`spectral_slope`); the last step's flip fraction and its
    anti-concentration prediction, the RMS, max and Frobenius moves, and the Frobenius move
    of the minimum-norm fit of the linearised net, ``sqrt(r0^T H(0)^-1 r0)``,
    ``r0 = y - u(0)``: gradient descent from ``W(0)`` on ``u(0) + J (W - W(0))``, with
    ``J J^T = H(0)``, ends at the smallest ``W - W(0)`` that fits (Arora et al. 2019, Sec. 5
    make the same point with ``H_inf`` and ``u(0) = 0``).
    """
    res = train(X, y, W0, a0, eta=eta, steps=steps, **train_kw)
    u0 = net.predict(X, W0, a0)  # (n,)
    r0 = y - u0  # (n,)
    H0 = kernels.gram_h(X, W0)  # (n, n)
    slope = fit.log_rate(res.loss)
    return {
        "res": res,
        "slope": slope,
        "hinf": slope / spectral_slope(H_inf, y, u0, eta=eta, steps=steps),
        "h0": slope / spectral_slope(H0, y, u0, eta=eta, steps=steps),
        "hk": slope / spectral_slope(kernels.gram_h(X, res.W), y, u0, eta=eta, steps=steps),
        "flip": res.flip_fraction[-1],
        "flip_pred": predicted_flip_fraction(X, W0, res.W),
        "rms": res.move_rms[-1],
        "max": res.move_max[-1],
        "fro_over_min_norm": res.move_fro[-1] / float(np.sqrt(r0 @ np.linalg.solve(H0, r0))),
        "r0_norm": float(np.linalg.norm(r0)),
    }


def run(
    *, quick: bool, seed: int, progress=lambda i, total, label="": None, backend: str = "numpy"
) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure).

    ``backend`` is the array library of the training (``shared.backend.BACKENDS``).
    """
    t_start = time.perf_counter()
    train = trainer(backend)
    cfg = CONFIG["quick" if quick else "full"]
    n, d, widths, steps = cfg["n"], cfg["d"], cfg["widths"], cfg["steps"]
    root = np.random.default_rng(seed)
    rng_data, *rng_nets = root.spawn(1 + len(widths))
    (rng_narrow,) = root.spawn(1)  # the other data sets at the narrowest width

    # %% Set-up: data, the limit kernel H_inf, one step eta for every width
    X = data.unit_sphere(n, d, rng=rng_data)
    y = data.gaussian_labels(n, rng=rng_data)
    H_inf = kernels.h_inf(X)  # (n, n)
    lam = np.linalg.eigvalsh(H_inf)  # (n,) ascending
    lam0, lam_max = float(lam[0]), float(lam[-1])
    eta = 1.0 / lam_max  # one step for every width, as in Figure 1
    k = np.arange(steps + 1)
    bound = (1.0 - eta * lam0 / 2.0) ** k  # Theorem 4.1
    spectral_slope_inf = 2.0 * np.log(1.0 - eta * lam0)

    # %% Train: GD at each width from several inits (its own stream); the first init of each
    # width draws the figure
    extra = (cfg["narrow_sets"] - 1) * cfg["narrow_set_inits"] * widths[0]
    total = sum(m * j for m, j in zip(widths, cfg["inits"], strict=True)) + extra
    done = 0
    per_width = []  # per width: a list of the measurements of each init
    for m, n_inits, rng in zip(widths, cfg["inits"], rng_nets, strict=True):
        runs = []
        for _ in range(n_inits):

            def report(i, tot, base=done, m=m):
                progress(base + m * i // max(tot, 1), total, f"m={m}")

            W0, a0 = net.init_net(d, m, rng=rng)
            runs.append(
                train_and_measure(
                    X,
                    y,
                    H_inf,
                    W0,
                    a0,
                    eta=eta,
                    steps=steps,
                    record_every=cfg["record_every"],
                    progress=report,
                    train=train,
                )
            )
            done += m
        per_width.append(runs)

    # %% The narrowest width on more data sets: its rate relative to the kernel's prediction
    # varies mostly with the data set, and narrow nets are cheap
    narrow_sets = [per_width[0]]  # per data set: the runs of its inits
    for rng in rng_narrow.spawn(cfg["narrow_sets"] - 1):
        progress(done, total, f"m={widths[0]}, more data sets")
        X_s = data.unit_sphere(n, d, rng=rng)
        y_s = data.gaussian_labels(n, rng=rng)
        H_s = kernels.h_inf(X_s)
        eta_s = 1.0 / np.linalg.eigvalsh(H_s)[-1]
        narrow_sets.append(
            [
                train_and_measure(
                    X_s,
                    y_s,
                    H_s,
                    *net.init_net(d, widths[0], rng=rng),
                    eta=eta_s,
                    steps=steps,
                    record_every=steps,
                    train=train,
                )
                for _ in range(cfg["narrow_set_inits"])
            ]
        )
        done += cfg["narrow_set_inits"] * widths[0]

    # %% Measure: medians over the inits of each width (and over the data sets at the
    # narrowest), then the claims across widths
    def med(key, fn=None):  # (len(widths),)
        fn = fn or (lambda r: r[key])
        out = [np.median([fn(r) for r in runs]) for runs in per_width]
        out[0] = np.median([np.median([fn(r) for r in runs]) for runs in narrow_sets])
        return np.array(out)

    def med_main(key, fn=None):  # (len(widths),), the main data set only
        fn = fn or (lambda r: r[key])
        return np.array([np.median([fn(r) for r in runs]) for runs in per_width])

    m_arr = np.asarray(widths, dtype=float)
    slopes = med_main("slope")
    h0, hinf, fro_ratio = med("h0"), med("hinf"), med("fro_over_min_norm")
    flip_ratio = med_main("", lambda r: r["flip"] / r["flip_pred"])
    # Corollary 4.1: ||w_r(k) - w_r(0)|| <= R' = 4 sqrt(n) ||y - u(0)|| / (sqrt(m) lam0)
    max_over_r_prime = med_main(
        "",
        lambda r: (
            r["max"] / (4.0 * np.sqrt(n) * r["r0_norm"] / (np.sqrt(r["res"].W.shape[0]) * lam0))
        ),
    )
    bound_ratio = max(
        float(np.max(r["res"].loss[1:] / r["res"].loss[0] / bound[1:]))
        for runs in per_width
        for r in runs
    )
    first = [runs[0]["res"] for runs in per_width]  # the figure's curves
    widest = per_width[-1]
    if not quick:  # the run's time against its unavoidable products (not a checked quantity)
        ratio = (time.perf_counter() - t_start) / (steps * product_time(n, widths))
        progress(
            total,
            total,
            f"time / ({steps} x one (n, n) @ (n, m) product, summed over widths) = "
            f"{ratio:.2f} (target <= 1.5)",
        )
    return {
        "n": n,
        "d": d,
        "lam0": lam0,
        "lam_max": lam_max,
        "eta": eta,
        "bound_ratio_max": bound_ratio,
        "slope_over_spectral_widest": float(hinf[-1]),
        # what the same ratio would be if GD followed gradient flow's exp(-2 eta lam0 k)
        "flow_over_spectral": float(-2.0 * eta * lam0 / spectral_slope_inf),
        "slope_over_final_kernel_widest": float(np.median([r["hk"] for r in widest])),
        "slope_over_h0_spectral_min": float(h0.min()),
        "slope_over_h0_spectral_max": float(h0.max()),
        "slope_over_bound_widest": float(slopes[-1] / np.log(1.0 - eta * lam0 / 2.0)),
        # each width's rate relative to the H_inf prediction of its own data set
        "rate_gain_widest_over_narrowest": float(hinf[-1] / hinf[0]),
        "rate_gain_raw": float(slopes[-1] / slopes[0]),
        "flip_exponent": fit.power_law(m_arr, med_main("flip"))[0],
        "flip_over_prediction_min": float(flip_ratio.min()),
        "flip_over_prediction_max": float(flip_ratio.max()),
        "move_rms_exponent": fit.power_law(m_arr, med_main("rms"))[0],
        "move_max_exponent": fit.power_law(m_arr, med_main("max"))[0],
        "move_max_over_r_prime": float(max_over_r_prime.max()),
        "fro_over_min_norm_widest": float(fro_ratio[-1]),
        "fro_spread": float(fro_ratio.max() / fro_ratio.min()),
        # series for the figure
        "widths": widths,
        "inits": cfg["inits"],
        "step": k,
        "recorded_steps": first[-1].recorded_steps,
        "loss_ratio": [r.loss / r.loss[0] for r in first],
        "bound": bound,
        "spectral_slope": spectral_slope_inf,
        "slopes": slopes,
        "slope_over_spectral": hinf,
        "slope_over_h0_spectral": h0,
        "slope_over_final_kernel": med("hk"),
        "fro_over_min_norm": fro_ratio,
        "flip_over_prediction": flip_ratio,
        "flip_fraction": [r.flip_fraction for r in first],
        "move_max": [r.move_max for r in first],
        "move_rms": [r.move_rms for r in first],
        "move_fro": [r.move_fro for r in first],
    }


def plot(result: dict):
    fig, (ax_a, ax_b, ax_c) = subplots(1, 3, width=3.6)
    widths, colors = result["widths"], width_colors(len(result["widths"]))
    k, ks = np.asarray(result["step"]), np.asarray(result["recorded_steps"])
    curves = zip(result["loss_ratio"], result["flip_fraction"], result["move_max"], strict=True)
    for m, c, (L, f, mv) in zip(widths, colors, curves, strict=True):
        ax_a.semilogy(k, L, color=c, label=f"m = {m}")
        ax_b.plot(ks, f, color=c, label=f"m = {m}")
        ax_c.plot(ks, mv, color=c, label=f"m = {m}")
    ax_a.semilogy(k, result["bound"], "k--", lw=1, label=r"bound $(1-\eta\lambda_0/2)^k$")
    ax_a.semilogy(
        k, np.exp(result["spectral_slope"] * k), "k:", lw=1, label=r"$(1-\eta\lambda_0)^{2k}$"
    )
    ax_a.set_ylim(1e-16, 2)
    ax_a.set(xlabel="step k", ylabel="L(k) / L(0)", title="(a) loss")
    ax_b.set(xlabel="step k", ylabel="fraction of m*n patterns flipped")
    ax_b.set_title("(b) pattern changes")
    ax_c.set(xlabel="step k", ylabel=r"$\max_r \|w_r(k) - w_r(0)\|$")
    ax_c.set_title("(c) distance from init")
    ax_a.legend(loc="upper right", fontsize=7)
    ax_b.legend(loc="center right", fontsize=7)
    fig.suptitle(
        f"Du et al. Figure 1: n = {result['n']}, d = {result['d']}, "
        f"eta = {result['eta']:.3g}, lam0 = {result['lam0']:.3g}"
    )
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
