"""The function-space GD step of :mod:`shared.net`: the step carried by the pre-activations.

Du et al. (ICLR 2019) follow the predictions through the Gram matrix; the same
observation gives a cheaper step. With ``Z = X W^T (n, m)``, ``M = 1{Z >= 0}``,
``r = u - y`` and ``c = scale / sqrt(m)``, one GD step on ``W`` (Eq. (4), (6)) is

    ``W(k+1) = W(k) - Q^T X``,   ``Q = eta c diag(r) M diag(a)``   ``(n, m)``

so the pre-activations move as

    ``Z(k+1) = X W(k+1)^T = Z(k) - K Q``,   ``K = X X^T``   ``(n, n)``, built once.

A step is then one ``(n, n) @ (n, m)`` product, ``2 n^2 m`` flops, instead of the
two ``(n, d) x (d, m)`` products of the weight-space step, ``4 n d m``: cheaper
when ``n < 2 d``. ``W`` is never needed to step: summing ``C = sum_k Q(k)``
gives it exactly, ``W(k) = W(0) - C(k)^T X``, in one product when asked (the
callback, the end of the run).

Training both layers adds ``a(k+1) = a(k) - eta c relu(Z(k))^T r`` (``dL/da``,
an ``(n, m)`` matrix-vector product); ``Q`` takes the ``a(k)`` of its step, so
the two identities above hold unchanged.

The records need no ``W`` either: the flips compare the stored pattern with
step 0's, and the moves are ``||w_r(k) - w_r(0)||^2 = ||X^T c_r||^2 =
c_r . (K c_r) = c_r . (Z(0) - Z(k))_r``, one pass over ``C`` and ``Z``. With
``track_kernel``, ``H(W(k)) = K * (A A^T) / m`` comes from the stored pattern
``A`` (:func:`shared.kernels.gram_h_pattern`).

Rounding: ``Z`` is updated, never recomputed, so it drifts away from
``X W^T`` (with ``W`` from ``C``) by a random walk of rounding errors, about
``eps sqrt(k)`` of the size of the moves; every ``REFRESH`` steps the step
recomputes ``Z = X W^T`` from ``C`` (two weight-space products), which resets
the drift. Memory: ``Z``, ``Z(0)`` and two buffers of ``C`` (the last iterate
kept survives a divergence), ``4 n m`` numbers, against ``2 m d`` for the
weight-space step.

Private: :func:`shared.net.train` is the interface (its ``step`` argument).
"""

from __future__ import annotations

import numpy as np

from shared import _engine
from shared.kernels import gram_h_pattern

REFRESH = 200  # steps between recomputations of Z = X W^T (see the module docstring)
# Pre-activations per neuron block by default (8 MiB of float64): larger than the weight-space
# step's 2^18, as every block's product K Q_b packs all of K (n^2 numbers) again; at
# n = 1000, blocks of ~1000 neurons lose ~9% to that against one product of all m neurons,
# blocks of ~260 lose ~35% (one thread, measured).
BLOCK_ELEMENTS = 2**20

# Cost model of the automatic choice, in flops of a matrix product. An elementwise pass
# over one element (read, maybe write, in cache) costs about as much as PASS flops of a
# product: on one core with AVX-512 a product runs at about 77 flops per ns and a pass at
# about 0.36 ns per element (tests/benchmark_speed.py shapes, one thread, float64).
PASS = 28.0
PASSES_WEIGHTS = 5  # 0/1 pattern copy, W rows, pattern (bool), relu, relu(Z) a
PASSES_FUNCTION = 8  # Q (three), C, Z - K Q, pattern, relu, relu(Z) a; one more with a


def cost(
    step: str,
    *,
    n: int,
    d: int,
    m: int,
    steps: int,
    records: int,
    train_a: bool,
    track_kernel: bool,
    callback: bool,
) -> float:
    """Flops (product-equivalent) of a run of ``steps`` steps with ``records`` records.

    ``"weights"``: per step two products (``4 n d m``) and :data:`PASSES_WEIGHTS`
    passes over ``(n, m)``; per record the flip count (one pass over ``(n, m)``) and
    the moves (two over ``(m, d)``), with ``track_kernel`` also ``gram_h(X, W)``
    (``2 n d m`` for the pattern, ``n^2 m`` for its counts). ``"function"``:
    ``K = X X^T`` (``n^2 d``) and ``W`` at the end (``2 n d m``); per step one
    product (``2 n^2 m``) and :data:`PASSES_FUNCTION` passes (one more with
    ``train_a``); a refresh (``4 n d m``) every :data:`REFRESH` steps; per record
    three passes (flips, moves), with ``track_kernel`` the counts (``n^2 m``), with
    a ``callback`` ``W`` (``2 n d m``). Both: each pass costs :data:`PASS` flops per
    element. The first forward pass is the same for both and left out.
    """
    nm, md = n * m, m * d
    counts = n * n * m if track_kernel else 0.0
    if step == "weights":
        per_step = 4.0 * n * d * m + PASS * PASSES_WEIGHTS * nm
        per_record = PASS * (nm + 2 * md) + (counts + 2.0 * n * d * m if track_kernel else 0.0)
        return steps * per_step + records * per_record
    passes = PASSES_FUNCTION + (1 if train_a else 0)
    per_step = 2.0 * n * n * m + PASS * passes * nm
    per_record = PASS * 3 * nm + counts + (2.0 * n * d * m if callback else 0.0)
    fixed = n * n * d + 2.0 * n * d * m + (steps // REFRESH) * 4.0 * n * d * m
    return fixed + steps * per_step + records * per_record


def choose(*, n: int, d: int, m: int, steps: int, record_every: int, **kw) -> str:
    """``"function"`` where :func:`cost` says it is cheaper, else ``"weights"``.

    Per step the function-space step is cheaper when ``2 n^2 m + 8 PASS n m <
    4 n d m + 5 PASS n m``, i.e. ``n < 2 d - 1.5 PASS = 2 d - 42``: below about
    ``2 d`` where the products dominate; the records and a callback (which needs
    ``W``) move the line, as :func:`cost` counts.
    """
    if steps == 0:
        return "weights"
    records = steps // record_every + 2
    kw.update(n=n, d=d, m=m, steps=steps, records=records)
    return "function" if cost("function", **kw) < cost("weights", **kw) else "weights"


class FunctionStep:
    """The run's state in function space: ``Z``, ``C`` (two buffers), ``Z(0)``, ``K``, ``a``.

    Every ``(n, m)`` array is stored block after block, like the pattern of
    :class:`shared._engine.Workspace` (block ``[s, e)`` is ``buf[s * n : e * n]``
    as an ``(n, e - s)`` array), so every block view is contiguous. The methods
    are those of :class:`shared._engine.WeightStep`.
    """

    def __init__(self, X, W0, a0, ws: _engine.Workspace, *, c, eta, train_a, track_kernel):
        n, m = X.shape[0], W0.shape[0]
        self.X, self.W0, self.ws, self.c, self.eta = X, W0, ws, c, float(eta)
        self.train_a, self.track_kernel = train_a, track_kernel
        self.Z = np.empty(n * m, dtype=X.dtype)
        self.Z0 = None
        self.C = np.zeros(n * m, dtype=X.dtype)  # C(k)
        self.C_prev = np.zeros(n * m, dtype=X.dtype)  # C(k - 1), then the next C
        self.a, self.a_prev = a0.copy(), (np.empty_like(a0) if train_a else None)
        self.k = 0
        width = ws.width
        self._Q = [np.empty(n * width, dtype=X.dtype) for _ in ws.parts]
        self._T = [np.empty(n * width, dtype=X.dtype) for _ in ws.parts]
        self._Wb = [np.empty((width, X.shape[1]), dtype=X.dtype) for _ in ws.parts]
        self._grad_a = np.empty_like(a0) if train_a else None
        self._W = None  # W(k), built when asked
        self.K = np.matmul(X, X.T)  # (n, n), symmetric (syrk)
        self.rec = None

    def view(self, buf, s, e):
        return buf[s * self.ws.n : e * self.ws.n].reshape(self.ws.n, e - s)  # (n, b)

    def _scratch(self, bufs, j, s, e):
        return bufs[j][: self.ws.n * (e - s)].reshape(self.ws.n, e - s)  # (n, b)

    def _forward_block(self, j, i, a) -> None:
        """Pattern and ``relu(Z_b) a_b`` of block ``i`` from its stored ``Z_b``."""
        ws = self.ws
        s, e = ws.blocks[i]
        Z = self.view(self.Z, s, e)
        np.greater_equal(Z, 0.0, out=ws.pattern(s, e))
        R = np.maximum(Z, 0.0, out=self._scratch(self._T, j, s, e))  # relu(Z_b)
        np.matmul(R, a[s:e], out=ws.u_blocks[i])

    def _weights_block(self, j, i, C) -> np.ndarray:
        """``W_b = W(0)_b - C_b^T X (b, d)`` into thread ``j``'s scratch."""
        s, e = self.ws.blocks[i]
        Wb = np.matmul(self.view(C, s, e).T, self.X, out=self._Wb[j][: e - s])  # (b, d)
        np.subtract(self.W0[s:e], Wb, out=Wb)
        return Wb

    def _refresh_block(self, j, i, C) -> None:
        """``Z_b = X W_b^T`` recomputed from ``C``, which resets the rounding drift."""
        s, e = self.ws.blocks[i]
        Wb = self._weights_block(j, i, C)
        np.matmul(self.X, Wb.T, out=self.view(self.Z, s, e))

    def start(self) -> np.ndarray:
        """``Z(0) = X W(0)^T``, its pattern and ``u(0)``."""
        ws = self.ws

        def work(j, part):
            for i in part:
                s, e = ws.blocks[i]
                np.matmul(self.X, self.W0[s:e].T, out=self.view(self.Z, s, e))
                self._forward_block(j, i, self.a)

        ws.run(work)
        self.Z0 = self.Z.copy()
        return _engine.sum_u(self.c, ws)

    def step(self, r) -> np.ndarray:
        """One GD step and the next forward pass, block by block: returns ``u(k+1)``.

        Per block: ``Q_b = eta c diag(r) M_b diag(a_b)``, ``C_b += Q_b`` (into the
        other buffer), ``Z_b -= K Q_b`` (or ``Z_b = X W_b^T`` on a refresh step),
        then the pattern and ``relu(Z_b) a_b`` of step ``k + 1``.
        """
        ws, c = self.ws, self.c
        rr = (self.eta * c) * r  # (n,)
        refresh = (self.k + 1) % REFRESH == 0
        C, C_next = self.C, self.C_prev
        a, a_next = self.a, (self.a_prev if self.train_a else self.a)

        def work(j, part):
            for i in part:
                s, e = ws.blocks[i]
                Z = self.view(self.Z, s, e)
                T = self._scratch(self._T, j, s, e)
                if self.train_a:  # a(k+1) = a(k) - eta c relu(Z(k))^T r
                    np.maximum(Z, 0.0, out=T)
                    g = np.matmul(r, T, out=self._grad_a[s:e])  # (b,)
                    np.multiply(g, -self.eta * c, out=a_next[s:e])
                    a_next[s:e] += a[s:e]
                Q = self._scratch(self._Q, j, s, e)
                np.copyto(Q, ws.pattern(s, e))  # 0/1 (faster than a bool-float product)
                Q *= a[s:e]
                Q *= rr[:, None]  # (n, b), eta c diag(r) M diag(a)
                np.add(self.view(C, s, e), Q, out=self.view(C_next, s, e))
                if refresh:
                    self._refresh_block(j, i, C_next)
                else:
                    np.subtract(Z, np.matmul(self.K, Q, out=T), out=Z)  # Z - K Q
                self._forward_block(j, i, a_next)

        ws.run(work)
        self.C, self.C_prev = C_next, C
        if self.train_a:
            self.a, self.a_prev = a_next, a
        self.k += 1
        self._W = None
        return _engine.sum_u(c, ws)

    def weights(self, *, last_kept: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``W = W(0) - C^T X (m, d)`` and ``a`` of step ``k`` (of ``k - 1`` with ``last_kept``)."""
        C = self.C_prev if last_kept else self.C
        a = (self.a_prev if self.train_a else self.a) if last_kept else self.a
        if self._W is not None and not last_kept:
            return self._W, a
        W = np.empty_like(self.W0)

        def work(j, part):
            for i in part:
                s, e = self.ws.blocks[i]
                W[s:e] = self._weights_block(j, i, C)

        self.ws.run(work)
        if not last_kept:
            self._W = W
        return W, a

    def record(self, k: int) -> None:
        """The traces of step ``k`` (:class:`shared._engine.Recorder`) without ``W``."""
        if self.rec is None:
            self.rec = _engine.Recorder(self.X, self.W0, self.ws, track_kernel=self.track_kernel)
        ws = self.ws

        def moves(j, s, e, out):  # ||w_r(k) - w_r(0)||^2 = c_r . (Z(0) - Z(k))_r, (b,)
            D = self._scratch(self._T, j, s, e)
            np.subtract(self.view(self.Z0, s, e), self.view(self.Z, s, e), out=D)  # K C_b
            np.einsum("nm,nm->m", self.view(self.C, s, e), D, out=out)
            np.maximum(out, 0.0, out=out)  # >= 0 in exact arithmetic

        def kernel():
            return gram_h_pattern(self.K, [ws.pattern(s, e) for s, e in ws.blocks])

        self.rec(k, moves=moves, kernel=kernel if self.track_kernel else None)
