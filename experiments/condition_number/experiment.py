"""Condition number: how fast GD contracts on quadratics, and on the kernel-regime net.

On ``f(x) = 1/2 x^T A x`` with the spectrum of ``A`` in ``[mu, L]`` and ``kappa = L / mu``,
GD ``x_{k+1} = (I - eta A) x_k`` contracts ``||x_k - x*||`` by ``max_i |1 - eta lambda_i|`` per
step: ``1 - 1/kappa`` at ``eta = 1/L`` and ``(kappa - 1)/(kappa + 1)`` at ``eta = 2/(L + mu)``
(Nesterov, *Lectures on Convex Optimization*, 2018, Thm 2.1.15). Iterations to reach
``||x_k - x*|| <= eps ||x_0 - x*||`` therefore grow like ``kappa log(1/eps)``. Without strong
convexity (eigenvalues accumulating at 0, some exactly 0) the rate is sublinear,
``f(x_k) - f* <= L ||x_0 - x*||^2 / (2k)`` (Beck and Teboulle 2009, Thm 3.1).

The bridge to Du, Zhai, Poczos, Singh (ICLR 2019, Sec. 3-4): in the kernel regime the residual of
the two-layer ReLU net moves as ``u(k+1) - y = (I - eta H)(u(k) - y)``, the same iteration with
``A = H`` (``mu = lam0``, ``L = lambda_max``). The linearised net is a quadratic in ``W`` whose
Hessian ``J^T J`` has ``m d - n`` zero eigenvalues (convex, not strongly convex), yet its residual
contracts linearly at ``1 - eta lambda_min(H(0))`` because the residual lives in the range of
``J``; the real ReLU net follows the same rate with ``H_inf`` in place of ``H(0)``.
"""

from __future__ import annotations

import numpy as np

from shared import data, fit, kernels, net, optim
from shared.plotting import subplots, width_colors

CONFIG = {
    "quick": {
        "d": 50,
        "kappas_rate": [10.0, 100.0, 316.0],
        "kappas_iter": [10.0, 31.6, 100.0, 316.0],
        "eps": 1e-6,
        "d_convex": 100,
        "n_zero": 10,
        "convex_floor": 1e-6,
        "convex_steps": 10000,
        "gap_kappa": 100.0,
        "net": {"n": 30, "d": 20, "m": 4000, "draws": 5},
    },
    "full": {
        "d": 200,
        "kappas_rate": [10.0, 100.0, 1000.0, 10000.0],
        "kappas_iter": [10.0, 31.6, 100.0, 316.0, 1000.0, 3162.0, 10000.0],
        "eps": 1e-6,
        "d_convex": 400,
        "n_zero": 40,
        "convex_floor": 1e-7,
        "convex_steps": 100000,
        "gap_kappa": 1000.0,
        "net": {"n": 60, "d": 20, "m": 10000, "draws": 1},
    },
}


# --------------------------------------------------------------------------- quadratics


def strongly_convex_spectrum(d: int, mu: float, L: float, *, rng: np.random.Generator):
    """``d`` eigenvalues: ``mu`` and ``L`` exactly, the other ``d - 2`` uniform in ``[mu, L]``."""
    inner = rng.uniform(mu, L, size=d - 2)
    return np.sort(np.concatenate([[mu], inner, [L]]))


def gd_distances(A: np.ndarray, x0: np.ndarray, *, eta: float, steps: int) -> np.ndarray:
    """``||x_k - x*||`` for ``k = 0..steps`` of ``optim.GD`` on ``1/2 x^T A x`` (``x* = 0``).

    ``minimize`` records the value of its first argument at every iterate and GD never
    evaluates it, so it is handed the distance to ``x*`` (no path of ``steps x d`` to store).
    """
    res = optim.minimize(
        lambda x: float(np.linalg.norm(x)),
        lambda x: A @ x,
        x0,
        optimizer=optim.GD(),
        lr=eta,
        steps=steps,
    )
    return res.f


RATE_HI, RATE_LO = 1e-40, 1e-70  # fit window of ||x_k||^2 / ||x_0||^2 on the quadratics
REPS = 3  # random spectra behind every median iteration count


def measured_rate(dist: np.ndarray) -> float:
    """Per-step contraction factor ``rho`` fitted on ``||x_k - x*||^2``.

    The window ``1e-70 <= ||x_k||^2 / ||x_0||^2 <= 1e-40`` starts late, so the modes just above
    ``mu`` have died out and the slope is the asymptotic one; with ``x* = 0`` GD has no
    precision floor (each step rescales ``x`` with a relative rounding error only). A mode at
    ``mu (1 + g)`` with the same weight steepens the slope by about ``g exp(-2 k mu g)``
    relative, at most ``1 / (2 e k mu)``: ``0.4%`` where the window opens (``2 k mu ~ 92``),
    against ``1.3%`` for a window opening at ``1e-12``.
    """
    return float(np.exp(fit.log_rate(dist**2, hi=RATE_HI, lo=RATE_LO) / 2.0))


def steps_to(dist: np.ndarray, eps: float) -> float:
    """First crossing of ``dist_k = eps dist_0``, interpolated in ``log dist_k`` between the step
    before and the first step at or below (``inf`` if never reached).

    The fractional step makes the count a continuous function of the spectrum, so the log-log
    slope of counts against ``kappa`` moves smoothly with the seed instead of by whole steps.
    """
    logs = np.log(dist)
    target = np.log(eps * dist[0])
    hit = np.flatnonzero(logs <= target)
    if not hit.size:
        return np.inf
    k = int(hit[0])
    return float(k - (target - logs[k]) / (logs[k - 1] - logs[k]))


def rates_vs_kappa(cfg: dict, rng: np.random.Generator) -> dict:
    """Measured vs predicted contraction at ``eta = 1/L`` and ``eta = 2/(L + mu)``."""
    d, L = cfg["d"], 1.0
    rho_1L, pred_1L, rho_opt, pred_opt = [], [], [], []
    bound_ratio, curves = [], []
    for kappa in cfg["kappas_rate"]:
        mu = L / kappa
        A, _, x0 = data.rotated_quadratic(strongly_convex_spectrum(d, mu, L, rng=rng), rng=rng)
        for rhos, preds, eta, pred in (
            (rho_1L, pred_1L, 1.0 / L, 1.0 - 1.0 / kappa),
            (rho_opt, pred_opt, 2.0 / (L + mu), (kappa - 1.0) / (kappa + 1.0)),
        ):
            # enough steps for ||x||^2 / ||x0||^2 to pass the bottom of the fit window
            steps = int(np.ceil(np.log(RATE_LO) / (2.0 * np.log(pred)))) + 50
            dist = gd_distances(A, x0, eta=eta, steps=steps)
            rhos.append(measured_rate(dist))
            preds.append(pred)
            # ||I - eta A||_2 = pred: ||x_k|| <= pred^k ||x_0|| at every k (Thm 2.1.15)
            k = np.arange(1, dist.size)
            bound_ratio.append(float(np.max(dist[1:] / (pred**k * dist[0]))))
            if rhos is rho_1L:
                curves.append(dist / dist[0])
    return {
        "kappa": np.asarray(cfg["kappas_rate"]),
        "rho_1L": np.asarray(rho_1L),
        "pred_1L": np.asarray(pred_1L),
        "rho_opt": np.asarray(rho_opt),
        "pred_opt": np.asarray(pred_opt),
        "contraction_bound_ratio_max": max(bound_ratio),
        "curves_1L": curves,
    }


def iterations_vs_kappa(cfg: dict, rng: np.random.Generator) -> dict:
    """Iterations of GD at ``1/L`` to ``||x_k|| <= eps ||x_0||`` over a grid of ``kappa``.

    Each count is the median over ``REPS`` random spectra: an interior eigenvalue that lands
    within a few per cent of ``mu`` (rare at large ``kappa``) adds steps to one count, and the
    median keeps such a draw from setting the slope.
    """
    d, eps, L = cfg["d"], cfg["eps"], 1.0
    iters = []
    for kappa in cfg["kappas_iter"]:
        steps = int(np.ceil(1.5 * kappa * np.log(1.0 / eps))) + 50
        counts = []
        for _ in range(REPS):
            lam = strongly_convex_spectrum(d, L / kappa, L, rng=rng)
            A, _, x0 = data.rotated_quadratic(lam, rng=rng)
            counts.append(steps_to(gd_distances(A, x0, eta=1.0 / L, steps=steps), eps))
        iters.append(float(np.median(counts)))
    kappas = np.asarray(cfg["kappas_iter"])
    iters = np.asarray(iters, dtype=float)
    p, se = fit.power_law(kappas, iters)
    return {
        "iter_kappa": kappas,
        "iterations": iters,
        "iter_exponent": p,
        "iter_exponent_se": se,
        "iter_over_kappa_log": iters / (kappas * np.log(1.0 / eps)),
    }


def convex_run(lam: np.ndarray, steps: int, rng: np.random.Generator) -> dict:
    """GD at ``1/L`` on a convex quadratic with spectrum ``lam`` (exact zeros allowed).

    ``x*`` is the minimiser closest to ``x0``: ``x0`` minus its range component, so ``f* = 0``
    and ``||x0 - x*||`` is the norm of that component. The gap ``f(x_k) - f*`` is evaluated in
    eigen-coordinates, free of cancellation against the null component that GD never moves.
    """
    L = float(lam.max())
    A, Q, x0 = data.rotated_quadratic(lam, rng=rng)
    r0_sq = float(np.sum((Q.T @ x0)[lam > 0] ** 2))  # ||x0 - x*||^2

    def gap_fn(x):
        c = Q.T @ x  # (d,) eigen-coordinates
        return 0.5 * float(lam @ c**2)

    res = optim.minimize(gap_fn, lambda x: A @ x, x0, optimizer=optim.GD(), lr=1.0 / L, steps=steps)
    k = np.arange(1, res.f.size)
    gap = res.f[1:]  # (steps,)
    bound = L * r0_sq / (2.0 * k)
    return {"k": k, "gap": gap, "bound": bound, "ratio": float(np.max(gap / bound))}


# fit window of (f_k - f*) / (f_0 - f*) in the gapped case: late, so the eigenvalues just above
# L/kappa have died out (a mode at (1 + g) L/kappa steepens the slope by at most 1/(2 e k mu),
# 1% where the window opens), and five decades above the floor that the null component sets
# (its rounding, ~1e-16 ||x*||, in the range coordinates: f ~ 1e-31 f_0)
GAP_HI, GAP_LO = 1e-16, 1e-26


def convex_not_strongly(cfg: dict, rng: np.random.Generator) -> dict:
    """Two convex quadratics with ``n_zero`` exact zero eigenvalues (``f`` not strongly convex).

    - "log": the other eigenvalues log-spaced on ``[floor L, L]``, a density ``~ 1/lambda`` near
      0; with equal weight on every eigenvector ``f_k - f* ~ sum_i lambda_i (1 - lambda_i/L)^(2k)
      ~ L / (4 k ln(1/floor))``: exactly ``1/k`` for ``1 << k << 1/floor``, the worst-case order.
    - "gapped": the other eigenvalues evenly spaced on ``[L/kappa, L]`` (``kappa = gap_kappa``),
      like the linearised net whose Hessian ``J^T J`` is ``H(0)``'s spectrum padded with zeros.
      GD never moves the null component and converges linearly, ``f_k - f* ~ (1 - 1/kappa)^(2k)``.
      (Evenly spaced: a random eigenvalue within a few per cent of ``L/kappa`` would add a rare
      transient to the fitted rate; the seeds still rotate the quadratic and draw its start.)
    """
    d, z, L, kappa = cfg["d_convex"], cfg["n_zero"], 1.0, cfg["gap_kappa"]
    zeros = np.zeros(z)
    logs = np.concatenate([zeros, np.geomspace(cfg["convex_floor"] * L, L, d - z)])
    gapped = np.concatenate([zeros, np.linspace(L / kappa, L, d - z)])
    a = convex_run(logs, cfg["convex_steps"], rng)
    gap_steps = int(np.ceil(np.log(0.1 * GAP_LO) / (2.0 * np.log(1.0 - 1.0 / kappa))))
    b = convex_run(gapped, gap_steps, rng)
    # log-log slope past the first steps, where the top eigenvalues still dominate
    fit_k = a["k"] >= 10
    slope, _ = fit.power_law(a["k"][fit_k], a["gap"][fit_k])
    gap_rate = fit.log_rate(b["gap"], hi=GAP_HI, lo=GAP_LO)
    return {
        "convex_k": a["k"],
        "convex_gap_log": a["gap"],
        "convex_bound_log": a["bound"],
        "convex_k_gapped": b["k"],
        "convex_gap_gapped": b["gap"],
        "convex_bound_gapped": b["bound"],
        "sublinear_bound_ratio_max": max(a["ratio"], b["ratio"]),
        "sublinear_slope_logspec": slope,
        "gapped_lograte_ratio": gap_rate / (2.0 * np.log(1.0 - 1.0 / kappa)),
    }


# --------------------------------------------------------------------------- the net


NET_HI, NET_LO = 1e-12, 1e-22  # fit window of L(k) / L(0) on the nets


def balanced_residual_labels(X, W0, a, V, *, rng: np.random.Generator) -> np.ndarray:
    """Labels ``y = u(0) + V s`` with random signs ``s``: the initial residual ``u(0) - y = -V s``
    has weight 1 on every column of ``V (n, n)`` (the eigenvectors of ``H_inf``).

    The net's counterpart of the quadratics' start (``data.rotated_quadratic``): a rate is a
    worst case over starts, and a Gaussian residual can put almost no weight on the slowest
    eigenvector by chance (down to ``1e-7`` of ``||u(0) - y||^2`` over 200 draws at ``n = 30``),
    which hides the asymptotic rate below the float64 floor. ``||u(0) - y||^2 = n``, as for
    ``y ~ N(0, I_n)`` on average.
    """
    s = rng.choice([-1.0, 1.0], size=V.shape[1])
    return net.predict(X, W0, a) + V @ s


def bridge_draw(cfg: dict, rng: np.random.Generator) -> dict:
    """GD at ``eta = 1/lambda_max(H_inf)`` on the linearised net and on the ReLU net, one draw of
    the data, the init and the labels.

    Two predictions of the loss curve from the residual iteration ``r(k+1) = (I - eta H) r(k)``:
    the asymptotic rate ``rho = 1 - eta lambda_min(H)`` (the top mode contracts at
    ``|1 - eta lambda_max(H)|``, faster), and the full spectral curve
    ``sum_i (1 - eta lambda_i)^(2k) (v_i . r(0))^2`` (``kernels.predicted_residuals``), fitted over
    the same window as the measurement. ``H = H(0)`` for the linearised net, where the iteration
    is exact; ``H = H_inf`` for the ReLU net (``||H(0) - H_inf|| = O(m^-1/2)``). Both nets start
    from a residual with equal weight on every eigenvector of ``H_inf``
    (:func:`balanced_residual_labels`), and the slopes are fitted late, where
    ``1e-22 <= L(k) / L(0) <= 1e-12`` (eight decades above the float64 floor near ``1e-30``).
    """
    n, d, m = cfg["n"], cfg["d"], cfg["m"]
    X = data.unit_sphere(n, d, rng=rng)
    H_inf = kernels.h_inf(X)
    lam_inf, V_inf = np.linalg.eigh(H_inf)  # (n,) ascending, (n, n)
    W0, a = net.init_net(d, m, rng=rng)
    y = balanced_residual_labels(X, W0, a, V_inf, rng=rng)
    H0 = kernels.gram_h(X, W0)
    lam_h0 = np.linalg.eigvalsh(H0)  # (n,)
    eta = 1.0 / lam_inf[-1]
    rho_inf = max(1.0 - eta * lam_inf[0], abs(1.0 - eta * lam_inf[-1]))
    rho_h0 = max(1.0 - eta * lam_h0[0], abs(1.0 - eta * lam_h0[-1]))
    # the linearised net follows rho_h0 exactly: a tenth of NET_LO is reached on schedule
    steps = int(np.ceil(np.log(0.1 * NET_LO) / (2.0 * np.log(rho_h0))))

    # linearised net: u = u0 + J0 (w - w0), a quadratic in w with Hessian J0^T J0 (m d, m d)
    J0 = net.jacobian_W(X, W0, a)  # (n, m d)
    u0 = net.predict(X, W0, a)  # (n,)
    w0 = W0.ravel()
    lin = optim.minimize(
        lambda w: 0.5 * float(np.sum((u0 - y + J0 @ (w - w0)) ** 2)),
        lambda w: J0.T @ (u0 - y + J0 @ (w - w0)),
        w0,
        optimizer=optim.GD(),
        lr=eta,
        steps=steps,
    )
    # the ReLU net: slower (its kernel drifts), so it runs until the loss passes the window
    relu = net.train(X, y, W0, a, eta=eta, steps=4 * steps, tol=0.1 * NET_LO, record_every=steps)

    def spectral_loss(H, k):  # (k + 1,) predicted L(k)
        return 0.5 * kernels.predicted_residuals(H, y, eta=eta, steps=k, u0=u0) ** 2

    def slope(losses):
        return fit.log_rate(losses, hi=NET_HI, lo=NET_LO)

    slope_lin, slope_relu = slope(lin.f), slope(relu.loss)
    pred_inf = spectral_loss(H_inf, relu.loss.size - 1)
    # the kernel the ReLU net ends with: its lambda_min sets the late slope
    lam_min_final = kernels.lambda_min(kernels.gram_h(X, relu.W))
    return {
        "net_kappa_inf": float(lam_inf[-1] / lam_inf[0]),
        "net_rho_pred_inf": rho_inf,
        "net_rho_pred_h0": rho_h0,
        "lin_rho": float(np.exp(slope_lin / 2.0)),
        "relu_rho": float(np.exp(slope_relu / 2.0)),
        "lin_lograte_ratio_h0": slope_lin / (2.0 * np.log(rho_h0)),
        "relu_lograte_ratio_inf": slope_relu / (2.0 * np.log(rho_inf)),
        "relu_lograte_ratio_final": slope_relu / (2.0 * np.log(1.0 - eta * lam_min_final)),
        "net_lam0": float(lam_inf[0]),
        "net_lam_min_h0": float(lam_h0[0]),
        "net_lam_min_final": lam_min_final,
        "relu_steps": int(relu.loss.size - 1),
        "lin_slope_ratio_spectral_h0": slope_lin / slope(spectral_loss(H0, steps)),
        "relu_slope_ratio_spectral_inf": slope_relu / slope(pred_inf),
        "lin_loss_ratio": lin.f / lin.f[0],
        "relu_loss_ratio": relu.loss / relu.loss[0],
        "net_pred_curve": pred_inf / pred_inf[0],
    }


MEDIANS = (  # bridge quantities reported as the median over the cfg["draws"] draws
    "lin_lograte_ratio_h0",
    "relu_lograte_ratio_inf",
    "relu_lograte_ratio_final",
    "lin_slope_ratio_spectral_h0",
    "relu_slope_ratio_spectral_inf",
)


def bridge(cfg: dict, rng: np.random.Generator) -> dict:
    """:func:`bridge_draw` on ``cfg["draws"]`` independent draws (5 quick, 1 full): draw 0 for
    the figure and the tables, the median over the draws for the checked ratios (a data set
    whose inputs crowd together has a small ``lam0`` and a kernel that drifts more; in quick mode
    the median needs three such draws of five; at full width the drift is small).
    """
    draws = [bridge_draw(cfg, r) for r in rng.spawn(cfg["draws"])]
    out = dict(draws[0])
    for key in MEDIANS:
        out[f"{key}_draws"] = np.array([dr[key] for dr in draws])
        out[key] = float(np.median(out[f"{key}_draws"]))
    return out


# --------------------------------------------------------------------------- run / plot
def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Rates vs ``kappa`` (GD at ``1/L`` and ``2/(L+mu)``), iterations vs ``kappa``, the sublinear
    convex case, and the same rates on the linearised and the real ReLU net."""
    cfg = CONFIG["quick" if quick else "full"]
    rng_rate, rng_iter, rng_cvx, rng_net = np.random.default_rng(seed).spawn(4)

    # %% Strongly convex quadratics: the contraction and the cost against kappa
    rates = rates_vs_kappa(cfg, rng_rate)
    progress(1, 4, "rates")
    iterations = iterations_vs_kappa(cfg, rng_iter)
    progress(2, 4, "iterations")

    # %% Convex, not strongly convex: zero eigenvalues, with and without a gap above them
    convex = convex_not_strongly(cfg, rng_cvx)
    progress(3, 4, "convex")

    # %% The net: the same iteration with A = H, linearised and ReLU
    bridged = bridge(cfg["net"], rng_net)
    progress(4, 4, "net")

    # %% Measure: measured over predicted log-rates, both steps, every kappa
    ratio_1L = np.log(rates["rho_1L"]) / np.log(rates["pred_1L"])
    ratio_opt = np.log(rates["rho_opt"]) / np.log(rates["pred_opt"])
    return {
        **rates,
        **iterations,
        **convex,
        **bridged,
        "lograte_ratio_1L": ratio_1L,
        "lograte_ratio_opt": ratio_opt,
        "lograte_rel_err_max": float(np.max(np.abs(np.concatenate([ratio_1L, ratio_opt]) - 1.0))),
    }


def plot(result: dict):
    fig, axes = subplots(2, 2, width=4.2, height=3.2)
    ax = axes[0, 0]
    colors = width_colors(len(result["kappa"]))
    for kappa, curve, c in zip(result["kappa"], result["curves_1L"], colors, strict=True):
        k = np.arange(curve.size)
        ax.semilogy(k / kappa, curve, color=c, label=rf"$\kappa$={kappa:g}")
    t = np.linspace(0.0, 30.0, 50)
    ax.semilogy(t, np.exp(-t), ":", color="k", label=r"$(1-1/\kappa)^k \approx e^{-k/\kappa}$")
    ax.set(
        xlim=(0, 30),
        ylim=(1e-13, 2),
        xlabel=r"step k / $\kappa$",
        ylabel=r"$\|x_k - x^*\| / \|x_0 - x^*\|$",
        title=r"GD at $\eta = 1/L$: one e-fold per $\kappa$ steps",
    )
    ax.legend()

    ax = axes[0, 1]
    kap = result["iter_kappa"]
    ax.loglog(
        kap, result["iterations"], "o-", label=f"measured, slope {result['iter_exponent']:.3f}"
    )
    eps_log = result["iterations"] / result["iter_over_kappa_log"] / kap
    ax.loglog(kap, kap * eps_log, "--", color="gray", label=r"$\kappa \log(1/\epsilon)$")
    ax.set(xlabel=r"$\kappa = L/\mu$", ylabel=r"iterations to $\epsilon = 10^{-6}$", title="cost")
    ax.legend()

    ax = axes[1, 0]
    ax.loglog(
        result["convex_k"],
        result["convex_gap_log"],
        label=f"log spectrum, slope {result['sublinear_slope_logspec']:.2f}",
    )
    ax.loglog(
        result["convex_k"],
        result["convex_bound_log"],
        "--",
        color="C0",
        lw=0.9,
        label=r"bound $L\|x_0-x^*\|^2/(2k)$",
    )
    ax.loglog(result["convex_k_gapped"], result["convex_gap_gapped"], label="zeros + gap: linear")
    ax.loglog(result["convex_k_gapped"], result["convex_bound_gapped"], "--", color="C1", lw=0.9)
    ax.set(
        ylim=(1e-16, 10),
        xlabel="step k",
        ylabel=r"$f(x_k) - f^*$",
        title="convex, not strongly convex (zero eigenvalues)",
    )
    ax.legend()

    ax = axes[1, 1]
    k = np.arange(result["relu_loss_ratio"].size)
    ax.semilogy(k, result["relu_loss_ratio"], label=rf"ReLU net, $\rho$ = {result['relu_rho']:.4f}")
    ax.semilogy(
        np.arange(result["lin_loss_ratio"].size),
        result["lin_loss_ratio"],
        "--",
        label=rf"linearised net, $\rho$ = {result['lin_rho']:.4f}",
    )
    kp = np.arange(result["net_pred_curve"].size)
    ax.semilogy(
        kp,
        result["net_pred_curve"],
        ":",
        color="k",
        label=rf"spectral prediction, $H^\infty$ ($\rho$ = {result['net_rho_pred_inf']:.4f})",
    )
    ax.axhspan(NET_LO, NET_HI, color="0.9", lw=0, zorder=0, label="fit window")
    ax.set(ylim=(1e-26, 3), xlabel="step k", ylabel="L(k) / L(0)", title=r"bridge: $A = H^\infty$")
    ax.legend()
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
