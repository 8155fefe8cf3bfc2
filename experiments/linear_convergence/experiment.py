"""Linear convergence and width: Du et al. (ICLR 2019), Figure 1, all three panels.

Full-batch gradient descent on the two-layer ReLU net ``u = (1/sqrt(m)) sum_r a_r relu(w_r.x)``
with only ``W`` trained, on unit-sphere inputs and Gaussian labels, at several widths ``m`` and
one fixed step ``eta``. Three panels, as in the paper: (a) the loss ratio ``L(k)/L(0)``,
(b) the fraction of the ``m * n`` activation patterns that differ from initialisation,
(c) the largest per-neuron move ``max_r ||w_r(k) - w_r(0)||``.

What is checked is the theory's claims, each separately: Theorem 4.1's bound
``L(k) <= (1 - eta lam0 / 2)^k L(0)`` is met (an observation: the theorem's width and step
hypotheses are far from satisfied here); the actual asymptotic slope of ``log L`` is the
spectral one, ``2 ln(1 - eta lambda_min(H))``, which tends to ``2 ln(1 - eta lam0)`` as ``m`` grows
and is far steeper than the bound; the rate improves with ``m``; pattern flips and per-neuron
moves fall like ``m^(-1/2)`` (Lemma 3.2, Corollary 4.1), the flip fraction matches the Gaussian
anti-concentration prediction from the measured moves, and ``||W(k) - W(0)||_F`` barely
depends on ``m``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from shared import data, fit, kernels, net
from shared.plotting import subplots, width_colors

CONFIG = {
    "quick": {"n": 50, "d": 50, "widths": [64, 256, 1024, 4096], "steps": 150, "record_every": 1},
    "full": {
        "n": 1000,
        "d": 1000,
        "widths": [256, 1024, 4096, 16384],
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


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, widths, steps = cfg["n"], cfg["d"], cfg["widths"], cfg["steps"]
    rng_data, *rng_nets = np.random.default_rng(seed).spawn(1 + len(widths))

    # %% Set-up: data, the limit kernel H_inf, one step eta for every width
    X = data.unit_sphere(n, d, rng=rng_data)
    y = data.gaussian_labels(n, rng=rng_data)
    lam = np.linalg.eigvalsh(kernels.h_inf(X))  # (n,) ascending
    lam0, lam_max = float(lam[0]), float(lam[-1])
    eta = 1.0 / lam_max  # one step for every width, as in Figure 1
    k = np.arange(steps + 1)
    bound = (1.0 - eta * lam0 / 2.0) ** k  # Theorem 4.1
    spectral_slope = 2.0 * np.log(1.0 - eta * lam0)

    # %% Train: GD at each width, from its own init, recording the three panels
    curves, flips, moves_max, moves_rms, fro = [], [], [], [], []
    slopes, slope_ratio_h0, flip_pred, bound_ratio, r_prime = [], [], [], [], []
    for j, (m, rng) in enumerate(zip(widths, rng_nets, strict=True)):
        W0, a0 = net.init_net(d, m, rng=rng)

        def report(i, total, j=j, m=m):
            progress(j * total + i, len(widths) * total, f"m={m}")

        res = net.train(
            X, y, W0, a0, eta=eta, steps=steps, record_every=cfg["record_every"], progress=report
        )
        ratio = res.loss / res.loss[0]
        lam_h0 = kernels.lambda_min(kernels.gram_h(X, W0))
        slope = fit.log_rate(res.loss)
        curves.append(ratio)
        flips.append(res.flip_fraction)
        moves_max.append(res.move_max)
        moves_rms.append(res.move_rms)
        fro.append(res.move_fro[-1])
        slopes.append(slope)
        slope_ratio_h0.append(slope / (2.0 * np.log(1.0 - eta * lam_h0)))
        flip_pred.append(predicted_flip_fraction(X, W0, res.W))
        bound_ratio.append(float(np.max(ratio[1:] / bound[1:])))
        # Corollary 4.1: ||w_r(k) - w_r(0)|| <= R' = 4 sqrt(n) ||y - u(0)|| / (sqrt(m) lam0)
        r_prime.append(4.0 * np.sqrt(n) * np.sqrt(2.0 * res.loss[0]) / (np.sqrt(m) * lam0))

    # %% Measure: the rates against the bound and the spectrum, flips and moves against m
    m_arr = np.asarray(widths, dtype=float)
    final_flips = np.array([f[-1] for f in flips])
    final_rms = np.array([r[-1] for r in moves_rms])
    final_max = np.array([r[-1] for r in moves_max])
    return {
        "n": n,
        "d": d,
        "lam0": lam0,
        "lam_max": lam_max,
        "eta": eta,
        "bound_ratio_max": max(bound_ratio),
        "slope_over_spectral_widest": slopes[-1] / spectral_slope,
        "slope_over_h0_spectral_min": min(slope_ratio_h0),
        "slope_over_h0_spectral_max": max(slope_ratio_h0),
        "slope_over_bound_widest": slopes[-1] / np.log(1.0 - eta * lam0 / 2.0),
        "rate_gain_widest_over_narrowest": slopes[-1] / slopes[0],
        "flip_exponent": fit.power_law(m_arr, final_flips)[0],
        "flip_over_prediction_min": float(np.min(final_flips / np.array(flip_pred))),
        "flip_over_prediction_max": float(np.max(final_flips / np.array(flip_pred))),
        "move_rms_exponent": fit.power_law(m_arr, final_rms)[0],
        "move_max_exponent": fit.power_law(m_arr, final_max)[0],
        "move_max_over_r_prime": float(np.max(final_max / np.array(r_prime))),
        "fro_spread": float(max(fro) / min(fro)),
        # series for the figure
        "widths": widths,
        "step": k,
        "recorded_steps": res.recorded_steps,
        "loss_ratio": curves,
        "bound": bound,
        "spectral_slope": spectral_slope,
        "slopes": slopes,
        "flip_fraction": flips,
        "flip_predicted": flip_pred,
        "move_max": moves_max,
        "move_rms": moves_rms,
        "move_fro": fro,
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
