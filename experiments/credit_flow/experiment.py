"""credit_flow: a minimal reverse-mode autodiff reproduces the hand-derived gradients.

Du et al. (ICLR 2019) state the gradient of the two-layer ReLU net by hand,
``dL/dw_r = (1/sqrt(m)) sum_i (u_i - y_i) a_r 1{w_r.x_i >= 0} x_i`` (their Eq. (4)),
and ``shared.net.gradients`` implements it (with ``dL/da_r`` for the second layer).
This experiment derives the same numbers a second, independent way: a tiny
reverse-mode autodiff (a ``Tensor`` holding a numpy array, its gradient and a
backward closure per operation, visited in reverse topological order, in the
spirit of micrograd but vectorised), applied to the forward pass written as a
graph ``Z = W X^T -> R = relu(Z) -> v = a R -> u = v / sqrt(m) -> r = u - y ->
L = 1/2 sum r^2``. A third route is the chain rule written out as the backward
pass, one line per edge. All three must agree to float64 rounding, and all must
agree with central finite differences where no ReLU kink is within reach.
"""

from __future__ import annotations

import numpy as np

from shared import data, net
from shared.plotting import subplots

SHAPES = [(5, 3, 4), (20, 10, 50), (50, 20, 200), (8, 100, 16)]  # (n, d, m); both modes
CONFIG = {
    "quick": {"shapes": SHAPES, "fd_shape": (6, 4, 8), "fd_reps": 8},
    "full": {
        "shapes": [*SHAPES, (200, 50, 2000), (1000, 100, 500), (100, 784, 1000)],
        "fd_shape": (20, 10, 40),
        "fd_reps": 8,
    },
}
FLOOR = 1e-18  # stands for "bit-identical" on log scales
SHOWN = (50, 20, 200)  # the shape whose gradients and graph the figure draws


# --------------------------------------------------------------------------- the engine
def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` over the axes numpy broadcasting added or stretched to reach ``g.shape``."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g


class Tensor:
    """A node of the computation graph: a value, its gradient, and how to pass the gradient on."""

    def __init__(self, data, parents: tuple = (), op: str = "", name: str = ""):
        self.data = np.asarray(data, dtype=np.float64)
        self.grad = np.zeros_like(self.data)
        self._parents = parents
        self._backward = lambda: None
        self.op = op
        self.name = name or op

    @staticmethod
    def _lift(x) -> Tensor:
        return x if isinstance(x, Tensor) else Tensor(x, name="const")

    def __matmul__(self, other) -> Tensor:
        """``self @ other``: 2-D @ 2-D, or 1-D @ 2-D."""
        other = Tensor._lift(other)
        out = Tensor(self.data @ other.data, (self, other), "matmul")

        def _backward():
            A, B, G = self.data, other.data, out.grad
            if A.ndim == 1:  # (k,) @ (k, n) -> (n,)
                self.grad += B @ G  # (k,)
                other.grad += np.outer(A, G)  # (k, n)
            else:  # (p, k) @ (k, n) -> (p, n)
                self.grad += G @ B.T  # (p, k)
                other.grad += A.T @ G  # (k, n)

        out._backward = _backward
        return out

    def relu(self) -> Tensor:
        """``max(self, 0)`` elementwise."""
        # derivative 1{z >= 0}: the convention of net.gradients (the kink z = 0 has measure 0)
        out = Tensor(np.maximum(self.data, 0.0), (self,), "relu")

        def _backward():
            self.grad += out.grad * (self.data >= 0)

        out._backward = _backward
        return out

    def sum(self) -> Tensor:
        """Sum of all entries, a scalar node."""
        out = Tensor(self.data.sum(), (self,), "sum")

        def _backward():
            self.grad += np.broadcast_to(out.grad, self.data.shape)

        out._backward = _backward
        return out

    def __mul__(self, other) -> Tensor:
        """Elementwise product with numpy broadcasting."""
        other = Tensor._lift(other)
        out = Tensor(self.data * other.data, (self, other), "mul")

        def _backward():
            self.grad += _unbroadcast(out.grad * other.data, self.data.shape)
            other.grad += _unbroadcast(out.grad * self.data, other.data.shape)

        out._backward = _backward
        return out

    def __sub__(self, other) -> Tensor:
        """Elementwise difference with numpy broadcasting."""
        other = Tensor._lift(other)
        out = Tensor(self.data - other.data, (self, other), "sub")

        def _backward():
            self.grad += _unbroadcast(out.grad, self.data.shape)
            other.grad -= _unbroadcast(out.grad, other.data.shape)

        out._backward = _backward
        return out

    def __pow__(self, p: float) -> Tensor:
        """``self ** p`` elementwise for a constant ``p``."""
        if isinstance(p, Tensor):
            raise ValueError("p: expected a constant exponent, got a Tensor")
        out = Tensor(self.data**p, (self,), f"pow{p:g}")

        def _backward():
            self.grad += out.grad * p * self.data ** (p - 1)

        out._backward = _backward
        return out

    __rmul__ = __mul__

    def topological_order(self) -> list[Tensor]:
        """Every node this one depends on, each after all of its parents."""
        order, seen = [], set()

        def visit(node):
            if id(node) not in seen:
                seen.add(id(node))
                for parent in node._parents:
                    visit(parent)
                order.append(node)

        visit(self)
        return order

    def backward(self) -> list[Tensor]:
        """Fill ``grad`` of every node with ``d self / d node`` (``self`` a scalar); returns the
        nodes in topological order."""
        if self.data.ndim != 0:
            raise ValueError(f"self: expected a scalar output, got shape {self.data.shape}")
        order = self.topological_order()
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            node._backward()
        return order


# --------------------------------------------------------------------------- the net as a graph
def net_graph(X, y, W, a):
    """Forward pass of the net as a graph; returns the loss node and the named nodes."""
    m = W.shape[0]
    nodes = {"W": Tensor(W, name="W"), "a": Tensor(a, name="a")}
    Xt = Tensor(X.T, name="X^T")  # (d, n), a constant
    nodes["Z"] = nodes["W"] @ Xt  # (m, n), pre-activations w_r.x_i
    nodes["R"] = nodes["Z"].relu()  # (m, n)
    nodes["v"] = nodes["a"] @ nodes["R"]  # (n,), sum_r a_r relu(w_r.x_i)
    nodes["u"] = nodes["v"] * (1.0 / np.sqrt(m))  # (n,), predictions
    nodes["r"] = nodes["u"] - y  # (n,), residual
    nodes["r^2"] = nodes["r"] ** 2  # (n,)
    nodes["sum"] = nodes["r^2"].sum()  # ()
    nodes["L"] = nodes["sum"] * 0.5  # (), L = 1/2 ||u - y||^2
    for key, node in nodes.items():
        node.name = key
    return nodes["L"], nodes


def autodiff_gradients(X, y, W, a):
    """``(L, dL/dW (m, d), dL/da (m,), nodes)`` by reverse-mode autodiff."""
    L, nodes = net_graph(X, y, W, a)
    L.backward()
    return float(L.data), nodes["W"].grad, nodes["a"].grad, nodes


def chain_rule_gradients(X, y, W, a):
    """The backward pass written out, one chain-rule step per edge of the graph."""
    m = W.shape[0]
    c = 1.0 / np.sqrt(m)
    Z = W @ X.T  # (m, n)
    R = np.maximum(Z, 0.0)  # (m, n)
    r = c * (a @ R) - y  # (n,)
    dL_dr = r  # d(1/2 sum r^2)/dr
    dL_du = dL_dr  # r = u - y
    dL_dv = c * dL_du  # u = c v
    dL_da = R @ dL_dv  # v = a R: (m,)
    dL_dR = np.outer(a, dL_dv)  # (m, n)
    dL_dZ = dL_dR * (Z >= 0)  # R = relu(Z)
    dL_dW = dL_dZ @ X  # Z = W X^T: (m, d)
    return dL_dW, dL_da


def rel_diff(g, ref) -> float:
    """``max |g - ref| / max |ref|``."""
    return float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))


def log10_floored(x: float) -> float:
    """``log10(x)``, with a bit-identical result (``x = 0``) drawn at ``FLOOR = 1e-18``."""
    return float(np.log10(max(x, FLOOR)))


def finite_difference_check(X, y, W, a, *, h: float):
    """Central differences of ``L`` in every coordinate of ``W`` and ``a``.

    ``L`` is quadratic in ``W`` while no pattern ``1{w_r.x_i >= 0}`` changes (the net is
    linear in ``W`` there) and quadratic in ``a``, so central differences are exact up to
    rounding wherever ``min |w_r.x_i| > h max |x_ij|``. The step used is therefore
    ``min(h, min |w_r.x_i| / (2 max |x_ij|))``: no probe reaches a kink, whatever the draw.

    Returns ``(dL/dW (m, d), dL/da (m,), kink margin min |w_r.x_i| / (h_used max |x_ij|) >= 2,
    h_used)``.
    """

    def L_of(Wp, ap):
        return net.loss(net.predict(X, Wp, ap), y)

    radius = float(np.min(np.abs(X @ W.T)) / np.max(np.abs(X)))  # kink-free step
    h = min(h, radius / 2)
    gW, ga = np.zeros_like(W), np.zeros_like(a)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = h
        gW[idx] = (L_of(W + E, a) - L_of(W - E, a)) / (2 * h)
    for r in range(a.shape[0]):
        e = np.zeros_like(a)
        e[r] = h
        ga[r] = (L_of(W, a + e) - L_of(W, a - e)) / (2 * h)
    return gW, ga, radius / h, h


def smooth_check(rng, *, h: float = 1e-6) -> float:
    """The engine on a function it was not written for, ``f = sum((A B - C)^3 * D)``,
    against central differences in every entry of ``A`` and ``B``."""
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    C, D = rng.standard_normal((3, 5)), rng.standard_normal((1, 5))  # D broadcasts over rows

    def f(A_, B_):
        return float(np.sum((A_ @ B_ - C) ** 3 * D))

    tA, tB = Tensor(A), Tensor(B)
    out = (((tA @ tB) - C) ** 3 * D).sum()
    out.backward()
    worst = 0.0
    for T, M, is_A in ((tA, A, True), (tB, B, False)):
        fd = np.zeros_like(M)
        for idx in np.ndindex(M.shape):
            E = np.zeros_like(M)
            E[idx] = h
            fd[idx] = (
                (f(A + E, B) - f(A - E, B)) / (2 * h)
                if is_A
                else (f(A, B + E) - f(A, B - E)) / (2 * h)
            )
        worst = max(worst, rel_diff(T.grad, fd))
    return worst


# --------------------------------------------------------------------------- experiment
def run(*, quick: bool, seed: int, progress=lambda i, total, label="": None) -> dict:
    """Autodiff, explicit chain rule and finite differences against ``net.gradients``."""
    cfg = CONFIG["quick" if quick else "full"]
    shapes = cfg["shapes"]
    rng = np.random.default_rng(seed)

    # %% Three routes to the gradient, at every shape: hand-derived, autodiff, chain rule
    rows = []
    for i, (n, d, m) in enumerate(shapes):
        X = data.unit_sphere(n, d, rng=rng)  # (n, d)
        y = data.gaussian_labels(n, rng=rng)  # (n,)
        W, a = net.init_net(d, m, rng=rng)  # (m, d), (m,)
        L_ref, gW_ref, ga_ref, _ = net.gradients(X, y, W, a)
        L_ad, gW_ad, ga_ad, nodes = autodiff_gradients(X, y, W, a)
        gW_ch, ga_ch = chain_rule_gradients(X, y, W, a)
        rows.append(
            {
                "shape": (n, d, m),
                "loss": abs(L_ad - L_ref) / L_ref,
                "autodiff_W": rel_diff(gW_ad, gW_ref),
                "autodiff_a": rel_diff(ga_ad, ga_ref),
                "chain_W": rel_diff(gW_ch, gW_ref),
                "chain_a": rel_diff(ga_ch, ga_ref),
            }
        )
        if (n, d, m) == SHOWN:
            shown = {"W": gW_ad.ravel(), "W_ref": gW_ref.ravel(), "a": ga_ad, "a_ref": ga_ref}
            # the backward pass visits these in this order (constants X^T, y, 1/sqrt(m) left out)
            order = [nd for nd in reversed(nodes["L"].topological_order()) if nd.name in nodes]
            node_names = [nd.name for nd in order]
            node_norms = [float(np.linalg.norm(nd.grad)) for nd in order]
            node_shapes = [str(tuple(nd.data.shape)) for nd in order]
        progress(i + 1, len(shapes) + 1, f"shape {(n, d, m)}")

    # %% Finite differences: the autodiff gradient against central differences of L, on
    # fd_reps independent draws of (X, y, W, a); the worst draw is what is checked
    n, d, m = cfg["fd_shape"]
    fd_err, margins, steps, smooth = [], [], [], []
    for _ in range(cfg["fd_reps"]):
        X = data.unit_sphere(n, d, rng=rng)
        y = data.gaussian_labels(n, rng=rng)
        W, a = net.init_net(d, m, rng=rng)
        _, gW_ad, ga_ad, _ = autodiff_gradients(X, y, W, a)
        gW_fd, ga_fd, margin, h = finite_difference_check(X, y, W, a, h=1e-6)
        # one gradient check on theta = (W, a): (m d + m,) entries
        fd_err.append(rel_diff(np.r_[gW_fd.ravel(), ga_fd], np.r_[gW_ad.ravel(), ga_ad]))
        margins.append(margin)
        steps.append(h)
        smooth.append(smooth_check(rng))
    progress(len(shapes) + 1, len(shapes) + 1, "finite differences")

    # %% Measure: the worst disagreement of each route (log10), over every shape or draw
    worst_chain = max(max(r["chain_W"], r["chain_a"]) for r in rows)
    return {
        "n_shapes": len(shapes),
        "log10_max_rel_diff_autodiff_W": log10_floored(max(r["autodiff_W"] for r in rows)),
        "log10_max_rel_diff_autodiff_a": log10_floored(max(r["autodiff_a"] for r in rows)),
        "log10_max_rel_diff_chain_rule": log10_floored(worst_chain),
        "max_rel_diff_loss": max(r["loss"] for r in rows),
        "log10_fd_rel_err": log10_floored(max(fd_err)),
        "fd_kink_margin_min": min(margins),
        "fd_h_min": min(steps),
        "log10_smooth_fd_rel_err": log10_floored(max(smooth)),
        "shapes": [list(r["shape"]) for r in rows],
        "rel_diff_autodiff_W": [r["autodiff_W"] for r in rows],
        "rel_diff_autodiff_a": [r["autodiff_a"] for r in rows],
        "rel_diff_chain": [max(r["chain_W"], r["chain_a"]) for r in rows],
        "fd_rel_err": fd_err,
        "smooth_fd_rel_err": smooth,
        "node_names": node_names,
        "node_shapes": node_shapes,
        "node_grad_norms": node_norms,
        "shown": shown,
    }


def plot(result: dict):
    """Credit per node, entry-by-entry agreement, and agreement per shape."""
    fig, axes = subplots(1, 3, width=4.0, height=3.4)
    ax = axes[0]
    names = [
        f"{nm} {sh}" for nm, sh in zip(result["node_names"], result["node_shapes"], strict=True)
    ]
    pos = np.arange(len(names))
    ax.barh(pos, result["node_grad_norms"], color="C0")
    ax.set_yticks(pos, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set(
        xlabel=r"$\|\partial L / \partial \mathrm{node}\|_F$",
        title="gradient reaching each node, n=50 d=20 m=200\n"
        "(backward order: loss at top, W and a last)",
    )

    ax = axes[1]
    s = result["shown"]
    ax.plot(s["W_ref"], s["W"], ".", ms=2, alpha=0.5, label=r"$\partial L/\partial W$ entries")
    ax.plot(s["a_ref"], s["a"], ".", ms=3, color="C1", label=r"$\partial L/\partial a$ entries")
    lim = max(np.max(np.abs(s["W_ref"])), np.max(np.abs(s["a_ref"])))
    ax.plot([-lim, lim], [-lim, lim], "k:", lw=0.8)
    ax.set(
        xlabel="net.gradients (hand-derived)", ylabel="autodiff", title="same numbers, two routes"
    )
    ax.legend()

    ax = axes[2]
    k = np.arange(len(result["shapes"]))
    wbar = 0.27
    floor = FLOOR  # exact zeros drawn at the floor
    for j, (key, lab) in enumerate(
        (
            ("rel_diff_autodiff_W", "autodiff vs net, W"),
            ("rel_diff_autodiff_a", "autodiff vs net, a"),
            ("rel_diff_chain", "explicit chain rule vs net"),
        )
    ):
        ax.bar(k + (j - 1) * wbar, np.maximum(result[key], floor), wbar, label=lab)
    ax.axhline(1e-12, color="C3", lw=0.8, ls="--", label="check: 1e-12")
    ax.axhline(np.finfo(float).eps, color="0.5", lw=0.8, ls=":", label="float64 eps")
    ax.set_yscale("log")
    ax.set_xticks(k, ["n={}\nd={}\nm={}".format(*sh) for sh in result["shapes"]], fontsize=6.5)
    ax.set(
        ylabel="max |g - g_ref| / max |g_ref|",
        title="agreement per shape\n(a bar at 1e-18 means bit-identical)",
    )
    ax.legend(fontsize=6.5)
    return fig


if __name__ == "__main__":  # python experiments/NAME/experiment.py [--full] [--seed S]
    raise SystemExit(__import__("sandbox").run_file(__file__))
