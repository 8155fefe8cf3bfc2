"""edge_of_stability: full-batch GD drives the sharpness up to 2 / eta and holds it there.

Cohen, Kaur, Li, Kolter, Talwalkar (ICLR 2021), "Gradient Descent on Neural
Networks Typically Occurs at the Edge of Stability", Sec. 3, in their smallest
setting: 20 equally spaced points on [-1, 1],
target ``y = T_4(x) = 8 x^4 - 8 x^2 + 1``, one tanh hidden layer of width 100
with biases, loss ``L = mean_i 1/2 (f(x_i) - y_i)^2``, full-batch GD at a fixed
step ``eta``. The sharpness ``S = lambda_max(Hessian of L)`` first rises
(progressive sharpening) until it reaches ``2 / eta``, the stability limit of GD
on a quadratic; instead of diverging, GD then keeps ``S`` hovering at
``2 / eta`` while the loss keeps falling, non-monotonically.

Net (PyTorch ``nn.Linear`` default init, as in the paper): ``theta = (w, b, v, c)``,
``f(x) = sum_r v_r tanh(w_r x + b_r) + c`` with ``w_r, b_r ~ U(-1, 1)`` and
``v_r, c ~ U(-1/sqrt(100), 1/sqrt(100))``; 301 parameters. The sharpness is
computed by power iteration on Hessian-vector products taken as central
differences of the exact gradient, and cross-checked against the exact dense
Hessian (Gauss-Newton term plus residual term), itself checked against
finite differences of the gradient.
"""

from __future__ import annotations

import numpy as np

from shared.plotting import subplots, width_colors

N_POINTS, WIDTH = 20, 100  # the paper's setting, both modes
CONFIG = {  # targets: 2 / eta; inits: independent inits trained side by side at every target
    "quick": {"targets": [30.0], "steps": 20000, "control_steps": 5000, "every": 50, "inits": 8},
    "full": {
        "targets": [26.0, 30.0, 34.0, 38.0],
        "steps": 50000,
        "control_steps": 25000,
        "every": 50,
        "inits": 8,
    },
}


# --------------------------------------------------------------------------- the tanh net
def split(theta: np.ndarray):
    """``theta (3 m + 1,)`` -> ``w (m,)``, ``b (m,)``, ``v (m,)``, ``c`` (views)."""
    m = (theta.size - 1) // 3
    return theta[:m], theta[m : 2 * m], theta[2 * m : 3 * m], theta[3 * m]


def init_params(m: int, *, rng: np.random.Generator) -> np.ndarray:
    """PyTorch's ``nn.Linear`` default init: every weight and bias ``~ U(-1, 1) / sqrt(fan_in)``.

    Returns ``theta (3 m + 1,)`` ordered as in :func:`split`.
    """
    w, b = rng.uniform(-1.0, 1.0, size=(2, m))  # fan_in = 1
    v = rng.uniform(-1.0, 1.0, size=m) / np.sqrt(m)  # fan_in = m
    c = rng.uniform(-1.0, 1.0) / np.sqrt(m)
    return np.concatenate([w, b, v, [c]])


def loss_and_grad(theta: np.ndarray, x: np.ndarray, y: np.ndarray):
    """``L = mean_i 1/2 (f(x_i) - y_i)^2`` and ``dL/dtheta`` (explicit backprop), for one
    parameter vector ``theta (3 m + 1,)`` or a batch ``theta (R, 3 m + 1)`` of independent nets.

    With ``t_ir = tanh(w_r x_i + b_r)``, ``s_ir = 1 - t_ir^2`` and ``e_i = (f_i - y_i) / n``:
    ``dL/dw_r = sum_i e_i v_r s_ir x_i``, ``dL/db_r = sum_i e_i v_r s_ir``,
    ``dL/dv_r = sum_i e_i t_ir``, ``dL/dc = sum_i e_i``.

    Returns
    -------
    L : float, or (R,) ndarray for a batch
    g : ndarray of the shape of ``theta``
    """
    single = theta.ndim == 1
    th = theta[None, :] if single else theta  # (R, 3 m + 1)
    m = (th.shape[1] - 1) // 3
    w, b, v, c = th[:, :m], th[:, m : 2 * m], th[:, 2 * m : 3 * m], th[:, 3 * m]
    T = np.tanh(x[None, :, None] * w[:, None, :] + b[:, None, :])  # (R, n, m)
    e = (np.matmul(T, v[:, :, None])[:, :, 0] + c[:, None] - y) / x.size  # (R, n)
    D = (1.0 - T * T) * v[:, None, :]  # (R, n, m), df_i / d(pre-activation_r)
    g_wb = np.matmul(np.stack([e * x, e], axis=1), D)  # (R, 2, m)
    g_v = np.matmul(e[:, None, :], T)[:, 0]  # (R, m)
    g = np.concatenate([g_wb[:, 0], g_wb[:, 1], g_v, e.sum(axis=1, keepdims=True)], axis=1)
    L = 0.5 * x.size * np.sum(e * e, axis=1)  # (R,)
    return (float(L[0]), g[0]) if single else (L, g)


def grad(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dL/dtheta`` alone, ``(3 m + 1,)``."""
    return loss_and_grad(theta, x, y)[1]


def hessian_exact(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Dense Hessian ``(1/n) (J^T J + sum_i r_i d^2 f_i / dtheta^2)``, ``(3 m + 1, 3 m + 1)``.

    ``J (n, 3 m + 1)`` is the Jacobian of ``f`` (columns ``v_r s_ir x_i``,
    ``v_r s_ir``, ``t_ir``, ``1``). The second derivatives of ``f_i`` couple only
    the parameters of one neuron: with ``s'_ir = -2 t_ir s_ir``,
    ``d2f/dw_r^2 = v_r s'_ir x_i^2``, ``d2f/dw_r db_r = v_r s'_ir x_i``,
    ``d2f/db_r^2 = v_r s'_ir``, ``d2f/dw_r dv_r = s_ir x_i``, ``d2f/db_r dv_r = s_ir``.
    """
    w, b, v, c = split(theta)
    m, n = w.size, x.size
    T = np.tanh(np.outer(x, w) + b)  # (n, m)
    S = 1.0 - T * T  # (n, m)
    r = T @ v + c - y  # (n,)
    J = np.hstack([S * v * x[:, None], S * v, T, np.ones((n, 1))])  # (n, 3 m + 1)
    Hs = J.T @ J
    S1 = -2.0 * T * S * v  # (n, m), v_r s'_ir
    i = np.arange(m)
    for (p, q), val in {
        (0, 0): (r * x * x) @ S1,
        (0, 1): (r * x) @ S1,
        (1, 1): r @ S1,
        (0, 2): (r * x) @ S,
        (1, 2): r @ S,
    }.items():
        Hs[p * m + i, q * m + i] += val
        if p != q:
            Hs[q * m + i, p * m + i] += val
    return Hs / n


def hessian_fd(theta: np.ndarray, x: np.ndarray, y: np.ndarray, *, eps: float = 1e-5) -> np.ndarray:
    """Dense Hessian by central differences of the exact gradient, one column per parameter
    (all ``3 m + 1`` perturbed nets evaluated as one batch)."""
    E = eps * np.eye(theta.size)  # (p, p), row j perturbs parameter j
    G = grad(theta + E, x, y) - grad(theta - E, x, y)  # (p, p), row j: column j of the Hessian
    Hs = G.T / (2 * eps)
    return 0.5 * (Hs + Hs.T)


def sharpness(theta, x, y, v0, *, eps: float = 1e-5, tol: float = 1e-9, max_iter: int = 500):
    """Top Hessian eigenvalue by power iteration on finite-difference Hessian-vector products.

    ``H v ~ (g(theta + eps v) - g(theta - eps v)) / (2 eps)`` with ``g`` the exact
    gradient (error O(eps^2) from the third derivative, O(1e-16 / eps) from rounding).
    ``theta`` and ``v0`` are ``(3 m + 1,)`` or a batch ``(R, 3 m + 1)``, one net per row.

    Starts from ``v0`` (the previous eigenvector: warm start) and stops when the
    Rayleigh quotient of every row changes by less than ``tol`` relative. Power iteration
    finds the eigenvalue of largest modulus; the negative eigenvalues here are
    small (checked against :func:`hessian_exact`).

    Returns
    -------
    lam : float, or (R,) ndarray
    v : unit eigenvector estimates, the shape of ``theta``.
    """
    single = theta.ndim == 1
    th = theta[None, :] if single else theta  # (R, 3 m + 1)
    vec = (v0[None, :] if single else v0) / np.linalg.norm(v0, axis=-1).reshape(-1, 1)
    lam = np.zeros(th.shape[0])
    for _ in range(max_iter):
        hv = (grad(th + eps * vec, x, y) - grad(th - eps * vec, x, y)) / (2 * eps)
        lam_new = np.sum(vec * hv, axis=1)  # (R,) Rayleigh quotients
        vec = hv / np.linalg.norm(hv, axis=1, keepdims=True)
        if np.all(np.abs(lam_new - lam) <= tol * np.abs(lam_new)):
            break
        lam = lam_new
    return (float(lam_new[0]), vec[0]) if single else (lam_new, vec)


# --------------------------------------------------------------------------- training
def train(theta0, x, y, *, eta: float, steps: int, every: int, rng: np.random.Generator):
    """Full-batch GD ``theta <- theta - eta grad L`` on a batch of nets ``theta0 (R, 3 m + 1)``,
    side by side; the sharpness of every net every ``every`` steps.

    Returns
    -------
    loss : (steps + 1, R) ndarray
    sharp_steps : (steps // every + 1,) ndarray of int
    sharp : (steps // every + 1, R) ndarray
    theta : (R, 3 m + 1) ndarray, the final parameters.
    descent : (R,) ndarray, ``min_k (L(k) - L(k+1)) / (eta ||grad L(k)||^2)``, how much of the
        first-order decrease every step kept (1 on a flat landscape, ``1 - eta S / 2`` on a
        quadratic of curvature ``S``, negative on a step that raised the loss).
    """
    theta = theta0.copy()
    vec = rng.standard_normal(theta.shape)
    loss, ks, sharp = np.empty((steps + 1, theta.shape[0])), [], []
    descent = np.full(theta.shape[0], np.inf)
    predicted = None  # eta ||grad L(k - 1)||^2, the first-order decrease of the last step
    for k in range(steps + 1):
        loss[k], g = loss_and_grad(theta, x, y)
        if predicted is not None:
            descent = np.minimum(descent, (loss[k - 1] - loss[k]) / predicted)
        if k % every == 0 or k == steps:
            lam, vec = sharpness(theta, x, y, vec)
            ks.append(k)
            sharp.append(lam)
        if k < steps:
            predicted = eta * np.sum(g * g, axis=1)
            theta -= eta * g
    return loss, np.array(ks), np.array(sharp), theta, descent


def chebyshev_data():
    """``x (20,)`` equally spaced on [-1, 1] and ``y = T_4(x)``."""
    x = np.linspace(-1.0, 1.0, N_POINTS)
    return x, np.polynomial.chebyshev.chebval(x, [0, 0, 0, 0, 1])


def crosscheck(theta, x, y, lam_power: float) -> tuple[float, float]:
    """Relative errors: exact Hessian vs finite differences, power-iteration sharpness vs dense.

    The second compares ``lam_power`` with the eigenvalue of largest modulus of
    the dense exact Hessian (``eigvalsh``), which is what power iteration targets.
    """
    He = hessian_exact(theta, x, y)
    Hf = hessian_fd(theta, x, y)
    hess_err = float(np.linalg.norm(He - Hf) / np.linalg.norm(He))
    ev = np.linalg.eigvalsh(He)
    top = ev[-1] if abs(ev[-1]) >= abs(ev[0]) else ev[0]
    sharp_err = abs(lam_power - top) / abs(top)
    assert hess_err < 1e-4, f"exact Hessian disagrees with finite differences: {hess_err:.2e}"
    assert sharp_err < 1e-3, f"power iteration missed the top eigenvalue: {sharp_err:.2e}"
    return hess_err, sharp_err


# --------------------------------------------------------------------------- experiment
LAST = 0.4  # "the last part of training": the final 40% of steps
CONTROL_TARGET = 60.0  # 2 / eta of the control run, far above the sharpness it reaches
CONVERGED = 0.1  # a run "ends well below its start" when L(K) / L(0) <= 0.1
# at least 4 of the 8 inits must end below CONVERGED (expected.toml, final_loss_ratio_4th_max)
MIN_CONVERGED = 4


def summarise(loss, ks, sharp, eta, steps) -> dict:
    """Claims of one step size, per init: sharpening, hovering at 2/eta, non-monotone falling
    loss. ``loss (steps + 1, R)``, ``sharp (len(ks), R)``; every value is an ``(R,)`` array."""
    target = 2.0 / eta
    late = ks >= (1.0 - LAST) * steps
    return {
        "sharp_init_over_target": sharp[0] / target,
        "sharpening": sharp.max(axis=0) / sharp[0],
        "late_median_over_target": np.median(sharp[late], axis=0) / target,
        "late_q10_over_target": np.quantile(sharp[late], 0.1, axis=0) / target,
        "late_q90_over_target": np.quantile(sharp[late], 0.9, axis=0) / target,
        "loss_increases": np.count_nonzero(np.diff(loss, axis=0) > 0, axis=0),
        "final_loss_ratio": loss[-1] / loss[0],
    }


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """GD on the Chebyshev toy at one (quick) or four (full) step sizes, from 8 inits each;
    sharpness traced."""
    cfg = CONFIG["quick" if quick else "full"]
    targets, steps, every, R = cfg["targets"], cfg["steps"], cfg["every"], cfg["inits"]
    rng_init, rng_power = np.random.default_rng(seed).spawn(2)

    # %% Set-up: the Chebyshev data and R inits, the same for every step size
    x, y = chebyshev_data()
    theta0 = np.stack([init_params(WIDTH, rng=rng_init) for _ in range(R)])  # (R, 3 m + 1)

    # %% Train: GD at each eta = 2 / target, sharpness traced, Hessian cross-checked on init 0
    out: dict = {"targets": np.asarray(targets), "inits": R}
    runs = []
    hess_errs, sharp_errs = [], []
    for i, target in enumerate(targets):
        eta = 2.0 / target
        loss, ks, sharp, theta, _ = train(
            theta0, x, y, eta=eta, steps=steps, every=every, rng=rng_power
        )
        if i == 0:  # cross-check at init and at the end of the first run
            he, se = crosscheck(theta0[0], x, y, sharp[0, 0])
            hess_errs.append(he)
            sharp_errs.append(se)
        he, se = crosscheck(theta[0], x, y, sharp[-1, 0])
        hess_errs.append(he)
        sharp_errs.append(se)
        runs.append(summarise(loss, ks, sharp, eta, steps))
        out[f"loss_{i}"] = loss[::every, 0]  # init 0, for the figure
        out[f"sharp_{i}"] = sharp[:, 0]
        out[f"sharp_median_{i}"] = np.median(sharp, axis=1)
        progress(i + 1, len(targets) + 1, f"2/eta = {target:g}")

    # %% Control: a step so small that the sharpness never reaches 2 / eta
    eta_c = 2.0 / CONTROL_TARGET
    loss_c, ks_c, sharp_c, _, descent_c = train(
        theta0, x, y, eta=eta_c, steps=cfg["control_steps"], every=every, rng=rng_power
    )
    out["control_loss_increases"] = int(np.count_nonzero(np.diff(loss_c, axis=0) > 0))
    out["control_descent_min"] = float(descent_c.min())
    out["control_sharp_max_over_target"] = float(sharp_c.max() / CONTROL_TARGET)
    out["control_final_loss_ratio"] = float(np.median(loss_c[-1] / loss_c[0]))
    out["loss_control"] = loss_c[::every, 0]
    out["sharp_control"] = sharp_c[:, 0]
    out["sharp_steps_control"] = ks_c
    out["control_target"] = CONTROL_TARGET
    out["sharp_steps"] = ks
    out["every"] = every

    # %% Measure: per step size and init for the figure; medians over the inits, and the
    # worst case over step sizes, for the checks
    for key in runs[0]:
        out[f"{key}_per_eta"] = np.array([r[key] for r in runs])  # (targets, R)
    med = {key: [float(np.median(r[key])) for r in runs] for key in runs[0]}
    out["sharp_init_over_target_max"] = max(med["sharp_init_over_target"])
    out["sharpening_min"] = min(med["sharpening"])
    out["late_median_over_target_min"] = min(med["late_median_over_target"])
    out["late_median_over_target_max"] = max(med["late_median_over_target"])
    out["late_q10_over_target_min"] = min(med["late_q10_over_target"])
    out["late_q90_over_target_max"] = max(med["late_q90_over_target"])
    out["loss_increases_min"] = min(med["loss_increases"])
    # an order of magnitude is the claim (hundreds of increases, against none in the control)
    out["loss_increases_log10_min"] = float(np.log10(max(out["loss_increases_min"], 0.1)))
    out["final_loss_ratio_max"] = max(float(r["final_loss_ratio"].max()) for r in runs)
    # at least MIN_CONVERGED of the R inits end below CONVERGED: the MIN_CONVERGED-th smallest
    # final ratio, worst over step sizes
    out["final_loss_ratio_4th_max"] = max(
        float(np.sort(r["final_loss_ratio"])[MIN_CONVERGED - 1]) for r in runs
    )
    out["converged_fraction_min"] = min(
        float(np.mean(r["final_loss_ratio"] <= CONVERGED)) for r in runs
    )
    out["hessian_fd_log10_rel_err"] = float(np.log10(max(hess_errs)))
    out["power_iteration_log10_rel_err"] = float(np.log10(max(sharp_errs)))
    out["n_params"] = int(theta0.shape[1])
    return out


def plot(result: dict):
    fig, axes = subplots(1, 3, width=4.4, height=3.5)
    targets = np.asarray(result["targets"])
    ks = np.asarray(result["sharp_steps"])
    colors = width_colors(len(targets)) if len(targets) > 1 else ["C0"]
    ct = result["control_target"]
    ax = axes[0]
    for i, (t, c) in enumerate(zip(targets, colors, strict=True)):
        ax.plot(ks, result[f"sharp_{i}"], color=c, lw=1, label=rf"$2/\eta$ = {t:g}")
        ax.axhline(t, color=c, ls=":", lw=1)
    ax.plot(
        result["sharp_steps_control"],
        result["sharp_control"],
        color="0.5",
        lw=1,
        ls="--",
        label=rf"control, $2/\eta$ = {ct:g} (off the axis)",
    )
    ax.set(
        xlabel="step k",
        ylabel="sharpness  $\\lambda_{max}(\\nabla^2 L)$",
        title="(a) sharpness rises to 2/eta and hovers (init 0)",
    )
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[1]
    every = int(result["every"])
    k_loss = np.arange(len(result["loss_0"])) * every
    for i, (t, c) in enumerate(zip(targets, colors, strict=True)):
        ax.semilogy(k_loss, result[f"loss_{i}"], color=c, lw=1, label=rf"$2/\eta$ = {t:g}")
    k_control = np.arange(len(result["loss_control"])) * every
    ax.semilogy(
        k_control,
        result["loss_control"],
        color="0.5",
        lw=1,
        ls="--",
        label=rf"control, $2/\eta$ = {ct:g}",
    )
    ax.set(
        xlabel="step k",
        ylabel=f"training loss L (every {every}th step)",
        title="(b) loss falls, non-monotonically (init 0)",
    )
    ax.legend(fontsize=7)
    ax = axes[2]
    final = np.asarray(result["final_loss_ratio_per_eta"])  # (targets, inits)
    jitter = np.linspace(-0.15, 0.15, final.shape[1])
    for i, c in enumerate(colors):
        ax.semilogy(i + jitter, final[i], "o", color=c, ms=4, mfc="none")
    ax.axhline(CONVERGED, color="k", ls=":", lw=1, label=f"L(K) / L(0) = {CONVERGED:g}")
    ax.set(
        xticks=range(len(targets)),
        xticklabels=[f"{t:g}" for t in targets],
        xlabel=r"$2/\eta$",
        ylabel="final L(K) / L(0), every init",
        title=f"(c) {final.shape[1]} inits per step size",
    )
    ax.legend(fontsize=7)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
