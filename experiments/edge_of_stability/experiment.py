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
CONFIG = {
    "quick": {"targets": [30.0], "steps": 10000, "every": 25},  # targets: 2 / eta
    "full": {"targets": [26.0, 30.0, 34.0, 38.0], "steps": 50000, "every": 50},
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
    """``L = mean_i 1/2 (f(x_i) - y_i)^2`` and ``dL/dtheta`` (explicit backprop).

    With ``t_ir = tanh(w_r x_i + b_r)``, ``s_ir = 1 - t_ir^2`` and ``e_i = (f_i - y_i) / n``:
    ``dL/dw_r = sum_i e_i v_r s_ir x_i``, ``dL/db_r = sum_i e_i v_r s_ir``,
    ``dL/dv_r = sum_i e_i t_ir``, ``dL/dc = sum_i e_i``.

    Returns
    -------
    L : float
    g : (3 m + 1,) ndarray
    """
    w, b, v, c = split(theta)
    T = np.tanh(x[:, None] * w + b)  # (n, m)
    e = (T @ v + c - y) / x.size  # (n,)
    D = (1.0 - T * T) * v  # (n, m), df_i / d(pre-activation_r)
    g = np.concatenate([(e * x) @ D, e @ D, e @ T, [e.sum()]])
    return 0.5 * x.size * float(e @ e), g


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
    """Dense Hessian by central differences of the exact gradient, one column per parameter."""
    p = theta.size
    Hs = np.empty((p, p))
    for j in range(p):
        e = np.zeros(p)
        e[j] = eps
        Hs[:, j] = (grad(theta + e, x, y) - grad(theta - e, x, y)) / (2 * eps)
    return 0.5 * (Hs + Hs.T)


def sharpness(theta, x, y, v0, *, eps: float = 1e-5, tol: float = 1e-9, max_iter: int = 500):
    """Top Hessian eigenvalue by power iteration on finite-difference Hessian-vector products.

    ``H v ~ (g(theta + eps v) - g(theta - eps v)) / (2 eps)`` with ``g`` the exact
    gradient (error O(eps^2) from the third derivative, O(1e-16 / eps) from rounding).

    Starts from ``v0`` (the previous eigenvector: warm start) and stops when the
    Rayleigh quotient changes by less than ``tol`` relative. Power iteration
    finds the eigenvalue of largest modulus; the negative eigenvalues here are
    small (checked against :func:`hessian_exact`).

    Returns
    -------
    lam : float
    v : (3 m + 1,) ndarray, unit eigenvector estimate.
    """
    vec = v0 / np.linalg.norm(v0)
    lam = 0.0
    for _ in range(max_iter):
        hv = (grad(theta + eps * vec, x, y) - grad(theta - eps * vec, x, y)) / (2 * eps)
        lam_new = float(vec @ hv)
        vec = hv / np.linalg.norm(hv)
        if abs(lam_new - lam) <= tol * abs(lam_new):
            break
        lam = lam_new
    return lam_new, vec


# --------------------------------------------------------------------------- training
def train(theta0, x, y, *, eta: float, steps: int, every: int, rng: np.random.Generator):
    """Full-batch GD ``theta <- theta - eta grad L``; sharpness every ``every`` steps.

    Returns
    -------
    loss : (steps + 1,) ndarray
    sharp_steps : (steps // every + 1,) ndarray of int
    sharp : (steps // every + 1,) ndarray
    theta : (3 m + 1,) ndarray, the final parameters.
    vec : the last sharpness eigenvector.
    """
    theta = theta0.copy()
    vec = rng.standard_normal(theta.size)
    loss, ks, sharp = np.empty(steps + 1), [], []
    for k in range(steps + 1):
        loss[k], g = loss_and_grad(theta, x, y)
        if k % every == 0 or k == steps:
            lam, vec = sharpness(theta, x, y, vec)
            ks.append(k)
            sharp.append(lam)
        if k < steps:
            theta -= eta * g
    return loss, np.array(ks), np.array(sharp), theta, vec


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


def summarise(loss, ks, sharp, eta, steps) -> dict:
    """Claims of one run: sharpening, hovering at 2/eta, non-monotone falling loss."""
    target = 2.0 / eta
    late = ks >= (1.0 - LAST) * steps
    return {
        "sharp_init_over_target": float(sharp[0] / target),
        "sharpening": float(sharp.max() / sharp[0]),
        "late_median_over_target": float(np.median(sharp[late]) / target),
        "late_q10_over_target": float(np.quantile(sharp[late], 0.1) / target),
        "late_q90_over_target": float(np.quantile(sharp[late], 0.9) / target),
        "loss_increases": int(np.count_nonzero(np.diff(loss) > 0)),
        "final_loss_ratio": float(loss[-1] / loss[0]),
    }


def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """GD on the Chebyshev toy at one (quick) or four (full) step sizes; sharpness traced."""
    cfg = CONFIG["quick" if quick else "full"]
    targets, steps, every = cfg["targets"], cfg["steps"], cfg["every"]
    rng_init, rng_power = np.random.default_rng(seed).spawn(2)

    # %% Set-up: the Chebyshev data and one init for every step size
    x, y = chebyshev_data()
    theta0 = init_params(WIDTH, rng=rng_init)

    # %% Train: GD at each eta = 2 / target, sharpness traced, Hessian cross-checked
    out: dict = {"targets": np.asarray(targets)}
    runs = []
    hess_errs, sharp_errs = [], []
    for i, target in enumerate(targets):
        eta = 2.0 / target
        loss, ks, sharp, theta, _ = train(
            theta0, x, y, eta=eta, steps=steps, every=every, rng=rng_power
        )
        if i == 0:  # cross-check at init and at the end of the first run
            he, se = crosscheck(theta0, x, y, sharp[0])
            hess_errs.append(he)
            sharp_errs.append(se)
        he, se = crosscheck(theta, x, y, sharp[-1])
        hess_errs.append(he)
        sharp_errs.append(se)
        runs.append(summarise(loss, ks, sharp, eta, steps))
        out[f"loss_{i}"] = loss[::every]
        out[f"sharp_{i}"] = sharp
        progress(i + 1, len(targets) + 1, f"2/eta = {target:g}")

    # %% Control: a step so small that the sharpness never reaches 2 / eta (half as many steps)
    eta_c = 2.0 / CONTROL_TARGET
    loss_c, ks_c, sharp_c, _, _ = train(
        theta0, x, y, eta=eta_c, steps=steps // 2, every=every, rng=rng_power
    )
    out["control_loss_increases"] = int(np.count_nonzero(np.diff(loss_c) > 0))
    out["control_sharp_max_over_target"] = float(sharp_c.max() / CONTROL_TARGET)
    out["control_final_loss_ratio"] = float(loss_c[-1] / loss_c[0])
    out["loss_control"] = loss_c[::every]
    out["sharp_control"] = sharp_c
    out["sharp_steps_control"] = ks_c
    out["control_target"] = CONTROL_TARGET
    out["sharp_steps"] = ks
    out["every"] = every

    # %% Measure: per step size for the figure, the worst case over step sizes for the checks
    for key in runs[0]:
        vals = [r[key] for r in runs]
        out[f"{key}_per_eta"] = np.asarray(vals)
    # scalars: the worst case over step sizes, so one check covers every eta
    out["sharp_init_over_target_max"] = max(r["sharp_init_over_target"] for r in runs)
    out["sharpening_min"] = min(r["sharpening"] for r in runs)
    out["late_median_over_target_min"] = min(r["late_median_over_target"] for r in runs)
    out["late_median_over_target_max"] = max(r["late_median_over_target"] for r in runs)
    out["late_q10_over_target_min"] = min(r["late_q10_over_target"] for r in runs)
    out["late_q90_over_target_max"] = max(r["late_q90_over_target"] for r in runs)
    out["loss_increases_min"] = min(r["loss_increases"] for r in runs)
    out["final_loss_ratio_max"] = max(r["final_loss_ratio"] for r in runs)
    out["hessian_fd_rel_err"] = max(hess_errs)
    out["power_iteration_rel_err"] = max(sharp_errs)
    out["n_params"] = int(theta0.size)
    return out


def plot(result: dict):
    fig, axes = subplots(1, 2, width=4.8, height=3.5)
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
        title="(a) sharpness rises to 2/eta and hovers",
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
        title="(b) loss falls, non-monotonically",
    )
    ax.legend(fontsize=7)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
