"""Step-size regimes: monotone, oscillatory, divergent GD, from the eigenvalues of I - eta A.

GD on ``f = 1/2 (x - x*)^T A (x - x*)`` is the linear difference equation
``x_{k+1} - x* = (I - eta A)(x_k - x*)``: each eigen-coordinate is multiplied by
``1 - eta lambda_i`` per step. For ``eta < 1/L`` every multiplier is in ``(0, 1)`` (monotone
convergence, no sign changes); for ``1/L < eta < 2/L`` the top multiplier is in ``(-1, 0)``
(oscillatory convergence: the coordinate along the top eigenvector flips sign at every step);
for ``eta > 2/L`` it is below ``-1`` (divergence). (Nesterov, *Lectures on Convex Optimization*,
2018, Sec. 1.2.3; GD is stable iff ``eta < 2/lambda_max``.)

The two-layer ReLU net of Du, Zhai, Poczos, Singh (ICLR 2019) linearised at initialisation moves
its residual by ``u(k+1) - y = (I - eta H(0))(u(k) - y)``, the same equation with ``A = H(0)``. The
experiment checks that the regime of each ``eta`` on a grid (outside a stated margin of
``1/lambda_max`` and ``2/lambda_max``) is the predicted one: on a quadratic, on the linearised
net, and on the real ReLU net while its linearisation holds (the first steps). What the real net
does afterwards above ``2/lambda_max(H(0))`` is reported as measured: the loss spikes, the kernel
shrinks until ``eta lambda_max(H) <= 2``, and the run converges anyway (the catapult of
Lewkowycz et al. 2020), where the linearised net diverges.
"""

from __future__ import annotations

import numpy as np

from shared import data, kernels, net, optim
from shared.plotting import subplots

CONFIG = {
    "quick": {
        "quad": {"d": 50, "kappa": 20.0, "grid": np.linspace(0.05, 3.0, 60), "steps": 200},
        "net": {
            "n": 20,
            "d": 20,
            "m": 2000,
            "grid": [0.25, 0.5, 0.75, 0.85, 1.15, 1.3, 1.5, 1.7, 1.8, 2.2, 2.5, 3.0, 3.5, 4.5],
            "steps": 300,
            "lin_steps": 60,
            "early": 3,
        },
        "margin_quad": 0.02,
        "margin_net": 0.1,
    },
    "full": {
        "quad": {"d": 200, "kappa": 100.0, "grid": np.linspace(0.02, 3.0, 150), "steps": 1000},
        "net": {
            "n": 40,
            "d": 20,
            "m": 8000,
            "grid": np.concatenate(
                [
                    [0.25, 0.5, 0.75, 0.85, 1.15, 1.3, 1.5, 1.7, 1.8],
                    np.round(np.arange(2.2, 6.1, 0.4), 2),
                ]
            ),
            "steps": 500,
            "lin_steps": 60,
            "early": 3,
        },
        "margin_quad": 0.02,
        "margin_net": 0.1,
    },
}


def predicted_regime(c: float) -> str:
    """Regime of ``eta = c / lambda_max`` from the top multiplier ``1 - c``."""
    return "monotone" if c < 1.0 else "oscillatory" if c < 2.0 else "divergent"


def away_from_boundaries(c: float, margin: float) -> bool:
    """``c`` is not within a relative ``margin`` of the boundaries ``c = 1`` and ``c = 2``."""
    return abs(c - 1.0) > margin and abs(c - 2.0) > 2.0 * margin


def above_floor(top: np.ndarray, floor: float = 1e-10) -> np.ndarray:
    """``top`` up to the first entry below ``floor |top_0|``: beyond it the coordinate is rounding
    noise leaking in from the others and its sign means nothing."""
    small = np.flatnonzero(np.abs(top) < floor * abs(top[0]))
    return top[: max(int(small[0]), 2)] if small.size else top


def classify(top: np.ndarray) -> str:
    """Regime from the coordinate along the top eigenvector, ``top (k,)``: divergent if it grew,
    oscillatory if it changed sign at most steps, monotone if it never changed sign (``mixed``
    otherwise, which no prediction produces)."""
    if not np.all(np.isfinite(top)) or abs(top[-1]) > abs(top[0]):
        return "divergent"
    top = above_floor(top)
    flips = np.mean(np.sign(top[1:]) != np.sign(top[:-1]))
    return "oscillatory" if flips > 0.5 else "monotone" if flips == 0 else "mixed"


# --------------------------------------------------------------------------- quadratic
def quadratic_regimes(cfg: dict, margin: float, rng: np.random.Generator) -> dict:
    """GD on ``1/2 x^T A x`` (spectrum in ``[L/kappa, L]``, ``L = 1``) over the ``eta`` grid."""
    d, kappa, steps = cfg["d"], cfg["kappa"], cfg["steps"]
    lam = np.concatenate([[1.0 / kappa], rng.uniform(1.0 / kappa, 1.0, d - 2), [1.0]])
    A, Q, x0 = data.rotated_quadratic(lam, rng=rng)  # x0: equal weight on every eigenvector
    v_top = Q[:, -1]  # (d,)
    measured, agree, multipliers, examples = [], [], [], {}
    for c in cfg["grid"]:
        with np.errstate(over="ignore", invalid="ignore"):
            res = optim.minimize(
                lambda x: 0.5 * x @ A @ x,
                lambda x: A @ x,
                x0,
                optimizer=optim.GD(),
                lr=c,
                steps=steps,
                keep_path=True,
            )
        top = res.path @ v_top  # (steps + 1,)
        regime = classify(top)
        measured.append(regime)
        head = above_floor(top[:11])
        multipliers.append(float(np.median(head[1:] / head[:-1])))
        if away_from_boundaries(c, margin):
            agree.append(regime == predicted_regime(c))
        for want, label in ((0.6, "monotone"), (1.6, "oscillatory"), (2.1, "divergent")):
            if label not in examples and c >= want:
                examples[label] = (float(c), top[:40])
    grid = np.asarray(cfg["grid"])
    keep = np.array([away_from_boundaries(c, margin) for c in grid])
    err = np.abs(np.asarray(multipliers) - (1.0 - grid))[keep]
    return {
        "quad_grid": grid,
        "quad_regimes": measured,
        "quad_multiplier": np.asarray(multipliers),
        "quad_examples": examples,
        "quad_agreement": float(np.mean(agree)),
        "quad_n_checked": len(agree),
        "quad_multiplier_log10_err_max": float(np.log10(err.max())),
    }


# --------------------------------------------------------------------------- the net
TOL = 1e-20  # sub-critical ReLU runs stop at L(k) <= TOL L(0), eleven decades above the floor


def linear_loss_ratio(lam: np.ndarray, eta: float, steps: int) -> np.ndarray:
    """``L(k) / L(0)`` of the residual iteration ``(I - eta H)^k r(0)`` for ``k = 0..steps``
    when ``r(0)`` has equal weight on every eigenvector of ``H`` (eigenvalues ``lam (n,)``):
    ``mean_i (1 - eta lambda_i)^(2k)``, ``(steps + 1,)``."""
    k = np.arange(steps + 1)[:, None]  # (steps + 1, 1)
    with np.errstate(under="ignore"):
        return np.mean((1.0 - eta * lam[None, :]) ** (2 * k), axis=1)


def crossing(ratio: np.ndarray, tol: float) -> float:
    """First crossing of ``ratio_k / ratio_0 = tol``, interpolated in ``log`` between the step
    before and the first step at or below (``inf`` if never reached); ``ratio (k,)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(ratio / ratio[0])
    hit = np.flatnonzero(logs <= np.log(tol))
    if not hit.size:
        return np.inf
    k = int(hit[0])
    return float(k - (np.log(tol) - logs[k]) / (logs[k - 1] - logs[k]))


def linearised_objective(J0, r0, w0):
    """Loss and gradient of the net linearised at ``w0``: ``1/2 ||r0 + J0 (w - w0)||^2`` and
    ``J0^T (r0 + J0 (w - w0))``, with ``J0 (n, m d)``; one residual per distinct ``w``."""

    def fun_and_grad(w):
        r = r0 + J0 @ (w - w0)  # (n,)
        return 0.5 * float(r @ r), J0.T @ r

    return optim.cached(fun_and_grad)


DRAWS = 3  # independent data, init and labels behind the medians of the first-step claims


def draw_net(cfg: dict, rng: np.random.Generator) -> dict:
    """One draw of the net over the ``eta`` grid: the linearised net and the ReLU net's first steps.

    ``X (n, d)`` on the sphere, the init, and labels ``y = u(0) + V s`` (``V`` the eigenvectors of
    ``H(0)``, random signs ``s``): the residual ``u(0) - y = -V s`` has weight 1 on every
    eigenvector of ``H(0)``, so the top coordinate starts at ``|p_0| = 1``, never hidden by a
    small projection.

    - linearised net: GD on ``1/2 ||u0 + J0 (w - w0) - y||^2``, ``lin_steps`` steps;
    - ReLU net, first ``early`` steps: the residual along the top eigenvector ``v`` of ``H(0)``,
      ``p_k = v . (u(k) - y)``, against ``1 - eta lambda_max(H(0))``.
    """
    n, d, m, early = cfg["n"], cfg["d"], cfg["m"], cfg["early"]
    X = data.unit_sphere(n, d, rng=rng)
    W0, a = net.init_net(d, m, rng=rng)
    lam, V = np.linalg.eigh(kernels.gram_h(X, W0))  # (n,), (n, n)
    lam_max, v = float(lam[-1]), V[:, -1]
    u0 = net.predict(X, W0, a)  # (n,)
    y = u0 + V @ rng.choice([-1.0, 1.0], size=n)
    J0 = net.jacobian_W(X, W0, a)  # (n, m d)
    w0 = W0.ravel()
    f_net, g_net = net.objective(X, y, a)
    f_lin, g_lin = linearised_objective(J0, u0 - y, w0)
    rows = {k: [] for k in ("early_mult", "first_curv", "early_regime", "lin_fate", "lin_final")}
    for c in cfg["grid"]:
        eta = c / lam_max
        with np.errstate(over="ignore", invalid="ignore"):
            lin = optim.minimize(
                f_lin, g_lin, w0, optimizer=optim.GD(), lr=eta, steps=cfg["lin_steps"]
            )
            head = optim.minimize(
                f_net, g_net, w0, optimizer=optim.GD(), lr=eta, steps=early, keep_path=True
            )
        p = np.array([v @ (net.predict(X, w.reshape(W0.shape), a) - y) for w in head.path])
        rows["early_mult"].append(float(np.median(p[1:] / p[:-1])))
        rows["first_curv"].append((1.0 - p[1] / p[0]) / c)  # lambda_eff / lambda_max(H(0))
        rows["early_regime"].append(classify(p))
        rows["lin_fate"].append((not lin.diverged) and lin.f[-1] < lin.f[0])
        rows["lin_final"].append(lin.f[-1] / lin.f[0] if not lin.diverged else np.inf)
    out = {k: np.asarray(val) for k, val in rows.items()}
    out.update(X=X, W0=W0, a=a, y=y, lam=lam)
    return out


def net_regimes(cfg: dict, margin: float, rng: np.random.Generator) -> dict:
    """The ``eta`` grid (multiples of ``1/lambda_max(H(0))``) on the linearised and the ReLU net.

    Over ``DRAWS`` independent draws (:func:`draw_net`): the linearised net's fate, which should
    follow ``eta < 2/lambda_max(H(0))`` exactly, and the ReLU net's first steps; the checked
    numbers are medians over the draws. On the first draw, the ReLU net's long runs: below
    ``2/lambda_max(H(0))`` to ``L(k) <= TOL L(0)``, its steps against the linearisation's;
    above, ``steps`` steps, its fate and the final ``eta lambda_max(H(W_K))``.
    """
    steps = cfg["steps"]
    grid = np.asarray(cfg["grid"])
    keep = np.array([away_from_boundaries(c, margin) for c in grid])
    pred_fate = grid < 2.0
    draws = [draw_net(cfg, r) for r in rng.spawn(DRAWS)]
    curv_err, lin_margin = [], []
    for dr in draws:
        curv_err.append(float(np.max(np.abs(dr["first_curv"] - 1.0))))
        with np.errstate(divide="ignore"):
            lin_log = np.log10(dr["lin_final"])  # (grid,), +inf where diverged
        # signed log10 distance from "L(K) = L(0)" on the predicted side: down below 2, up above
        lin_margin.append(float(np.min(np.where(pred_fate, -lin_log, lin_log)[keep])))
    d0 = draws[0]
    X, W0, a, y, lam = d0["X"], d0["W0"], d0["a"], d0["y"], d0["lam"]
    lam_max = float(lam[-1])

    rows = {k: [] for k in ("relu_fate", "relu_final", "edge", "steps_ratio")}
    curves = []
    for c in grid:
        eta = c / lam_max
        if c < 2.0:  # sub-critical: run to TOL, and count the steps against the prediction
            k_pred = crossing(linear_loss_ratio(lam, eta, 8 * steps), TOL)
            cap = int(4 * k_pred) + 50
            relu = net.train(
                X, y, W0, a, eta=eta, steps=cap, tol=TOL, record_every=cap, on_divergence="flag"
            )
            rows["steps_ratio"].append(crossing(relu.loss, TOL) / k_pred)
        else:
            relu = net.train(
                X, y, W0, a, eta=eta, steps=steps, record_every=steps, on_divergence="flag"
            )
        final = relu.loss[-1] / relu.loss[0] if not relu.diverged else np.inf
        converged = final < 1.0
        rows["relu_fate"].append(converged)
        rows["relu_final"].append(final)
        edge = np.nan
        if converged:
            edge = eta * float(np.linalg.eigvalsh(kernels.gram_h(X, relu.W))[-1])
        rows["edge"].append(edge)
        curves.append(relu.loss / relu.loss[0])

    pred_regime = np.array([predicted_regime(c) for c in grid])
    early_regime = d0["early_regime"]
    relu_fate, lin_fate = np.array(rows["relu_fate"]), d0["lin_fate"]
    edge = np.array(rows["edge"])
    super_conv = (grid > 2.0) & relu_fate
    with np.errstate(divide="ignore"):
        relu_log = np.log10(np.asarray(rows["relu_final"]))
    return {
        "net_lam_max_h0": lam_max,
        "net_grid": grid,
        "net_early_mult": d0["early_mult"],
        "net_early_regimes": list(early_regime),
        "net_relu_fate": relu_fate,
        "net_lin_fate": lin_fate,
        "net_edge": edge,
        "net_loss_curves": curves,
        "net_lin_final_ratio": d0["lin_final"],
        "net_early_agreement": float(np.mean(early_regime[keep] == pred_regime[keep])),
        "net_first_step_curvature": d0["first_curv"],
        "net_first_step_curvature_err_draws": np.asarray(curv_err),
        "net_first_step_curvature_err": float(np.median(curv_err)),
        "lin_fate_agreement": float(np.mean(lin_fate[keep] == pred_fate[keep])),
        "lin_fate_log10_margin_draws": np.asarray(lin_margin),
        "lin_fate_log10_margin": float(np.median(lin_margin)),
        "relu_fate_agreement": float(np.mean(relu_fate[keep] == pred_fate[keep])),
        "relu_subcritical_converged_fraction": float(np.mean(relu_fate[grid < 2.0])),
        "relu_supercritical_converged_fraction": float(np.mean(relu_fate[grid > 2.0])),
        "relu_subcritical_steps_ratio": np.asarray(rows["steps_ratio"]),
        "relu_subcritical_steps_ratio_max": float(np.max(rows["steps_ratio"])),
        "relu_supercritical_log10_loss_ratio_min": float(np.min(relu_log[grid > 2.0])),
        # NaN when no super-critical run converged: the check then fails, as it should
        "catapult_edge_max": float(np.max(edge[super_conv])) if super_conv.any() else np.nan,
        "catapult_edge_median": float(np.median(edge[super_conv])) if super_conv.any() else np.nan,
        "catapult_count": int(np.sum(super_conv)),
    }


def _shade(ax, right):
    for lo, hi, color in ((0, 1, "C2"), (1, 2, "C1"), (2, right, "C3")):
        ax.axvspan(lo, hi, color=color, alpha=0.07, lw=0)
    for edge in (1.0, 2.0):
        ax.axvline(edge, color="0.5", lw=0.8, ls=":")
    ax.set_xlim(0, right)


# --------------------------------------------------------------------------- run / plot
def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Regimes over an ``eta`` grid on a quadratic and on the (linearised) ReLU net."""
    cfg = CONFIG["quick" if quick else "full"]
    rng_quad, rng_net = np.random.default_rng(seed).spawn(2)

    # %% A quadratic: the three regimes of eta lambda_max, exactly as predicted
    quadratic = quadratic_regimes(cfg["quad"], cfg["margin_quad"], rng_quad)
    progress(1, 2, "quadratic")

    # %% The ReLU net and its linearisation over the same grid of eta lambda_max
    relu = net_regimes(cfg["net"], cfg["margin_net"], rng_net)
    progress(2, 2, "net")
    return {**quadratic, **relu, "margin_quad": cfg["margin_quad"], "margin_net": cfg["margin_net"]}


def plot(result: dict):
    fig, axes = subplots(2, 2, width=4.3, height=3.2)
    right = max(result["quad_grid"].max(), result["net_grid"].max()) + 0.2
    ax = axes[0, 0]
    colors = {"monotone": "C2", "oscillatory": "C1", "divergent": "C3"}
    for label, (c, top) in result["quad_examples"].items():
        ax.plot(
            top[:16] / abs(top[0]),
            ".-",
            ms=4,
            lw=0.9,
            color=colors[label],
            label=rf"{label}: $\eta L$ = {c:.2f}",
        )
    ax.set(
        ylim=(-3, 3),
        xlabel="step k",
        ylabel=r"$v_{max} \cdot x_k$ / $|v_{max} \cdot x_0|$",
        title="(a) quadratic: coordinate along the top eigenvector",
    )
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    _shade(ax, right)
    g = np.linspace(0, right, 100)
    ax.plot(g, 1 - g, color="k", lw=1.0, label=r"predicted $1 - \eta \lambda_{max}$")
    ax.plot(
        result["quad_grid"], result["quad_multiplier"], "o", ms=3, mfc="none", label="quadratic"
    )
    ax.plot(
        result["net_grid"],
        result["net_early_mult"],
        "s",
        ms=4,
        color="C3",
        label=r"ReLU net, first 3 steps, $v_{max}$ of $H(0)$",
    )
    ax.set(
        ylim=(-5.5, 1.2),
        xlabel=r"$\eta \lambda_{max}$",
        ylabel="per-step multiplier of top coordinate",
        title="(b) monotone | oscillatory | divergent",
    )
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    grid = result["net_grid"]
    sub, sup = np.flatnonzero(grid < 2.0), np.flatnonzero(grid > 2.0)
    shown = [*sub[:: max(1, len(sub) // 3)], *sup[:4], sup[-1]]
    for i in shown:
        # diverging runs reach 1e300: clip them to the frame so the axis can autoscale
        curve = np.clip(result["net_loss_curves"][i], 1e-30, 1e10)
        ax.semilogy(curve, "-" if grid[i] < 2.0 else "--", lw=0.9, label=f"{grid[i]:.2g}")
    ax.set(
        ylim=(1e-20, 1e8),
        xlabel="step k",
        ylabel="L(k) / L(0)",
        title=r"(c) ReLU net; legend: $\eta \lambda_{max}(H(0))$",
    )
    ax.legend(fontsize=6, ncol=3, loc="lower left")

    ax = axes[1, 1]
    _shade(ax, right)
    cap = 1e8  # diverged runs are drawn at the top
    lin = np.where(np.isfinite(result["net_lin_final_ratio"]), result["net_lin_final_ratio"], cap)
    relu = np.array([c[-1] if np.isfinite(c[-1]) else cap for c in result["net_loss_curves"]])
    floor = 1e-29  # runs that reached the rounding floor are drawn at the bottom
    ax.semilogy(grid, np.clip(lin, floor, cap), "o-", ms=4, label="linearised net")
    ax.semilogy(grid, np.clip(relu, floor, cap), "s-", ms=4, label="ReLU net")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(
        ylim=(1e-30, 1e10),
        xlabel=r"$\eta \lambda_{max}(H(0))$",
        ylabel="final L(K) / L(0)",
        title=r"(d) fate; $\triangle$: final $\eta \lambda_{max}(H(W_K)) / 2$",
    )
    ax2 = ax.twinx()
    ax2.plot(grid, result["net_edge"] / 2.0, "^", color="C4")
    ax2.axhline(1.0, color="C4", lw=0.8, ls="--")
    ax2.set(ylim=(0, 4), ylabel=r"$\eta \lambda_{max}(H(W_K)) / 2$")
    ax.legend(fontsize=7, loc="lower right")
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
