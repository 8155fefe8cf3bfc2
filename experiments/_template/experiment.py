"""TEMPLATE_NAME: <one line: the phenomenon this experiment shows>.

<Two short paragraphs: what is computed and why it answers the question in
README.md. Name the paper and section of the claim.>

This template is a complete, checked experiment: GD on a wide two-layer ReLU
net contracts the loss at least as fast as Du et al.'s bound
``(1 - eta lam0 / 2)^k`` (ICLR 2019, Thm 4.1). Replace the body with your own.
"""

from __future__ import annotations

import numpy as np

from shared import data, kernels, net
from shared.plotting import subplots

CONFIG = {
    "quick": {"n": 20, "d": 10, "m": 2000, "steps": 60},  # CI: seconds
    "full": {"n": 100, "d": 50, "m": 20000, "steps": 200},  # paper scale
}


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Return scalars (checked in expected.toml) and series (for the figure)."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, m, steps = cfg["n"], cfg["d"], cfg["m"], cfg["steps"]
    rng = np.random.default_rng(seed)

    # %% Set-up: data, the limit kernel H_inf, the step eta = 1 / lambda_max
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    y = data.gaussian_labels(n, rng=rng)  # (n,)
    lam = np.linalg.eigvalsh(kernels.h_inf(X))  # (n,) ascending
    lam0, lam_max = lam[0], lam[-1]
    eta = 1.0 / lam_max
    W0, a0 = net.init_net(d, m, rng=rng)  # (m, d), (m,)

    # %% Train: full-batch GD on W
    res = net.train(X, y, W0, a0, eta=eta, steps=steps, progress=progress)

    # %% Measure: the loss ratio against the bound of Theorem 4.1
    k = np.arange(steps + 1)
    ratio = res.loss / res.loss[0]
    bound = (1.0 - eta * lam0 / 2.0) ** k
    return {
        "lam0": lam0,
        "final_loss_ratio": ratio[-1],
        # k >= 1: at k = 0 both sides are 1 by definition
        "max_ratio_over_bound": float(np.max(ratio[1:] / bound[1:])),
        "step": k,
        "loss_ratio": ratio,
        "bound": bound,
    }


def plot(result: dict):
    fig, ax = subplots()
    ax.semilogy(result["step"], result["loss_ratio"], label="GD, measured")
    ax.semilogy(result["step"], result["bound"], "--", label=r"bound $(1-\eta\lambda_0/2)^k$")
    ax.set(xlabel="step k", ylabel="L(k) / L(0)", title="TEMPLATE_NAME")
    ax.legend()
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
