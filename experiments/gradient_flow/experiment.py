"""gradient_flow: GD is the Euler discretisation of gradient flow, and the flow beats its bound.

Gradient flow ``dW/dt = -grad L(W)`` is integrated with a high-order adaptive
ODE solver (``scipy.integrate.DOP853``, ``W`` flattened, rtol 1e-13) for a small
wide two-layer net, and compared with GD: GD at step ``k`` sits near the flow
at ``t = eta k``, with a largest deviation that shrinks linearly in ``eta``
(Euler's method has global error O(eta)); at a step near ``2 / lambda_max``
GD oscillates and leaves the flow. Along the flow, Du et al.'s Theorem 3.2
bound ``||u(t) - y||^2 <= exp(-lam0 t) ||u(0) - y||^2`` holds, and the actual
late-phase exponent is ``-2 lambda_min(H)``, twice the bound's ``-lam0``: both are
exponents of ``||u - y||^2``, and ``lambda_min(H) ~ lam0`` where the bound only uses ``lam0 / 2``.

The activation is ``erf``, not ReLU. ReLU makes ``grad L`` discontinuous in
``W``: GD's patterns ``1{w_r.x_i >= 0}`` chatter across the switching surface
(thousands of back-and-forth flips per pair at small ``eta``), the flow slides
along it (a Filippov solution) and adaptive solvers stall there. ``erf`` keeps
the vector field smooth, has the closed-form kernel below, and Du et al.'s
Thm 3.2 argument (``lambda_min(H(t)) >= lam0 / 2`` along the flow) applies
unchanged. Model: ``f(x) = (1/sqrt(m)) sum_r a_r erf(w_r.x)``, only ``W`` trained,
``L = 1/2 ||u - y||^2``, init ``w_r ~ N(0, I)``, ``a_r ~ unif{-1, +1}``.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import DOP853
from scipy.special import erf

from shared import data, fit, net
from shared.plotting import subplots, width_colors

CONFIG = {  # fit_lo: bottom of the late-phase window of ||u(t) - y||^2 / ||u(0) - y||^2
    "quick": {"n": 10, "d": 40, "m": 400, "fit_lo": 1e-14},
    # the flow of 80 000 unknowns is solved less accurately relative to its residual: the
    # window stops where the rtol-1e-11 solve is still within a few per cent of the residual
    "full": {"n": 20, "d": 40, "m": 2000, "fit_lo": 1e-12},
}
_C_ERF = 2.0 / np.sqrt(np.pi)  # erf'(z) = _C_ERF * exp(-z^2)


# --------------------------------------------------------------------------- the erf net
def predict(X: np.ndarray, W: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Predictions ``u_i = (1/sqrt(m)) sum_r a_r erf(w_r.x_i)``, ``(n,)``.

    ``X (n, d)``, ``W (m, d)``, ``a (m,)``.
    """
    return erf(X @ W.T) @ a / np.sqrt(W.shape[0])


def grad_W(X: np.ndarray, y: np.ndarray, W: np.ndarray, a: np.ndarray):
    """``dL/dw_r = (a_r / sqrt(m)) sum_i (u_i - y_i) erf'(w_r.x_i) x_i`` and the predictions.

    Returns
    -------
    g : (m, d) ndarray
    u : (n,) ndarray
    """
    Z = X @ W.T  # (n, m)
    c = a / np.sqrt(W.shape[0])  # (m,)
    u = erf(Z) @ c  # (n,)
    D = _C_ERF * np.exp(-Z * Z) * (u - y)[:, None]  # (n, m)
    return (D.T @ X) * c[:, None], u


def gram(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Finite-width kernel ``H(W) (n, n)``: ``(1/m) x_i.x_j sum_r erf'(w_r.x_i) erf'(w_r.x_j)``.

    It equals ``J J^T`` with ``J`` the Jacobian of ``u`` in ``W``, since ``a_r^2 = 1``.
    """
    S = _C_ERF * np.exp(-((X @ W.T) ** 2))  # (n, m)
    return (X @ X.T) * (S @ S.T) / W.shape[0]


def h_inf(X: np.ndarray) -> np.ndarray:
    """Infinite-width kernel ``E_w[x_i.x_j erf'(w.x_i) erf'(w.x_j)]``, ``w ~ N(0, I_d)``.

    With ``(w.x_i, w.x_j) ~ N(0, S)``, ``S = [[|x_i|^2, x_i.x_j], [x_i.x_j, |x_j|^2]]``,
    ``E exp(-z^T z) = det(I + 2 S)^(-1/2)``, so
    ``H_inf_ij = (4/pi) x_i.x_j / sqrt((1 + 2|x_i|^2)(1 + 2|x_j|^2) - 4 (x_i.x_j)^2)``
    (the erf counterpart of Du et al. 2019, Sec. 3; diagonal ``4 / (pi sqrt(5))`` for unit rows).
    """
    K = X @ X.T  # (n, n)
    q = 1.0 + 2.0 * np.diag(K)  # (n,)
    return (4.0 / np.pi) * K / np.sqrt(np.outer(q, q) - 4.0 * K**2)


# --------------------------------------------------------------------------- flow and GD
def flow_predictions(X, y, W0, a, t_grid: np.ndarray, *, rtol: float, atol: float):
    """Integrate ``dW/dt = -grad L(W)`` and return the predictions at the times ``t_grid``.

    DOP853 (Hairer's 8th-order Runge-Kutta) is stepped by hand; each step's
    7th-order dense output is evaluated at the grid times it covers, so memory
    stays ``O(n len(t_grid))`` instead of ``O(m d len(t_grid))``.

    Returns
    -------
    U : (len(t_grid), n) ndarray, ``u(t_j)``.
    W_end : (m, d) ndarray, ``W(t_grid[-1])``.
    n_evals : int, gradient evaluations used.
    """
    shape = W0.shape

    def rhs(_t, w):
        return -grad_W(X, y, w.reshape(shape), a)[0].ravel()

    solver = DOP853(rhs, 0.0, W0.ravel().copy(), t_grid[-1], rtol=rtol, atol=atol)
    U = np.empty((t_grid.size, X.shape[0]))
    U[0] = predict(X, W0, a)
    j = 1
    while j < t_grid.size:
        msg = solver.step()
        if solver.status == "failed":
            raise RuntimeError(f"gradient flow: the ODE solver failed at t={solver.t:g}: {msg}")
        dense = solver.dense_output()
        while j < t_grid.size and t_grid[j] <= solver.t:
            U[j] = predict(X, dense(t_grid[j]).reshape(shape), a)
            j += 1
    return U, solver.y.reshape(shape), solver.nfev


def gd_predictions(X, y, W0, a, *, eta: float, steps: int, every: int) -> np.ndarray:
    """Full-batch GD ``W(k+1) = W(k) - eta grad L(W(k))``, recording predictions.

    Predictions are kept at ``k = 0, every, 2 every, ...``.

    Returns
    -------
    U : (steps // every + 1, n) ndarray
    """
    W = W0.copy()
    out = []
    for k in range(steps + 1):
        g, u = grad_W(X, y, W, a)
        if k % every == 0:
            out.append(u)
        W -= eta * g
    return np.array(out)


def spectral_slope(H: np.ndarray, R: np.ndarray, window: np.ndarray, *, dt: float) -> float:
    """Slope in ``t`` of ``log ||r(t)||^2`` that a frozen kernel ``H`` predicts in ``window``.

    From the residual ``r_a`` at the first grid point of the window, the kernel
    regime gives ``r(t_a + s) = exp(-H s) r_a`` (Du et al. 2019, Sec. 3:
    ``du/dt = -H (u - y)``), i.e. ``||r||^2 = sum_i exp(-2 lambda_i s) (v_i.r_a)^2``;
    that curve is fitted on the same grid points as the flow.

    Parameters
    ----------
    H : (n, n) ndarray; R : (len(t_grid), n) ndarray of residuals on a grid of spacing ``dt``;
    window : (len(t_grid),) bool.
    """
    lam, V = np.linalg.eigh(H)
    k = np.flatnonzero(window)
    proj2 = (V.T @ R[k[0]]) ** 2  # (n,)
    s = dt * (k - k[0]).astype(float)[:, None]  # (len(k), 1), time since the window opened
    curve = np.exp(-2.0 * lam[None, :] * s) @ proj2  # (len(k),)
    return fit.log_rate(curve, hi=1.0, lo=0.0) / dt


# --------------------------------------------------------------------------- experiment
FIT_HI = 1e-6  # top of the late-phase window of ||u(t) - y||^2 / ||u(0) - y||^2
KERNEL_DRAWS = 16  # independent inits for the Monte Carlo check of the closed-form H_inf


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Flow vs GD at several steps, Thm 3.2's bound along the flow and the late-phase exponent."""
    cfg = CONFIG["quick" if quick else "full"]
    n, d, m = cfg["n"], cfg["d"], cfg["m"]
    rng = np.random.default_rng(seed)

    # %% Set-up: data, init, the kernels, and one time grid for flow and GD
    small_q = [1, 2, 4, 8]  # small steps eta = q * delta
    large_q = 72  # eta * lambda_max(H(0)) = 1.8: stable, but GD oscillates
    X = data.unit_sphere(n, d, rng=rng)
    W0, a = net.init_net(d, m, rng=rng)
    H_inf = h_inf(X)
    lam_inf, V_inf = np.linalg.eigh(H_inf)  # (n,) ascending, (n, n)
    lam0 = float(lam_inf[0])
    # labels: the initial residual u(0) - y = -V_inf s has weight 1 on every eigenvector of H_inf
    y = predict(X, W0, a) + V_inf @ rng.choice([-1.0, 1.0], size=n)
    H0 = gram(X, W0)
    kernel_err = float(np.linalg.norm(H0 - H_inf, 2) / np.linalg.norm(H_inf, 2))
    # the closed form against Monte Carlo: the sqrt(m)-scaled error of KERNEL_DRAWS more inits
    kernel_errs = [
        np.linalg.norm(gram(X, net.init_net(d, m, rng=rng)[0]) - H_inf, 2)
        for _ in range(KERNEL_DRAWS)
    ]
    kernel_err_scaled = float(np.sqrt(m) * np.median(kernel_errs) / np.linalg.norm(H_inf, 2))
    ev0 = np.linalg.eigvalsh(H0)  # ascending
    delta = 0.025 / ev0[-1]  # smallest step; every step below is a multiple of it
    every = 8  # flow and GD compared on the grid t_j = 8 delta j
    T = 24.0 / ev0[0]  # 2 lambda_min(H) T = 48: the loss ratio ends near 1e-20, below the window
    n_grid = int(np.ceil(T / (every * delta)))
    steps_fine = n_grid * every  # in units of delta
    t_grid = delta * np.arange(0, steps_fine + 1, every)  # (n_grid + 1,)

    # %% Gradient flow: DOP853 at two tolerances, to bound the solver's own error
    U_flow, W_end, n_evals = flow_predictions(X, y, W0, a, t_grid, rtol=1e-13, atol=1e-15)
    U_loose, _, _ = flow_predictions(X, y, W0, a, t_grid, rtol=1e-11, atol=1e-13)
    r0 = float(np.linalg.norm(U_flow[0] - y))
    loss_ratio = np.sum((U_flow - y) ** 2, axis=1) / r0**2  # ||u(t) - y||^2 / ||u(0) - y||^2
    progress(1, len(small_q) + 2, "flow")

    # %% GD: small steps on the flow's grid, and one large step that oscillates
    def deviation(q: int):
        U = gd_predictions(X, y, W0, a, eta=q * delta, steps=steps_fine // q, every=every // q)
        return np.linalg.norm(U - U_flow, axis=1) / r0, np.sum((U - y) ** 2, axis=1) / r0**2

    devs, gd_curves = [], {}
    for i, q in enumerate(small_q):
        dev, curve = deviation(q)
        devs.append(dev.max())
        gd_curves[q] = curve
        progress(i + 2, len(small_q) + 2, f"GD eta={q * delta:.3g}")
    # the large step does not divide the grid spacing: compare at its own multiples of 72 delta
    U_big = gd_predictions(X, y, W0, a, eta=large_q * delta, steps=steps_fine // large_q, every=1)
    idx = np.arange(U_big.shape[0]) * large_q // every  # grid index of step k
    dev_big = np.linalg.norm(U_big - U_flow[idx], axis=1) / r0
    # the same deviation in the kernel regime with H(0) frozen: mode i of the residual is
    # multiplied by (1 - eta lambda_i)^k under GD and by exp(-eta lambda_i k) along the flow
    lam_h0, V_h0 = np.linalg.eigh(H0)
    c_big = large_q * delta * lam_h0  # (n,) eta lambda_i
    k_big = np.arange(U_big.shape[0])[:, None]  # (K + 1, 1)
    modes = (1.0 - c_big) ** k_big - np.exp(-c_big * k_big)  # (K + 1, n)
    dev_big_pred = np.linalg.norm(modes * (V_h0.T @ (U_flow[0] - y)), axis=1) / r0
    progress(len(small_q) + 2, len(small_q) + 2, "large step")

    # %% Measure: deviation against eta, the bound along the flow, the late-phase exponent
    etas = delta * np.asarray(small_q, dtype=float)
    lam_min_end = float(np.linalg.eigvalsh(gram(X, W_end))[0])
    lam_min_along = float(np.linalg.eigvalsh(gram(X, W0))[0])
    dt = every * delta
    # late phase: d/dt log ||u(t) - y||^2 fitted where fit_lo <= ratio <= 1e-6
    window = (loss_ratio >= cfg["fit_lo"]) & (loss_ratio <= FIT_HI)
    slope = fit.log_rate(loss_ratio, hi=FIT_HI, lo=cfg["fit_lo"]) / dt
    spectral = spectral_slope(gram(X, W_end), U_flow - y, window, dt=dt)
    # the two solves differ by far less than the residual inside the fit window
    tol_gap = np.linalg.norm(U_flow - U_loose, axis=1) / np.linalg.norm(U_flow - y, axis=1)
    # ... and what that does to the fitted slope: the same fit on the looser solve, same window
    loss_loose = np.sum((U_loose - y) ** 2, axis=1) / r0**2
    slope_loose = np.polyfit(np.flatnonzero(window) * dt, np.log(loss_loose[window]), 1)[0]
    slope_tight = np.polyfit(np.flatnonzero(window) * dt, np.log(loss_ratio[window]), 1)[0]
    with np.errstate(under="ignore"):
        bound = np.exp(-lam0 * t_grid)
    return {
        "lam0": lam0,
        "lambda_min_H0": float(ev0[0]),
        "lambda_min_H_end": lam_min_end,
        "lambda_max_H0": float(ev0[-1]),
        "kernel_init_rel_err": kernel_err,
        "kernel_init_rel_err_scaled": kernel_err_scaled,
        "ode_gradient_evals": int(n_evals),
        "final_loss_ratio": float(loss_ratio[-1]),
        "max_ratio_over_bound": float(np.max(loss_ratio[1:] / bound[1:])),
        "flow_exponent": slope,
        "flow_exponent_over_2lam_min": slope / (-2.0 * lam_min_end),
        "flow_exponent_over_lam0": slope / (-lam0),
        "flow_exponent_over_spectral": slope / spectral,
        "ode_tolerance_gap": float(tol_gap[window].max()),
        # floored at the rounding of a fitted slope, so that two identical fits read -16, not -inf
        "ode_tolerance_log10_slope_gap": float(
            np.log10(max(abs(slope_loose / slope_tight - 1.0), 1e-16))
        ),
        "dev_smallest_eta": float(devs[0]),
        "dev_eta_exponent": fit.power_law(etas, np.asarray(devs))[0],
        "dev_large_eta": float(dev_big.max()),
        "dev_large_eta_pred": float(dev_big_pred.max()),
        "dev_large_eta_over_pred": float(dev_big.max() / dev_big_pred.max()),
        "eta_lambda_max_large": large_q * delta * float(ev0[-1]),
        "lambda_min_H0_check": lam_min_along,
        # series
        "t_fit_start": float(t_grid[window][0]),
        "loss_ratio_fit_start": float(loss_ratio[window][0]),
        "t": t_grid,
        "loss_ratio_flow": loss_ratio,
        "bound": bound,
        "etas": etas,
        "eta_lambda_max": etas * ev0[-1],
        "devs": np.asarray(devs),
        "gd_loss_ratio_small": gd_curves[small_q[-1]],
        "t_big": large_q * delta * np.arange(U_big.shape[0]),
        "gd_loss_ratio_big": np.sum((U_big - y) ** 2, axis=1) / r0**2,
    }


def plot(result: dict):
    fig, axes = subplots(1, 2, width=4.6, height=3.5)
    ax = axes[0]
    t = np.asarray(result["t"])
    ax.semilogy(t, result["loss_ratio_flow"], "k-", lw=2, label="gradient flow (DOP853)")
    eta_s = result["etas"][-1]
    ax.semilogy(
        t,
        result["gd_loss_ratio_small"],
        "C0--",
        label=rf"GD, $\eta\lambda_{{max}}$={eta_s * result['lambda_max_H0']:.2f} (at $t=\eta k$)",
    )
    ax.semilogy(
        result["t_big"],
        result["gd_loss_ratio_big"],
        "C3.",
        ms=3,
        label=rf"GD, $\eta\lambda_{{max}}$={result['eta_lambda_max_large']:.1f}",
    )
    ax.semilogy(t, result["bound"], "C2:", lw=2, label=r"Thm 3.2 bound $e^{-\lambda_0 t}$")
    ta, ra = result["t_fit_start"], result["loss_ratio_fit_start"]
    late = t >= ta
    ax.semilogy(
        t[late],
        3 * ra * np.exp(-2 * result["lambda_min_H_end"] * (t[late] - ta)),
        "C1-.",
        lw=1,
        label=r"slope $-2\lambda_{min}(H)$ (offset x3)",
    )
    ax.set(
        xlabel="time t (GD: t = eta k)",
        ylabel=r"$\|u(t)-y\|^2 / \|u(0)-y\|^2$",
        title="(a) flow, GD and the bound",
        ylim=(1e-16, 3),
    )
    ax.legend(fontsize=7)

    ax = axes[1]
    etas = np.asarray(result["etas"])
    colors = width_colors(len(etas))
    ax.loglog(etas, result["devs"], "k-", lw=1)
    for e, dv, c in zip(etas, result["devs"], colors, strict=True):
        ax.loglog([e], [dv], "o", color=c)
    ax.loglog(etas, result["devs"][0] * etas / etas[0], "k:", label=r"$\propto \eta$")
    eta_big = result["eta_lambda_max_large"] / result["lambda_max_H0"]
    ax.loglog(
        [eta_big],
        [result["dev_large_eta"]],
        "C3s",
        label=rf"$\eta\lambda_{{max}}$={result['eta_lambda_max_large']:.1f}",
    )
    ax.set(
        xlabel=r"step size $\eta$",
        ylabel=r"$\max_k \|u_{GD}(k)-u(\eta k)\| / \|u(0)-y\|$",
        title=f"(b) GD vs flow: exponent {result['dev_eta_exponent']:.2f}",
    )
    ax.legend(fontsize=7)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
