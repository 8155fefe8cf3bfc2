"""The speed machinery of :mod:`shared.net`: GD blocked over neurons, shared between threads.

A GD step on ``W`` costs two matrix products of ``n * m * d`` multiply-adds,
``Z = X W^T`` and ``M^T B`` with ``M = 1{Z >= 0}`` and ``B = eta c (u - y) * X``
(``c = scale / sqrt(m)``), plus elementwise work on ``(n, m)`` arrays, which
decides the time when ``d`` is small. Here the neurons are cut into blocks of
about 2 MiB of pre-activations and every pass over a block is made while it is
in cache: the update of step ``k`` (the 0/1 copy of the block's pattern, its
product, the new rows of ``W``) and then the forward pass of step ``k + 1``
(its product, the pattern as bools, relu, the block's share of ``u``). Only the
bool pattern of the whole net is stored. The blocks are shared out to threads,
each calling a one-thread BLAS, which meet once per step to sum ``u``; the
blocks fix every summation order, so the numbers do not depend on the thread
count, and they differ from the plain loop :func:`shared.net.gd_reference` only
by the order of the sums.

Contents, in the order a step uses them: :class:`Workspace` (buffers and
threads), the forward pass, the backward pass (:class:`FirstLayer` or
:class:`BothLayers`, whichever layers train), :func:`descend` (the fused step),
:class:`Recorder` (the traces), :class:`WeightStep` (the state of a run) and
:func:`gd` (the loop, which runs a :class:`WeightStep` or the function-space
:class:`shared._fspace.FunctionStep` on the same blocks and threads). Private:
:func:`shared.net.train` and :func:`shared.net.gradients` are the interface.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from threadpoolctl import ThreadpoolController

from shared.kernels import gram_h

_BLOCK_ELEMENTS = 2**18  # pre-activations per block by default: 2 MiB of float64


def blocks(
    n: int, m: int, block: int | None, *, elements: int = _BLOCK_ELEMENTS
) -> list[tuple[int, int]]:
    """The neuron blocks ``[s, e)`` of the step: equal sizes (to one neuron), ``block`` at most.

    By default a block holds about ``2^18`` pre-activations (``n x b``, 2 MiB in
    float64), so the elementwise passes over it run in cache instead of
    streaming an ``(n, m)`` array through memory; that measured fastest at all
    three benchmark shapes, against a single block of all neurons and against
    halving or doubling the size. The blocks depend on ``(n, m, block)`` only,
    never on the number of threads, so every thread count gives the same numbers.
    ``elements`` replaces the ``2^18`` (the function-space step's blocks are larger:
    :data:`shared._fspace.BLOCK_ELEMENTS`).
    """
    count = -(-m // block) if block is not None else max(1, -(-n * m // elements))
    count = min(count, m)
    edges = [m * i // count for i in range(count + 1)]
    return list(itertools.pairwise(edges))


@functools.cache
def _blas() -> ThreadpoolController:
    """The BLAS libraries numpy loaded, to read and limit their threads (built once)."""
    return ThreadpoolController()


def blas_threads() -> int:
    """Threads the BLAS may use now (set by ``OMP_NUM_THREADS`` or ``threadpool_limits``)."""
    return max((lib["num_threads"] for lib in _blas().select(user_api="blas").info()), default=1)


def _limit_blas_to_one_thread() -> None:
    """Pool initializer: an OpenMP-layered BLAS keeps its thread limit per calling thread."""
    _blas().limit(limits=1, user_api="blas")


class Workspace:
    """Buffers and workers for one ``(n, d, m)`` problem, set up once and reused at every step.

    The neuron axis is cut into blocks (:func:`blocks`) and the blocks into
    ``parts``, one per thread, contiguous and balanced. Each thread has its own
    scratch block (the pre-activations ``Z`` in the forward pass, the 0/1 copy of
    the pattern in the backward pass). The pattern ``mask`` (bool) is stored block
    after block (``mask[s * n : e * n]`` is block ``[s, e)`` as an ``(n, e - s)``
    array), so every block view is contiguous. Use as a context manager: with
    more than one block it holds the BLAS at one thread per call, so every
    block's products are the same one-thread computation whichever thread
    runs them (and a multi-threaded BLAS does not compete with the workers for
    the cores); with more than one part it also starts the workers.
    """

    def __init__(
        self, n: int, d: int, m: int, dtype, *, block=None, threads: int = 1, elements=None
    ):
        self.n = n
        self.blocks = blocks(n, m, block, elements=elements or _BLOCK_ELEMENTS)
        self.width = max(e - s for s, e in self.blocks)  # neurons in the largest block
        parts = np.array_split(np.arange(len(self.blocks)), min(threads, len(self.blocks)))
        self.parts = [[int(i) for i in p] for p in parts]
        self._scratch = [np.empty(n * self.width, dtype=dtype) for _ in self.parts]
        self.mask = np.empty(n * m, dtype=bool)  # activation pattern 1{w_r.x_i >= 0}
        self.u_blocks = np.empty((len(self.blocks), n), dtype=dtype)  # relu(Z_b) a_b per block
        self.B = np.empty((n, d), dtype=dtype)
        self.u = np.empty(n, dtype=dtype)
        self._pool, self._stack = None, ExitStack()
        self._held_blas_threads = None  # the caller's BLAS threads while they are held at one

    def __enter__(self) -> Workspace:
        if len(self.blocks) > 1 and (held := blas_threads()) > 1:
            self._held_blas_threads = held
            self._stack.enter_context(_blas().limit(limits=1, user_api="blas"))
        if len(self.parts) > 1:
            self._pool = self._stack.enter_context(
                ThreadPoolExecutor(
                    len(self.parts) - 1, "shared.net", initializer=_limit_blas_to_one_thread
                )
            )
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()  # the workers finish, then the BLAS gets its threads back
        self._pool = self._held_blas_threads = None

    def scratch(self, j: int, s: int, e: int) -> np.ndarray:
        return self._scratch[j][: self.n * (e - s)].reshape(self.n, e - s)  # (n, b)

    def pattern(self, s: int, e: int, mask: np.ndarray | None = None) -> np.ndarray:
        mask = self.mask if mask is None else mask
        return mask[s * self.n : e * self.n].reshape(self.n, e - s)  # (n, b)

    def run(self, work: Callable[[int, list[int]], object]) -> list:
        """``work(j, blocks of part j)`` for every part: part 0 here, the others on the pool.

        The caller's floating-point error handling applies in every thread (numpy
        keeps it per thread), and every part has finished when this returns, also
        when one of them raised.
        """
        state = np.geterr()

        def job(j):
            with np.errstate(**state):
                return work(j, self.parts[j])

        if self._pool is None:
            return [job(j) for j in range(len(self.parts))]
        futures = [self._pool.submit(job, j) for j in range(1, len(self.parts))]
        try:
            first = job(0)
        finally:
            wait(futures)
        return [first] + [f.result() for f in futures]

    @contextmanager
    def full_blas(self):
        """The caller's BLAS threads back, for a large product between steps."""
        if self._held_blas_threads is None:
            yield
        else:
            with _blas().limit(limits=self._held_blas_threads, user_api="blas"):
                yield


def forward_block(X, W, a, ws: Workspace, j: int, i: int) -> None:
    """Block ``i`` of the forward pass on thread ``j``: its pattern and its share of ``u``.

    One product into the thread's scratch, the pattern (bool), relu in place and
    ``relu(Z_b) a_b`` into ``ws.u_blocks[i]``.
    """
    s, e = ws.blocks[i]
    Z = np.matmul(X, W[s:e].T, out=ws.scratch(j, s, e))  # (n, b), pre-activations
    np.greater_equal(Z, 0.0, out=ws.pattern(s, e))
    np.maximum(Z, 0.0, out=Z)  # relu(Z)
    np.matmul(Z, a[s:e], out=ws.u_blocks[i])


def sum_u(c: float, ws: Workspace) -> np.ndarray:
    """``u = c sum_b relu(Z_b) a_b`` into ``ws.u``, summed in block order (any thread count)."""
    u = np.sum(ws.u_blocks, axis=0, out=ws.u)
    u *= c
    return u


def forward(X, W, a, c: float, ws: Workspace) -> np.ndarray:
    """``u = c relu(X W^T) a`` into ``ws.u``; the pattern ``1{X W^T >= 0}`` into ``ws.mask``."""

    def work(j, part):
        for i in part:
            forward_block(X, W, a, ws, j, i)

    ws.run(work)
    return sum_u(c, ws)


# --------------------------------------------------------------------------- backward
# Both layers' gradients come from one product per block, ``P = M_b^T B (b, d)``
# with ``M_b`` the block's 0/1 pattern and ``B`` an ``(n, d)`` multiple of
# ``r * X``. Which multiple, and what is done with ``P``, depends on the layers
# that train: the two classes below say it with named fields.
@dataclass(frozen=True)
class FirstLayer:
    """``W`` alone: rows ``coef a_r sum_i r_i 1{w_r.x_i >= 0} x_i`` (``coef = c`` gives ``dL/dW``).

    ``coef`` (``c`` for the gradient, ``eta c`` for a GD step) is folded into the
    ``(n, d)`` factor ``B = coef r * X`` and ``a`` into the ``(b, d)`` block of
    rows, so no ``(n, m)`` array is scaled.
    """

    coef: float
    trains_a: ClassVar[bool] = False

    def factor(self, X, r, ws: Workspace) -> np.ndarray:
        return np.multiply(X, (self.coef * r)[:, None], out=ws.B)  # (n, d)

    def finish(self, P, W, a, s: int, e: int) -> None:
        P *= a[s:e, None]  # (b, d)


@dataclass(frozen=True)
class BothLayers:
    """``W`` and ``a``: rows ``coef a_r P_r`` and ``grad_a[r] = c w_r . P_r``, ``P = M^T (r * X)``.

    ``dL/da_r = c sum_i r_i relu(w_r . x_i) = c w_r . P_r`` because
    ``relu(z) = z 1{z >= 0}``, so one product serves both layers. The two need
    different factors, so ``B = r * X`` is left unscaled and ``coef`` (``c`` for
    the gradient, ``eta c`` for a GD step) multiplies the rows. ``grad_a (m,)``
    is written.
    """

    coef: float
    c: float
    grad_a: np.ndarray
    trains_a: ClassVar[bool] = True

    def factor(self, X, r, ws: Workspace) -> np.ndarray:
        return np.multiply(X, r[:, None], out=ws.B)  # (n, d)

    def finish(self, P, W, a, s: int, e: int) -> None:
        np.einsum("md,md->m", W[s:e], P, out=self.grad_a[s:e])
        self.grad_a[s:e] *= self.c
        P *= (self.coef * a[s:e])[:, None]  # (b, d)


Layers = FirstLayer | BothLayers


def backward_block(B, W, a, ws: Workspace, j: int, i: int, layers: Layers, out) -> np.ndarray:
    """Block ``i`` of the backward pass on thread ``j``, from the stored pattern of the block.

    ``out[s:e] = P`` finished by ``layers``; returns that ``(b, d)`` view. The 0/1
    pattern is made from the stored bool one in the thread's scratch, in cache.
    """
    s, e = ws.blocks[i]
    M = ws.scratch(j, s, e)  # (n, b)
    np.copyto(M, ws.pattern(s, e))  # the 0/1 pattern, made in cache
    P = np.matmul(M.T, B, out=out[s:e])  # (b, d)
    layers.finish(P, W, a, s, e)
    return P


def backward(X, r, W, a, ws: Workspace, layers: Layers, *, out) -> None:
    """The backward pass from the pattern of the last forward pass, ``r = u - y`` the residual.

    ``out (m, d)`` gets the rows of ``layers`` (``dL/dW`` when ``coef = c``);
    :class:`BothLayers` also fills its ``grad_a``.
    """
    B = layers.factor(X, r, ws)

    def work(j, part):
        for i in part:
            backward_block(B, W, a, ws, j, i, layers, out)

    ws.run(work)


def descend(X, r, W, a, ws: Workspace, layers: Layers, *, c, eta, W_next, a_next=None):
    """One GD step and the next forward pass, fused block by block in one pass of the threads.

    ``layers.coef`` is ``eta c``. Per block: ``W(k+1) = W(k) - coef diag(a) P``
    (and ``a(k+1) = a(k) - eta grad_a`` with :class:`BothLayers`) from the
    pattern of ``W(k)``, then the block's forward pass at ``W(k+1)``, while the
    block is in cache; the threads meet once per step instead of twice. Returns
    ``u(k+1)``; ``ws.mask`` then holds the pattern of ``W(k+1)``. ``W_next`` and
    ``a_next`` must not overlap ``W`` and ``a``.
    """
    B = layers.factor(X, r, ws)
    a_new = a_next if layers.trains_a else a

    def work(j, part):
        for i in part:
            P = backward_block(B, W, a, ws, j, i, layers, W_next)
            s, e = ws.blocks[i]
            np.subtract(W[s:e], P, out=P)  # W(k+1) rows
            if layers.trains_a:
                np.multiply(layers.grad_a[s:e], -float(eta), out=a_next[s:e])
                a_next[s:e] += a[s:e]
            forward_block(X, W_next, a_new, ws, j, i)

    ws.run(work)
    return sum_u(c, ws)


# --------------------------------------------------------------------------- records
class Recorder:
    """The traces of :class:`shared.net.TrainResult`, from the step's own activation pattern.

    A record visits the blocks of the step on the step's threads, with buffers
    allocated once: per block, the pattern is compared with step 0's into a
    bool scratch and the moves ``||w_r(k) - w_r(0)||^2`` are summed row by row
    (from ``W``, or by ``moves(j, s, e)``, which writes them into ``sq[s:e]``;
    ``kernel()`` likewise replaces ``gram_h(X, W)``).
    """

    def __init__(self, X, W0, ws: Workspace, *, track_kernel: bool):
        self.X, self.W0, self.ws, self.track_kernel = X, W0, ws, track_kernel
        self.mask0 = ws.mask.copy()  # pattern at step 0, filled by the first forward pass
        self._diff = [np.empty(ws.n * ws.width, dtype=bool) for _ in ws.parts]
        self._D = None  # (m, d), W(k) - W(0), allocated at the first record from W
        self._sq = np.empty(W0.shape[0], dtype=W0.dtype)  # (m,), ||w_r(k) - w_r(0)||^2
        self.steps, self.flips, self.rms, self.max, self.fro, self.lam = [], [], [], [], [], []

    def __call__(self, k: int, W: np.ndarray | None = None, *, moves=None, kernel=None) -> None:
        ws, n = self.ws, self.ws.n
        if moves is None and self._D is None:
            self._D = np.empty_like(self.W0)

        def work(j, part):
            changed = 0
            for i in part:
                s, e = ws.blocks[i]
                diff = self._diff[j][: n * (e - s)].reshape(n, e - s)
                changed += np.count_nonzero(
                    np.not_equal(ws.pattern(s, e), ws.pattern(s, e, self.mask0), out=diff)
                )
                if moves is None:
                    D = np.subtract(W[s:e], self.W0[s:e], out=self._D[s:e])
                    np.einsum("md,md->m", D, D, out=self._sq[s:e])
                else:
                    moves(j, s, e, self._sq[s:e])
            return changed

        flipped = sum(ws.run(work))
        sq = self._sq
        self.steps.append(k)
        self.flips.append(flipped / self.mask0.size)
        self.rms.append(float(np.sqrt(np.mean(sq))))
        self.max.append(float(np.sqrt(sq.max())))
        self.fro.append(float(np.sqrt(sq.sum())))
        if self.track_kernel:
            with ws.full_blas():
                H = gram_h(self.X, W) if kernel is None else kernel()
                self.lam.append(float(np.linalg.eigvalsh(H)[0]))


# --------------------------------------------------------------------------- the run
@dataclass
class Run:
    """What :func:`gd` hands back to :func:`shared.net.train`.

    ``losses`` ends at the last step kept (the divergence step excluded);
    ``W``, ``a``, ``u`` are the iterate of that step. ``diverged_loss`` is
    ``L(diverged_step)``, the value that ended the run. ``recorder`` is ``None``
    only when the loss at step 0 already failed the test.
    """

    losses: np.ndarray
    W: np.ndarray
    a: np.ndarray
    u: np.ndarray
    recorder: Recorder | None
    diverged_step: int | None
    diverged_loss: float | None
    stopped_step: int | None
    stopped_by_callback: bool


class WeightStep:
    """The run's state in weight space: ``W`` and ``a``, each with a buffer for the next step.

    The step of the module docstring (:func:`descend`). :mod:`shared._fspace`'s
    :class:`~shared._fspace.FunctionStep` has the same methods: ``start()`` (the
    forward pass of step 0), ``step(r)`` (returns ``u(k+1)``), ``record(k)`` and
    ``weights(last_kept=...)``, the iterate of step ``k`` (or of ``k - 1``, the
    last one kept when step ``k`` diverged).
    """

    def __init__(self, X, W0, a0, ws: Workspace, *, c, eta, train_a, track_kernel):
        self.X, self.W0, self.ws, self.c, self.eta = X, W0, ws, c, eta
        self.train_a, self.track_kernel = train_a, track_kernel
        self.W, self.W_next = W0.copy(), np.empty_like(W0)
        self.a, self.a_next = a0.copy(), (np.empty_like(a0) if train_a else None)
        coef = float(eta) * c
        if train_a:
            self.layers = BothLayers(coef=coef, c=c, grad_a=np.empty_like(a0))
        else:
            self.layers = FirstLayer(coef=coef)
        self.rec = None

    def start(self) -> np.ndarray:
        return forward(self.X, self.W, self.a, self.c, self.ws)  # (n,), pattern in ws.mask

    def step(self, r) -> np.ndarray:
        u = descend(
            self.X,
            r,
            self.W,
            self.a,
            self.ws,
            self.layers,
            c=self.c,
            eta=self.eta,
            W_next=self.W_next,
            a_next=self.a_next,
        )  # u(k+1), pattern of W(k+1) in ws.mask
        self.W, self.W_next = self.W_next, self.W
        if self.train_a:
            self.a, self.a_next = self.a_next, self.a
        return u

    def weights(self, *, last_kept: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if not last_kept:
            return self.W, self.a
        return self.W_next, (self.a_next if self.train_a else self.a)

    def record(self, k: int) -> None:
        if self.rec is None:
            self.rec = Recorder(self.X, self.W0, self.ws, track_kernel=self.track_kernel)
        self.rec(k, self.W)


def gd(
    X,
    y,
    W0,
    a0,
    *,
    c: float,
    eta: float,
    steps: int,
    train_a: bool,
    record_every: int,
    track_kernel: bool,
    tol: float | None,
    loss_bound: Callable[[float], float],
    progress: Callable[[int, int], object] | None,
    callback: Callable[..., object] | None,
    block: int | None,
    threads: int | None,
    step: str = "weights",
) -> Run:
    """The GD loop of :func:`shared.net.train` on validated inputs; ``c = scale / sqrt(m)``.

    ``step`` is ``"weights"`` (:class:`WeightStep`) or ``"function"``
    (:class:`shared._fspace.FunctionStep`). A step ``k`` ends the run as
    diverged when ``L(k)`` is non-finite or above ``loss_bound(L(0))``. Both
    steps keep the iterate of step ``k - 1`` next to that of step ``k``, so the
    last iterate kept survives a divergence without a copy per step.
    """
    n, d = X.shape
    m = W0.shape[0]
    losses = np.empty(steps + 1)
    u_prev = bound = diverged_step = diverged_loss = stopped_step = None
    stopped_by_callback = False
    threads = blas_threads() if threads is None else threads
    if step == "function":
        from shared._fspace import BLOCK_ELEMENTS as elements
        from shared._fspace import FunctionStep as Step
    else:
        Step, elements = WeightStep, _BLOCK_ELEMENTS
    with Workspace(n, d, m, X.dtype, block=block, threads=threads, elements=elements) as ws:
        state = Step(X, W0, a0, ws, c=c, eta=eta, train_a=train_a, track_kernel=track_kernel)
        with np.errstate(over="ignore", invalid="ignore"):
            u = state.start()  # (n,), pattern in ws.mask
        for k in range(steps + 1):
            with np.errstate(over="ignore", invalid="ignore"):
                r = u - y  # (n,)
                L = 0.5 * float(r @ r)
            if k == 0:
                bound = loss_bound(L) if math.isfinite(L) else math.inf
            if not math.isfinite(L) or L > bound:
                diverged_step, diverged_loss = k, L
                break
            losses[k] = L
            u_prev = u.copy()
            if tol is not None and L <= tol * losses[0]:
                stopped_step = k
            if k % record_every == 0 or k == steps or stopped_step is not None:
                state.record(k)
                if progress is not None:
                    progress(k, steps)
                if callback is not None:
                    W, a = state.weights()
                    with ws.full_blas():
                        stopped_by_callback = bool(callback(k, *_read_only(W, a, u)))
            if k == steps or stopped_step is not None or stopped_by_callback:
                break
            with np.errstate(over="ignore", invalid="ignore"):
                u = state.step(r)  # u(k+1), pattern of step k + 1 in ws.mask

        if diverged_step is not None:
            losses = losses[:diverged_step]
            # back to the last iterate kept, k = diverged_step - 1
            W, a = state.weights(last_kept=diverged_step > 0)
        else:
            losses = losses[: k + 1]  # k = steps, or the step that stopped the run
            W, a = state.weights()
    return Run(
        losses=losses,
        W=W,
        a=a,
        u=u_prev,
        recorder=state.rec,
        diverged_step=diverged_step,
        diverged_loss=diverged_loss,
        stopped_step=stopped_step,
        stopped_by_callback=stopped_by_callback,
    )


def _read_only(*arrays: np.ndarray) -> list[np.ndarray]:
    """Views of ``arrays`` that cannot be written through (the buffers stay writable)."""
    views = [A.view() for A in arrays]
    for A in views:
        A.setflags(write=False)
    return views
