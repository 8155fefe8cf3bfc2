"""smooth_activation: with tanh the kernel drifts like 1/m; with ReLU, pattern flips make it slower.

The two-layer net ``u = (1/sqrt m) sum_r a_r sigma(w_r . x)`` is trained on its first layer
(Du et al.'s setting) by full-batch GD to convergence, at a sweep of widths and from the same
inits, once with ``sigma = tanh`` and once with ``sigma = relu``. Two finite-width corrections are
measured at the end: the relative kernel drift ``||H(K) - H(0)||_F / ||H(0)||_F`` and the relative
linearisation error ``||f(W(K)) - f_lin(W(K))|| / ||f(W(K)) - f(W(0))||`` on test inputs, the
distance between the trained net and its first-order Taylor model at the same weights.

For a smooth activation both are ``O(1/m)``: the first-order change of ``H`` is a sum over
neurons of terms odd in ``a_r``, which cancels down to ``m^-1/2`` of its size, and the second-order
terms are ``O(1/m)`` (Dyer and Gur-Ari 2020; Huang and Yau 2020). For ReLU, ``sigma'`` jumps
where a pattern flips, an event of probability ``O(|dw_r|) = O(m^-1/2)`` per pair; the flips
cancel only in part, which leaves a slower rate. The fitted exponents tell ``1/m`` from
``m^-1/2``, and the flip counts show what the ReLU drift is made of.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, net, twolayer
from shared.plotting import subplots

CONFIG = {
    # CI: seconds
    "quick": {
        "n": 20,
        "d": 20,
        "widths": (100, 200, 400, 800, 1600, 3200),
        "inits": 5,
        "steps": 150,
        "n_test": 100,
    },
    # paper scale: n = d = 50, widths over two decades
    "full": {
        "n": 50,
        "d": 50,
        "widths": (128, 256, 512, 1024, 2048, 4096, 8192, 16384),
        "inits": 3,
        "steps": 300,
        "n_test": 500,
    },
}
ACTIVATIONS = ("tanh", "relu")


def corrections(X, y, Xt, W0, a0, *, activation: str, steps: int) -> dict:
    """Train ``W`` with ``eta = 1 / lambda_max(H(0))``; the kernel drift and linearisation error.

    ``H(W) = J J^T`` of the first layer (:func:`shared.twolayer.ntk` with ``train_a=False``);
    the drift is ``||H(K) - H(0)||_F / ||H(0)||_F``. The linearisation error is measured on
    the test inputs ``Xt (nt, d)``: ``||f(W(K)) - f_lin(W(K))|| / ||f(W(K)) - f(W(0))||`` with
    ``f_lin(W) = f(W(0)) + J(0) (W - W(0))`` (Lee et al. 2019, Sec. 2; the Jacobian-vector
    product is :func:`shared.twolayer.jvp`). For ``relu`` also the activation patterns
    ``1{w_r . x_i >= 0}`` that differ between step 0 and step ``K``: the numbers switched on
    and off, and their fraction of the ``m n`` pairs.
    """
    H0 = twolayer.ntk(X, W0, a0, activation=activation, train_a=False)  # (n, n)
    eta = 1.0 / np.linalg.eigvalsh(H0)[-1]
    res = twolayer.train(X, y, W0, a0, eta=eta, steps=steps, activation=activation)
    HK = twolayer.ntk(X, res.W, a0, activation=activation, train_a=False)
    ft0 = twolayer.predict(Xt, W0, a0, activation=activation)  # (nt,)
    df = twolayer.predict(Xt, res.W, a0, activation=activation) - ft0  # (nt,), the change
    df_lin = twolayer.jvp(Xt, W0, a0, res.W - W0, np.zeros_like(a0), activation=activation)
    out = {
        "drift": np.linalg.norm(HK - H0) / np.linalg.norm(H0),
        "lin_error": np.linalg.norm(df - df_lin) / np.linalg.norm(df),
        "loss": res.loss / res.loss[0],
    }
    if activation == "relu":
        A0, AK = X @ W0.T >= 0, X @ res.W.T >= 0  # (n, m) patterns at steps 0 and K
        out["flips_on"] = np.count_nonzero(~A0 & AK)
        out["flips_off"] = np.count_nonzero(A0 & ~AK)
        out["flip_fraction"] = (out["flips_on"] + out["flips_off"]) / A0.size
    return out


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return the checked scalars and the series of the figure."""
    cfg = CONFIG["quick" if quick else "full"]
    widths = cfg["widths"]
    rng_data, rng_net = np.random.default_rng(seed).spawn(2)

    # %% Set-up: one data set
    X = data.unit_sphere(cfg["n"], cfg["d"], rng=rng_data)  # (n, d)
    y = data.gaussian_labels(cfg["n"], rng=rng_data)  # (n,)
    Xt = data.unit_sphere(cfg["n_test"], cfg["d"], rng=rng_data)  # (nt, d), for f - f_lin

    # %% Train: `inits` inits per width, each trained once per activation
    runs = {act: [[] for _ in widths] for act in ACTIVATIONS}
    for i, m in enumerate(widths):
        progress(i, len(widths), f"m = {m}")
        for _ in range(cfg["inits"]):
            W0, a0 = net.init_net(cfg["d"], m, rng=rng_net)
            for act in ACTIVATIONS:
                runs[act][i].append(
                    corrections(X, y, Xt, W0, a0, activation=act, steps=cfg["steps"])
                )

    # %% Measure: geometric means over inits, exponents in m
    m = np.asarray(widths, dtype=float)

    def every(act, q):  # (widths, inits, ...)
        return np.array([[r[q] for r in per_m] for per_m in runs[act]])

    def typical(act, q):  # (widths,), the geometric mean over inits
        return np.exp(np.log(every(act, q)).mean(axis=1))

    med = {(act, q): typical(act, q) for act in ACTIVATIONS for q in ("drift", "lin_error")}
    med["relu", "flip_fraction"] = typical("relu", "flip_fraction")
    fits = {key: fit.power_law(m, v) for key, v in med.items()}
    tanh_drift, relu_drift = fits["tanh", "drift"][0], fits["relu", "drift"][0]
    tanh_lin, relu_lin = fits["tanh", "lin_error"][0], fits["relu", "lin_error"][0]
    on, off = every("relu", "flips_on").sum(axis=1), every("relu", "flips_off").sum(axis=1)
    return {
        "tanh_drift_exponent": tanh_drift,
        "relu_drift_exponent": relu_drift,
        "tanh_lin_error_exponent": tanh_lin,
        "relu_lin_error_exponent": relu_lin,
        "drift_exponent_gap": relu_drift - tanh_drift,
        "lin_error_exponent_gap": relu_lin - tanh_lin,
        "tanh_drift_exponent_se": fits["tanh", "drift"][1],
        "relu_drift_exponent_se": fits["relu", "drift"][1],
        "tanh_drift_widest": med["tanh", "drift"][-1],
        "relu_drift_widest": med["relu", "drift"][-1],
        "relu_flip_exponent": fits["relu", "flip_fraction"][0],
        # (off - on) / (off + on), pooled over all widths and inits
        "relu_flip_imbalance": float((off.sum() - on.sum()) / (off.sum() + on.sum())),
        "max_final_loss_ratio": max(
            float(every(act, "loss")[..., -1].max()) for act in ACTIVATIONS
        ),
        # series for the figure
        "widths": m,
        "tanh_drift": med["tanh", "drift"],
        "relu_drift": med["relu", "drift"],
        "tanh_lin_error": med["tanh", "lin_error"],
        "relu_lin_error": med["relu", "lin_error"],
        "relu_flip_fraction": med["relu", "flip_fraction"],
        "relu_net_flip_fraction": (off - on) / (len(runs["relu"][0]) * cfg["n"] * m),
        "tanh_drift_all": every("tanh", "drift"),
        "relu_drift_all": every("relu", "drift"),
        "tanh_lin_error_all": every("tanh", "lin_error"),
        "relu_lin_error_all": every("relu", "lin_error"),
        "tanh_loss_widest": runs["tanh"][-1][0]["loss"],
        "relu_loss_widest": runs["relu"][-1][0]["loss"],
    }


def plot(result: dict):
    fig, axes = subplots(2, 2, width=4.2, height=3.2)
    m = np.asarray(result["widths"])
    style = {"tanh": ("C0", "tanh"), "relu": ("C3", "ReLU")}
    for ax, q, ylabel, title in (
        (axes[0, 0], "drift", r"$\|H(K)-H(0)\|_F / \|H(0)\|_F$", "(a) kernel drift"),
        (
            axes[0, 1],
            "lin_error",
            r"$\|f(K) - f_{lin}(K)\| / \|f(K) - f(0)\|$ (test inputs)",
            "(b) linearisation error",
        ),
    ):
        for act, (c, name) in style.items():
            p = result[f"{act}_{q}_exponent"]
            each = np.asarray(result[f"{act}_{q}_all"])  # (widths, inits)
            ax.loglog(np.repeat(m, each.shape[1]), each.ravel(), ".", color=c, alpha=0.35, ms=3)
            ax.loglog(m, result[f"{act}_{q}"], "o-", color=c, label=f"{name}: $m^{{{p:.2f}}}$")
        top = max(result[f"tanh_{q}"][0], result[f"relu_{q}"][0])
        ax.loglog(m, top * (m / m[0]) ** -0.5, "k--", lw=1, label=r"$m^{-1/2}$")
        ax.loglog(m, top * (m / m[0]) ** -1.0, "k:", lw=1, label=r"$m^{-1}$")
        ax.set(xlabel="width m", ylabel=ylabel, title=title)
        ax.legend(fontsize=7)

    ax = axes[1, 0]
    flips = np.asarray(result["relu_flip_fraction"])
    net_flips = np.asarray(result["relu_net_flip_fraction"])
    p = result["relu_flip_exponent"]
    ax.loglog(
        m, flips, "o-", color="C3", label=f"patterns flipped, $(on + off)/(mn)$: $m^{{{p:.2f}}}$"
    )
    keep = net_flips > 0
    ax.loglog(
        m[keep], net_flips[keep], "s--", color="C3", mfc="none", label="net, $(off - on)/(mn)$"
    )
    ax.loglog(m, flips[0] * (m / m[0]) ** -0.5, "k--", lw=1, label=r"$m^{-1/2}$")
    ax.set(
        xlabel="width m",
        ylabel="fraction of the m n pairs",
        title=f"(c) ReLU flips, (off - on)/(off + on) = {result['relu_flip_imbalance']:.2f}",
    )
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    for act, (c, name) in style.items():
        loss = np.asarray(result[f"{act}_loss_widest"])
        ax.semilogy(np.arange(loss.size), loss, color=c, label=name)
    ax.set(
        xlabel="step k",
        ylabel="L(k) / L(0)",
        title=f"(d) GD at m = {int(m[-1])}, $\\eta = 1/\\lambda_{{max}}(H(0))$",
    )
    ax.legend()
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
