"""loss_landscape: slices of the loss along the GD path, narrow versus wide net.

The same data are fitted by a narrow and a wide two-layer ReLU net (Du et al.,
ICLR 2019, Eq. (1); first layer ``W`` trained by full-batch GD at
``eta = 1 / lambda_max(H(0))``). After ``K`` steps we slice the loss

- along the path: ``L(t) = L(W0 + t (W_K - W0))``, ``t in [-0.5, 1.5]`` (1-D);
- on the plane ``W0 + alpha (W_K - W0) + beta D``, with ``D`` a Gaussian direction
  filter-normalised (Li et al., NeurIPS 2018, Sec. 4) so that each neuron's row
  ``D_r`` has the length of that neuron's move ``||w_r(K) - w_r(0)||`` (2-D).

In the kernel regime the net is (nearly) linear in ``W`` along the path, so the
slice is a convex quadratic with its minimum at ``t ~ 1`` and near-zero loss
there (Du et al. Sec. 4; Lee et al. 2019). A narrow net moves a larger fraction
of its weights (``||W_K - W0||_F / ||W0||_F ~ m^{-1/2}``), flips more activation
patterns along the line, and its slice is a visibly piecewise quadratic with
concave kinks.
"""

from __future__ import annotations

import numpy as np

from shared import data, kernels, net
from shared.plotting import subplots, width_colors

# T points on the 1-D slice, a G x G grid for the 2-D slice; narrow_inits narrow nets (their
# median is measured); directions random directions for the flatness ratio
CONFIG = {
    "quick": {
        "n": 20,
        "d": 10,
        "m_narrow": 10,
        "m_wide": 2000,
        "steps": 300,
        "T": 81,
        "G": 21,
        "narrow_inits": 16,
        "wide_inits": 4,
        "directions": 16,
    },
    "full": {
        "n": 50,
        "d": 20,
        "m_narrow": 10,
        "m_wide": 10000,
        "steps": 500,
        "T": 161,
        "G": 41,
        "narrow_inits": 4,
        "wide_inits": 1,
        "directions": 16,
    },
}


def slice_1d(X, y, W0, a, delta, t):
    """``L(W0 + t delta)`` for each ``t`` (T,)."""
    return np.array([net.loss(net.predict(X, W0 + s * delta, a), y) for s in t])


def slice_2d(X, y, W0, a, delta, D, alpha, beta):
    """``L(W0 + alpha delta + beta D)`` on the grid, shape (len(beta), len(alpha))."""
    return np.array(
        [[net.loss(net.predict(X, W0 + s * delta + b * D, a), y) for s in alpha] for b in beta]
    )


def filter_normalised(delta, *, rng):
    """Gaussian direction whose row ``r`` has length ``||delta_r||`` (Li et al. 2018, Sec. 4)."""
    G = rng.standard_normal(delta.shape)  # (m, d)
    scale = np.linalg.norm(delta, axis=1) / np.linalg.norm(G, axis=1)  # (m,)
    return G * scale[:, None]


def quadratic_r2(x, L) -> float:
    """Fraction of the variance of ``L`` explained by a least-squares quadratic in ``x``."""
    resid = L - np.polyval(np.polyfit(x, L, 2), x)
    return float(1.0 - resid @ resid / np.sum((L - L.mean()) ** 2))


def quadratic_r2_2d(A, B, L) -> float:
    """Same for a full quadratic in two variables (6 coefficients) on the grid."""
    a, b, z = A.ravel(), B.ravel(), L.ravel()
    M = np.column_stack([np.ones_like(a), a, b, a * a, a * b, b * b])
    coef, *_ = np.linalg.lstsq(M, z, rcond=None)
    resid = z - M @ coef
    return float(1.0 - resid @ resid / np.sum((z - z.mean()) ** 2))


def quadratic_vertex(x, L) -> float:
    """Where the least-squares quadratic in ``x`` has its extremum, ``-c1 / (2 c2)``."""
    c2, c1, _ = np.polyfit(x, L, 2)
    return float(-c1 / (2.0 * c2))


def quadratic_vertex_2d(A, B, L) -> tuple[float, float]:
    """Stationary point ``(alpha, beta)`` of the least-squares quadratic in two variables."""
    a, b, z = A.ravel(), B.ravel(), L.ravel()
    M = np.column_stack([np.ones_like(a), a, b, a * a, a * b, b * b])
    c, *_ = np.linalg.lstsq(M, z, rcond=None)
    va, vb = np.linalg.solve([[2 * c[3], c[4]], [c[4], 2 * c[5]]], [-c[1], -c[2]])
    return float(va), float(vb)


def min_curvature_ratio(L) -> float:
    """Smallest second difference along the slice over the mean ``|second difference|``:
    1 for an exact quadratic, above 0 for a convex slice, negative at a concave kink."""
    d2 = L[2:] - 2.0 * L[1:-1] + L[:-2]  # (T - 2,)
    return float(d2.min() / np.mean(np.abs(d2)))


def convexity_violation(L) -> float:
    """Worst negative second difference relative to the mean second difference along the slice:
    0 for a convex slice, about 1 when a concave kink is as sharp as the average curvature."""
    d2 = L[2:] - 2.0 * L[1:-1] + L[:-2]  # (T - 2,)
    return float(max(0.0, -d2.min()) / np.mean(np.abs(d2)))


def monotone_increase(L, t) -> float:
    """Largest rise between neighbouring grid points of the slice on ``t in [0, 1]``, over L(0)."""
    inside = (t >= -1e-12) & (t <= 1.0 + 1e-12)
    seg = L[inside]
    return float(max(0.0, np.max(np.diff(seg))) / seg[0])


def curvature_along(X, W, a, V) -> float:
    """Second derivative of ``L`` at ``W`` along ``V``: ``||J(W) V||^2``, exact wherever no
    pattern ``1{w_r.x_i >= 0}`` flips along ``V`` (the net is linear in ``W`` there, so the
    residual term ``(u - y) . d^2u/ds^2`` vanishes). ``(J V)_i = (1/sqrt(m)) sum_r a_r
    1{w_r.x_i >= 0} v_r.x_i``, without forming ``J`` (a central difference instead would read
    the kinks of the ``m n`` patterns within its step, some of them ~1e-8 from zero)."""
    m = W.shape[0]
    Z = X @ W.T  # (n, m)
    JV = ((X @ V.T) * (Z >= 0)) @ a / np.sqrt(m)  # (n,)
    return float(JV @ JV)


def expected_random_curvature(X, W, D) -> float:
    """``E ||J(W) G||^2`` for a Gaussian ``G`` with the row norms of ``D``:
    ``(1 / (m d)) sum_r ||D_r||^2 #{i : w_r.x_i >= 0}`` for unit inputs, since
    ``E (G_r.x_i)^2 = ||D_r||^2 / d``."""
    m, d = W.shape
    active = np.sum(X @ W.T >= 0, axis=0)  # (m,), inputs on which neuron r is active
    return float(np.sum(np.sum(D**2, axis=1) * active) / (m * d))


def _one_net(X, y, m, *, steps, t, alpha, beta, directions, rng, plane=True):
    """Train one net of width ``m`` on ``W`` and measure its 1-D slice, its curvature along
    ``directions`` random filter-normalised directions, and (``plane``) its 2-D slice."""
    d = X.shape[1]
    W0, a0 = net.init_net(d, m, rng=rng)
    eta = 1.0 / np.linalg.eigvalsh(kernels.gram_h(X, W0))[-1]
    res = net.train(X, y, W0, a0, eta=eta, steps=steps, record_every=steps)
    delta = res.W - W0  # (m, d), the path direction
    Ds = [filter_normalised(delta, rng=rng) for _ in range(directions)]  # each (m, d)
    L1 = slice_1d(X, y, W0, a0, delta, t)
    curv_path = curvature_along(X, res.W, a0, delta)  # ||J delta||^2
    # every D has the row norms of delta, so E||J G||^2 is the same for all of them
    curv_rand = np.mean([curvature_along(X, res.W, a0, D) for D in Ds])  # mean ||J D||^2
    out = {
        "flat_ratio": float(curv_rand / curv_path),
        "flat_ratio_pred": expected_random_curvature(X, res.W, Ds[0]) / curv_path,
        "final_ratio": float(res.loss[-1] / res.loss[0]),
        "quad_r2": quadratic_r2(t, L1),
        "path_vertex": quadratic_vertex(t, L1),
        "min_curvature_ratio": min_curvature_ratio(L1),
        "convexity_violation": convexity_violation(L1),
        "monotone_increase": monotone_increase(L1, t),
        "rel_move": float(np.linalg.norm(delta) / np.linalg.norm(W0)),
        "move_fro": float(np.linalg.norm(delta)),
        "slice_1d": L1 / res.loss[0],
        "loss": res.loss / res.loss[0],
    }
    if plane:
        L2 = slice_2d(X, y, W0, a0, delta, Ds[0], alpha, beta)
        A, B = np.meshgrid(alpha, beta)
        j_min = np.unravel_index(np.argmin(L2), L2.shape)
        out |= {
            "quad_r2_2d": quadratic_r2_2d(A, B, L2),
            "plane_vertex": quadratic_vertex_2d(A, B, L2),
            "argmin_alpha": float(alpha[j_min[1]]),
            "argmin_beta": float(beta[j_min[0]]),
            "slice_2d": L2 / res.loss[0],
        }
    return out


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Narrow and wide nets on the same data; their slices and the orderings between widths."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, steps = cfg["n"], cfg["d"], cfg["steps"]
    m_narrow, m_wide = cfg["m_narrow"], cfg["m_wide"]
    R, Rw = cfg["narrow_inits"], cfg["wide_inits"]
    rng = np.random.default_rng(seed)

    # %% Set-up: data, the slice grids, one stream per net
    X = data.unit_sphere(n, d, rng=rng)  # (n, d)
    y = data.gaussian_labels(n, rng=rng)  # (n,)
    t = np.linspace(-0.5, 1.5, cfg["T"])
    alpha, beta = np.linspace(-0.5, 1.5, cfg["G"]), np.linspace(-1.0, 1.0, cfg["G"])
    rngs = rng.spawn(Rw + R)
    grids = {"t": t, "alpha": alpha, "beta": beta, "directions": cfg["directions"]}

    # %% Train Rw wide and R narrow nets; slice each loss along its path (the first on a plane)
    nets = {"wide": [], "narrow": []}
    for j, r in enumerate(rngs):
        # every wide net is sliced on a plane (cheap at n = 20), the narrow ones only the first
        key, m, plane = ("wide", m_wide, True) if j < Rw else ("narrow", m_narrow, j == Rw)
        nets[key].append(_one_net(X, y, m, steps=steps, rng=r, plane=plane, **grids))
        progress(j + 1, Rw + R, f"{key} m={m}, init {len(nets[key])}")
    wd, nw = nets["wide"][0], nets["narrow"][0]  # the nets drawn in the figure

    def med(key, width):  # median over the inits of one width
        return float(np.median([q[key] for q in nets[width]]))

    # %% Measure: each width's slice (median over inits), and the orderings between them
    decades = {w: np.log10(med("final_ratio", w)) for w in ("narrow", "wide")}
    move_ratio = med("rel_move", "narrow") / med("rel_move", "wide")
    return {
        "n": n,
        "d": d,
        "m_narrow": m_narrow,
        "m_wide": m_wide,
        "steps": steps,
        "narrow_inits": R,
        "wide_inits": Rw,
        "final_ratio_narrow": med("final_ratio", "narrow"),
        "quad_r2_narrow": med("quad_r2", "narrow"),
        "quad_r2_2d_narrow": nw["quad_r2_2d"],
        "convexity_violation_narrow": med("convexity_violation", "narrow"),
        "min_curvature_ratio_narrow": med("min_curvature_ratio", "narrow"),
        "rel_move_narrow": med("rel_move", "narrow"),
        "move_fro_narrow": med("move_fro", "narrow"),
        "argmin_alpha_narrow": nw["argmin_alpha"],
        "argmin_beta_narrow": nw["argmin_beta"],
        "flat_ratio_narrow": med("flat_ratio", "narrow"),
        "final_ratio_wide": med("final_ratio", "wide"),
        "quad_r2_wide": med("quad_r2", "wide"),
        "quad_r2_2d_wide": med("quad_r2_2d", "wide"),
        "convexity_violation_wide": max(q["convexity_violation"] for q in nets["wide"]),
        "min_curvature_ratio_wide": min(q["min_curvature_ratio"] for q in nets["wide"]),
        "monotone_increase_wide": max(q["monotone_increase"] for q in nets["wide"]),
        "path_vertex_wide": med("path_vertex", "wide"),
        "plane_vertex_alpha_wide": float(np.median([q["plane_vertex"][0] for q in nets["wide"]])),
        "plane_vertex_beta_wide": wd["plane_vertex"][1],
        "rel_move_wide": med("rel_move", "wide"),
        "move_fro_wide": med("move_fro", "wide"),
        "argmin_alpha_wide": wd["argmin_alpha"],
        "argmin_beta_wide": wd["argmin_beta"],
        "flat_ratio_wide": med("flat_ratio", "wide"),
        "flat_ratio_pred_wide": med("flat_ratio_pred", "wide"),
        "one_minus_r2_wide": 1.0 - med("quad_r2", "wide"),
        "one_minus_r2_2d_wide": 1.0 - med("quad_r2_2d", "wide"),
        "log10_final_narrow_over_wide": float(decades["narrow"] - decades["wide"]),
        "decades_narrow_over_wide": float(decades["narrow"] / decades["wide"]),
        "log10_nonquadratic_ratio": float(
            np.log10((1.0 - med("quad_r2", "narrow")) / (1.0 - med("quad_r2", "wide")))
        ),
        "rel_move_ratio": move_ratio,
        "rel_move_ratio_over_sqrt_m": move_ratio / np.sqrt(m_wide / m_narrow),
        "flat_ratio_wide_over_pred": float(
            np.median([q["flat_ratio"] / q["flat_ratio_pred"] for q in nets["wide"]])
        ),
        "log10_flat_narrow_over_wide": float(
            np.log10(med("flat_ratio", "narrow") / med("flat_ratio", "wide"))
        ),
        "grid_step_alpha": float(alpha[1] - alpha[0]),
        # series for the figure
        "t": t,
        "alpha": alpha,
        "beta": beta,
        "slice_1d_narrow": nw["slice_1d"],
        "slice_2d_narrow": nw["slice_2d"],
        "loss_narrow": nw["loss"],
        "slice_1d_wide": wd["slice_1d"],
        "slice_2d_wide": wd["slice_2d"],
        "loss_wide": wd["loss"],
    }


def plot(result: dict):
    """1-D slices, their curvature, and the two 2-D slices."""
    fig, axes = subplots(2, 2, width=4.4, height=3.4)
    colors = dict(zip(("narrow", "wide"), width_colors(2), strict=True))
    ax = axes[0, 0]
    for key in ("narrow", "wide"):
        ax.plot(
            result["t"],
            result[f"slice_1d_{key}"],
            color=colors[key],
            label=f"{key} m={result[f'm_{key}']}: 1 - R^2 = {1 - result[f'quad_r2_{key}']:.1e}",
        )
    for t0 in (0.0, 1.0):
        ax.axvline(t0, color="0.6", lw=0.7, ls=":")
    ax.set(
        xlabel=r"t  (weights $W_0 + t\,(W_K - W_0)$)",
        ylabel="L / L(W0)",
        title="1-D slice along the GD path",
    )
    ax.legend(loc="center right", fontsize=7)

    ax = axes[0, 1]
    for key in ("narrow", "wide"):
        L = result[f"slice_1d_{key}"]
        d2 = L[2:] - 2 * L[1:-1] + L[:-2]
        ax.plot(result["t"][1:-1], d2 / np.mean(np.abs(d2)), color=colors[key], label=key)
    ax.axhline(0.0, color="k", lw=0.7)
    ax.set(
        xlabel="t",
        ylabel="second difference / its mean",
        title="curvature along the slice (below 0: concave kink)",
    )
    ax.legend()

    for ax, key in zip(axes[1], ("narrow", "wide"), strict=True):
        L2 = np.log10(np.maximum(result[f"slice_2d_{key}"], 1e-12))
        cs = ax.contourf(result["alpha"], result["beta"], L2, levels=20, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="log10 L / L(W0)")
        ax.plot([0, 1], [0, 0], "w.-", ms=6)
        ax.set(
            xlabel=r"$\alpha$ (path direction $W_K - W_0$)",
            ylabel=r"$\beta$ (filter-normalised random $D$)",
            title=f"2-D slice, {key} m={result[f'm_{key}']}\n"
            f"curvature along D / along path: {result[f'flat_ratio_{key}']:.1e}",
        )
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
