"""failure_modes: divergence, vanishing gradients and oscillation, each diagnosed by a number.

Three ways gradient descent fails, produced on purpose:

(a) Divergence. On the two-layer ReLU net of Du et al. (ICLR 2019, Eq. (1); first
    layer ``W`` trained) the residual evolves as ``r(k+1) = (I - eta H(0)) r(k)``
    exactly while no activation pattern flips (the net is linear in ``W`` between
    flips), so above ``eta = 2 / lambda_max(H(0))`` the top mode grows by
    ``|1 - eta lambda_max|`` per step and the loss explodes. Clipping the gradient
    norm to ``c`` (``minimize(clip=c)``) caps every move at ``eta c``: the loss no
    longer explodes, but with a constant step the effective step
    ``eta min(1, c / ||grad||)`` locks at ``2 / lambda_max(H)`` and the loss parks on
    a plateau ``L* = (eta c lambda_max / 2)^2 / (2 lambda_max)``; clipping plus a
    decaying schedule converges.
(b) Vanishing gradients. In a deep sigmoid (or small-weight tanh) chain
    ``h_l = phi(W_l h_{l-1})`` the backpropagated signal
    ``delta_l = phi'(z_l) * W_{l+1}^T delta_{l+1}`` shrinks by about
    ``sigma_w rms(phi'(z_l))`` per layer (``W_l`` entries ``N(0, sigma_w^2 / N)``);
    the fitted per-layer factor is compared with that product of derivative factors.
(c) Oscillation. For ``1 / lambda_max < eta < 2 / lambda_max`` the top-mode
    component of the residual is multiplied by ``1 - eta lambda_max in (-1, 0)``:
    its sign flips at every step while the loss still converges.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from shared import data, kernels, net, optim
from shared.plotting import subplots

# inits: inits (same data) whose top-mode factors are measured over the first steps; clip_inits:
# how many of them also run the clipped constant step; chains: random chains per activation.
# Checked factors and clipped locks are medians over those repetitions.
CONFIG = {
    "quick": {
        "n": 40,
        "d": 10,
        "m": 2000,
        "steps": 600,
        "N": 64,
        "depth": 30,
        "inits": 8,
        "clip_inits": 5,
        "chains": 8,
    },
    "full": {
        "n": 100,
        "d": 20,
        "m": 4000,
        "steps": 1500,
        "N": 256,
        "depth": 100,
        "inits": 3,
        "clip_inits": 1,
        "chains": 3,
    },
}
P_DIVERGE = 2.5  # eta = P_DIVERGE * 2 / lambda_max(H(0)) in part (a)
CLIP_FRACTION = 0.01  # clip threshold as a fraction of ||grad L(W0)||
P_OSC, P_MONO = 1.5, 0.5  # eta * lambda_max(H(0)) in part (c): oscillating / monotone


# --------------------------------------------------------------------------- shared pieces


def _top_mode_components(X, y, a, W0, v1, *, eta, steps):
    """``v1 . (u(k) - y)`` for ``k = 0..steps`` of plain GD at ``eta`` (steps+1,)."""
    f, g = net.objective(X, y, a)
    res = optim.minimize(
        f, g, W0.ravel(), optimizer=optim.GD(), lr=eta, steps=steps, keep_path=True
    )
    return np.array([v1 @ (net.predict(X, w.reshape(W0.shape), a) - y) for w in res.path])


# --------------------------------------------------------------------------- (a) divergence
def _top_mode_factor(X, y, W0, a0, *, eta, steps):
    """Top eigenvector ``v1`` of ``H(W0)`` and ``v1.(u(k) - y)`` for ``k = 0..steps`` at ``eta``
    (in units of ``1 / lambda_max``)."""
    lam, V = np.linalg.eigh(kernels.gram_h(X, W0))  # ascending, V (n, n)
    c = _top_mode_components(X, y, a0, W0, V[:, -1], eta=eta / lam[-1], steps=steps)
    return c, float(lam[-1])


def _clipped(X, y, W0, a0, *, eta, clip, steps):
    """Clipped GD at a constant ``eta``: the run, its effective step over the edge
    ``2 / lambda_max(H(W_K))`` and its plateau over ``(eta c lambda_max / 2)^2 / (2 lambda_max)``,
    each the median over the last tenth of the run."""
    f, g = net.objective(X, y, a0)
    res = optim.minimize(f, g, W0.ravel(), optimizer=optim.GD(), lr=eta, steps=steps, clip=clip)
    lam_end = float(np.linalg.eigvalsh(kernels.gram_h(X, res.x.reshape(W0.shape)))[-1])
    eff = eta * np.minimum(1.0, clip / res.grad_norm[:-1])  # (steps,) effective step
    plateau_pred = (eta * clip * lam_end / 2.0) ** 2 / (2.0 * lam_end)
    q = max(1, steps // 10)
    return res, {
        "eff_over_edge": float(np.median(eff[-q:]) * lam_end / 2.0),
        "plateau_over_pred": float(np.median(res.f[-q:]) / plateau_pred),
        "plateau_pred": plateau_pred,
        "lam_end": lam_end,
        "eff": eff,
    }


def divergence(X, y, inits, *, steps: int, n_lin: int, clip_inits: int) -> dict:
    """GD at ``eta = P_DIVERGE * 2 / lambda_max(H(0))``: plain, clipped, clipped + cosine.

    ``inits`` is a list of ``(W0, a0)`` on the same data. The first is the one drawn in the
    figure; the plain and the decayed runs start from it. The top-mode growth over the first
    ``n_lin`` steps and the loss's rise over the first ten plain steps are measured from every
    init, the clipped and decayed runs from the first ``clip_inits``: their medians are the
    checked numbers.
    """
    W0, a0 = inits[0]
    lam, V = np.linalg.eigh(kernels.gram_h(X, W0))  # ascending, V (n, n)
    lam_max, v1 = float(lam[-1]), V[:, -1]
    eta = P_DIVERGE * 2.0 / lam_max
    f, g = net.objective(X, y, a0)
    w0 = W0.ravel()

    plain = optim.minimize(f, g, w0, optimizer=optim.GD(), lr=eta, steps=steps)
    c = _top_mode_components(X, y, a0, W0, v1, eta=eta, steps=n_lin)  # (n_lin + 1,)
    growths, rises = [], []
    for j, (Wj, aj) in enumerate(inits):
        cj, lam_j = (
            (c, lam_max)
            if j == 0
            else _top_mode_factor(X, y, Wj, aj, eta=2 * P_DIVERGE, steps=n_lin)
        )
        growths.append(float(np.exp(np.mean(np.log(np.abs(cj[1:] / cj[:-1]))))))
        # the rise of the loss over the first ten plain steps from this init
        fj, gj = net.objective(X, y, aj)
        first = optim.minimize(
            fj, gj, Wj.ravel(), optimizer=optim.GD(), lr=P_DIVERGE * 2.0 / lam_j, steps=10
        )
        with np.errstate(over="ignore", invalid="ignore"):
            rises.append(float(np.log10(np.max(first.f[1:] / first.f[0]))))
    pred = abs(1.0 - 2 * P_DIVERGE)  # |1 - eta lambda_max|
    locks, gains = [], []
    for j, (Wj, aj) in enumerate(inits[:clip_inits]):
        eta_j = P_DIVERGE * 2.0 / np.linalg.eigvalsh(kernels.gram_h(X, Wj))[-1]
        clip_j = CLIP_FRACTION * float(np.linalg.norm(net.gradients(X, y, Wj, aj)[1]))
        run_j, lock = _clipped(X, y, Wj, aj, eta=eta_j, clip=clip_j, steps=steps)
        fj, gj = net.objective(X, y, aj)
        decayed_j = optim.minimize(
            fj,
            gj,
            Wj.ravel(),
            optimizer=optim.GD(),
            lr=optim.cosine(eta_j, total=steps),
            steps=steps,
            clip=clip_j,
        )
        if j == 0:
            clipped, lock0, decayed = run_j, lock, decayed_j
        locks.append(lock)
        gains.append(float(np.log10(decayed_j.f[-1] / run_j.f[-1])))
    L0 = plain.f[0]
    return {
        "a_eta_times_lam_max": eta * lam_max,
        "a_growth_measured": growths[0],
        "a_growth_pred": pred,
        "a_growth_ratio": float(np.median(growths)) / pred,
        "a_plain_diverged": bool(plain.diverged),
        "a_plain_steps_to_overflow": len(plain.f) - 1,
        "a_plain_log10_rise_10": float(np.median(rises)),
        "a_plain_log10_rise_10_first": rises[0],
        "a_clipped_max_ratio": float(np.max(clipped.f[1:]) / L0),
        "a_clipped_log10_max": float(np.log10(np.max(clipped.f[1:]) / L0)),
        "a_clipped_final_ratio": float(clipped.f[-1] / L0),
        "a_clipped_plateau_over_pred": float(np.median([q["plateau_over_pred"] for q in locks])),
        "a_plateau_pred_ratio": lock0["plateau_pred"] / L0,
        "a_clipped_eff_step_over_edge": float(np.median([q["eff_over_edge"] for q in locks])),
        "a_clipped_sharpness_change": lock0["lam_end"] / lam_max,
        "a_decayed_final_ratio": float(decayed.f[-1] / L0),
        "a_log10_decayed_over_clipped": float(np.median(gains)),
        "a_loss_plain": plain.f / L0,
        "a_loss_clipped": clipped.f / L0,
        "a_loss_decayed": decayed.f / L0,
        "a_eff_step_clipped": lock0["eff"] * lam_max / 2.0,
        "a_top_mode": c,
    }


# --------------------------------------------------------------------------- (b) vanishing
def deep_chain_gradients(x, y, Ws, phi: str):
    """Forward and backward pass of ``h_l = phi(W_l h_{l-1})``, loss ``1/2 ||h_D - y||^2``.

    Parameters
    ----------
    x, y : (N,) ndarrays, input and target; Ws : list of D (N, N) ndarrays;
    phi : ``"sigmoid"`` or ``"tanh"``.

    Returns
    -------
    delta_norms : (D,) ndarray, ``||dL/dz_l||`` for ``l = 1..D``
    grad_norms : (D,) ndarray, ``||dL/dW_l||_F = ||dL/dz_l|| ||h_{l-1}||``
    rms_dphi : (D,) ndarray, ``rms(phi'(z_l))``; times ``sigma_w`` it is the mean-field
        factor by which the backward pass rescales ``dL/dz`` at layer ``l``.
    """
    act = expit if phi == "sigmoid" else np.tanh
    hs, zs = [x], []
    for W in Ws:
        zs.append(W @ hs[-1])  # (N,)
        hs.append(act(zs[-1]))
    dphi = [(act(z) * (1 - act(z))) if phi == "sigmoid" else 1 - np.tanh(z) ** 2 for z in zs]
    delta = (hs[-1] - y) * dphi[-1]  # (N,), dL/dz_D
    deltas = [delta]
    for W, dp in zip(Ws[:0:-1], dphi[-2::-1], strict=True):
        delta = dp * (W.T @ delta)  # chain rule through z_{l+1} = W_{l+1} h_l, h_l = phi(z_l)
        deltas.append(delta)
    deltas = deltas[::-1]  # deltas[l] = dL/dz_{l+1}, l = 0..D-1
    delta_norms = np.array([np.linalg.norm(dl) for dl in deltas])
    grad_norms = delta_norms * np.array([np.linalg.norm(h) for h in hs[:-1]])
    rms_dphi = np.array([np.sqrt(np.mean(dp**2)) for dp in dphi])
    return delta_norms, grad_norms, rms_dphi


def vanishing(rng, *, N: int, depth: int, phi: str, sigma_w: float) -> dict:
    """A random chain of ``depth`` layers of width ``N``; fitted against predicted factor."""
    Ws = [rng.standard_normal((N, N)) * (sigma_w / np.sqrt(N)) for _ in range(depth)]
    x = rng.standard_normal(N)  # (N,), ||x||^2 ~ N
    y = rng.standard_normal(N)
    delta_norms, grad_norms, rms_dphi = deep_chain_gradients(x, y, Ws, phi)
    skip = depth // 5  # leave out the top layers, where activations settle to their fixed point
    layers = np.arange(1, depth + 1)
    fit = slice(0, depth - skip)
    slope, _ = np.polyfit(layers[fit], np.log(delta_norms[fit]), 1)
    measured = float(np.exp(-slope))  # factor per layer going down
    predicted = float(np.exp(np.mean(np.log(sigma_w * rms_dphi[fit]))))
    return {
        "factor_measured": measured,
        "factor_pred": predicted,
        "factor_ratio": measured / predicted,
        "log10_first_over_last": float(np.log10(grad_norms[0] / grad_norms[-1])),
        "delta_norms": delta_norms,
        "grad_norms": grad_norms,
    }


def vanishing_chains(rng, *, chains: int, **kw) -> dict:
    """:func:`vanishing` on ``chains`` independent chains: the first one's curves and numbers,
    with the median of the measured-over-predicted factor over all of them."""
    runs = [vanishing(rng, **kw) for _ in range(chains)]
    return runs[0] | {"factor_ratio": float(np.median([r["factor_ratio"] for r in runs]))}


# --------------------------------------------------------------------------- (c) oscillation
def oscillation(X, y, inits, *, steps: int, n_window: int) -> dict:
    """GD at ``eta lambda_max(H(0)) = P_OSC`` and ``P_MONO``: sign flips of the top mode.

    The full runs start from the first of ``inits``; the top-mode factor over the first three
    steps is measured from every init, and its median is the checked number.
    """
    W0, a0 = inits[0]
    lam_max = float(np.linalg.eigvalsh(kernels.gram_h(X, W0))[-1])
    f, g = net.objective(X, y, a0)

    def at(p: float) -> dict:
        res = optim.minimize(f, g, W0.ravel(), optimizer=optim.GD(), lr=p / lam_max, steps=steps)
        factors, flips, tops = [], [], []
        for Wj, aj in inits:
            cj = _top_mode_factor(X, y, Wj, aj, eta=p, steps=n_window)[0]  # (n_window + 1,)
            factors.append(float(np.median((cj[1:] / cj[:-1])[:3])))
            flips.append(float(np.mean(np.sign(cj[1:]) != np.sign(cj[:-1]))))
            tops.append(cj)
        return {
            "flip_fraction": flips[0],
            "flip_fraction_median": float(np.median(flips)),
            "factor_measured": factors[0],
            "factor_pred": 1.0 - p,
            "factor_ratio": float(np.median(factors)) / (1.0 - p),
            "final_ratio": float(res.f[-1] / res.f[0]),
            "top_mode": tops[0],
            "loss": res.f / res.f[0],
        }

    osc, mono = at(P_OSC), at(P_MONO)
    return {
        "c_osc_flip_fraction": osc["flip_fraction"],
        "c_osc_flip_fraction_median": osc["flip_fraction_median"],
        "c_osc_factor_measured": osc["factor_measured"],
        "c_osc_factor_pred": osc["factor_pred"],
        "c_osc_factor_ratio": osc["factor_ratio"],
        "c_osc_final_ratio": osc["final_ratio"],
        "c_osc_top_mode": osc["top_mode"],
        "c_osc_loss": osc["loss"],
        "c_mono_flip_fraction": mono["flip_fraction"],
        "c_mono_flip_fraction_median": mono["flip_fraction_median"],
        "c_mono_factor_measured": mono["factor_measured"],
        "c_mono_factor_pred": mono["factor_pred"],
        "c_mono_factor_ratio": mono["factor_ratio"],
        "c_mono_final_ratio": mono["final_ratio"],
        "c_osc_over_mono_decades": float(
            np.log10(osc["final_ratio"]) / np.log10(mono["final_ratio"])
        ),
        "c_mono_top_mode": mono["top_mode"],
        "c_mono_loss": mono["loss"],
    }


# --------------------------------------------------------------------------- experiment
def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """The three failure modes on one data set (a, c) and on random deep chains (b)."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, m, steps = cfg["n"], cfg["d"], cfg["m"], cfg["steps"]
    N, depth = cfg["N"], cfg["depth"]  # width and depth of the chains of (b)
    rng = np.random.default_rng(seed)

    # %% Set-up: data and one init for (a) and (c); its own stream for the chains of (b)
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    y = data.gaussian_labels(n, rng=rng)  # (n,)
    W0, a0 = net.init_net(d, m, rng=rng)  # (m, d), (m,)
    rng_b, rng_i = rng.spawn(2)
    inits = [(W0, a0)] + [net.init_net(d, m, rng=rng_i) for _ in range(cfg["inits"] - 1)]

    # %% (a) Divergence above 2 / lambda_max, and what clipping does to it
    diverged = divergence(X, y, inits, steps=steps, n_lin=2, clip_inits=cfg["clip_inits"])
    progress(1, 3, "divergence and clipping")

    # %% (b) Vanishing gradients in deep sigmoid and small-weight tanh chains
    chain = {"N": N, "depth": depth, "chains": cfg["chains"]}
    sig = vanishing_chains(rng_b, phi="sigmoid", sigma_w=1.0, **chain)
    tanh = vanishing_chains(rng_b, phi="tanh", sigma_w=0.5, **chain)
    progress(2, 3, "vanishing gradients")

    # %% (c) Oscillation of the top mode for 1 < eta lambda_max < 2
    oscillated = oscillation(X, y, inits, steps=steps // 2, n_window=8)
    progress(3, 3, "oscillation")

    return {
        "n": n,
        "d": d,
        "m": m,
        "N": N,
        "depth": depth,
        **diverged,
        "b_sigmoid_factor_measured": sig["factor_measured"],
        "b_sigmoid_factor_pred": sig["factor_pred"],
        "b_sigmoid_factor_ratio": sig["factor_ratio"],
        "b_sigmoid_log10_first_over_last": sig["log10_first_over_last"],
        "b_sigmoid_delta_norms": sig["delta_norms"],
        "b_sigmoid_grad_norms": sig["grad_norms"],
        "b_tanh_small_factor_measured": tanh["factor_measured"],
        "b_tanh_small_factor_pred": tanh["factor_pred"],
        "b_tanh_small_factor_ratio": tanh["factor_ratio"],
        "b_tanh_small_log10_first_over_last": tanh["log10_first_over_last"],
        "b_tanh_small_delta_norms": tanh["delta_norms"],
        "b_tanh_small_grad_norms": tanh["grad_norms"],
        **oscillated,
    }


def plot(result: dict):
    """One panel per diagnosis: loss and effective step (a), per-layer signal (b), top mode (c)."""
    fig, axes = subplots(2, 2, width=4.6, height=3.4)
    ax = axes[0, 0]
    for key, lab in (
        ("a_loss_plain", "constant, no clipping"),
        ("a_loss_clipped", "constant, clipped"),
        ("a_loss_decayed", "cosine, clipped"),
    ):
        L = np.asarray(result[key], dtype=float)
        shown = np.flatnonzero(L < 1e200)  # beyond, the log axis itself overflows
        ax.semilogy(shown, L[shown], label=lab)
    ax.axhline(
        result["a_plateau_pred_ratio"],
        color="k",
        ls=":",
        lw=0.8,
        label=r"predicted plateau $(\eta c \lambda_{max}/2)^2 / (2\lambda_{max})$",
    )
    ax.set_ylim(1e-30, 1e15)  # the unclipped run leaves the axis upwards
    ax.set(
        xlabel="step k",
        ylabel="L(k) / L(0)",
        title=rf"(a) divergence at $\eta\lambda_{{max}}(H(0))$"
        rf" = {result['a_eta_times_lam_max']:.1f}",
    )
    ax.legend()

    ax = axes[0, 1]
    ax.plot(
        result["a_eff_step_clipped"], color="C1", label=r"clipped: $\eta\,\min(1, c/\|\nabla L\|)$"
    )
    ax.axhline(1.0, color="0.4", ls=":", lw=0.8, label=r"edge $2/\lambda_{max}(H(0))$")
    ax.set(
        xlabel="step k",
        ylabel=r"effective step / $(2/\lambda_{max}(H(0)))$",
        title="(a) clipped: effective step locks at the edge",
    )
    ax.legend()

    ax = axes[1, 0]
    depth = result["depth"]
    layers = np.arange(1, depth + 1)
    for key, lab in (
        ("sigmoid", r"sigmoid, $\sigma_w = 1$"),
        ("tanh_small", r"tanh, $\sigma_w = 0.5$"),
    ):
        dn = result[f"b_{key}_delta_norms"]
        ax.semilogy(
            layers,
            dn / dn[-1],
            label=f"{lab}: measured {result[f'b_{key}_factor_measured']:.3f}/layer",
        )
        ax.semilogy(
            layers, result[f"b_{key}_factor_pred"] ** (depth - layers), ":", color="k", lw=0.8
        )
    ax.set(
        xlabel="layer l",
        ylabel=r"$\|\partial L/\partial z_l\| / \|\partial L/\partial z_D\|$",
        title="(b) vanishing gradients (dotted: predicted factor)",
    )
    ax.legend()

    ax = axes[1, 1]
    for key, lab in (
        ("osc", rf"$\eta\lambda_{{max}}$ = {P_OSC}"),
        ("mono", rf"$\eta\lambda_{{max}}$ = {P_MONO}"),
    ):
        cc = np.asarray(result[f"c_{key}_top_mode"])
        pred = result[f"c_{key}_factor_pred"] ** np.arange(len(cc))
        (line,) = ax.plot(
            cc / cc[0],
            "o-",
            ms=3,
            label=f"{lab}: flips {result[f'c_{key}_flip_fraction']:.0%} of steps",
        )
        ax.plot(pred, ":", color=line.get_color(), lw=0.9)
    ax.axhline(0.0, color="k", lw=0.7)
    ax.set(
        xlabel="step k",
        ylabel=r"$v_1 \cdot (u(k) - y)$ / its start",
        title=r"(c) top-mode residual (dotted: $(1 - \eta\lambda_{max})^k$)",
    )
    ax.legend()
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
