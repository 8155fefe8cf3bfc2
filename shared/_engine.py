"""The GD step of :mod:`shared.net`: blocked over neurons, shared between threads.

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
count. Private: :func:`shared.net.train` and :func:`shared.net.gradients` are
the interface.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager

import numpy as np
from threadpoolctl import ThreadpoolController

_BLOCK_ELEMENTS = 2**18  # pre-activations per block by default: 2 MiB of float64


def blocks(n: int, m: int, block: int | None) -> list[tuple[int, int]]:
    """The neuron blocks ``[s, e)`` of the step: equal sizes (to one neuron), ``block`` at most.

    By default a block holds about ``2^18`` pre-activations (``n x b``, 2 MiB in
    float64), so the elementwise passes over it run in cache instead of
    streaming an ``(n, m)`` array through memory; that measured fastest at all
    three benchmark shapes, against a single block of all neurons and against
    halving or doubling the size. The blocks depend on ``(n, m, block)`` only,
    never on the number of threads, so every thread count gives the same numbers.
    """
    count = -(-m // block) if block is not None else max(1, -(-n * m // _BLOCK_ELEMENTS))
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

    def __init__(self, n: int, d: int, m: int, dtype, *, block=None, threads: int = 1):
        self.n = n
        self.blocks = blocks(n, m, block)
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


def sum_u(c, ws: Workspace) -> np.ndarray:
    """``u = c sum_b relu(Z_b) a_b`` into ``ws.u``, summed in block order (any thread count)."""
    u = np.sum(ws.u_blocks, axis=0, out=ws.u)
    u *= c
    return u


def backward_block(X, B, W, a, ws: Workspace, j: int, i: int, *, coef, out, W_minus, grad_a, c):
    """Block ``i`` of :func:`backward` on thread ``j``, from the stored pattern of the block."""
    s, e = ws.blocks[i]
    M = ws.scratch(j, s, e)  # (n, b)
    np.copyto(M, ws.pattern(s, e))  # the 0/1 pattern, made in cache
    P = np.matmul(M.T, B, out=out[s:e])  # (b, d)
    if grad_a is not None:
        np.einsum("md,md->m", W[s:e], P, out=grad_a[s:e])
        grad_a[s:e] *= c
        P *= (coef * a[s:e])[:, None]
    else:
        P *= a[s:e, None]
    if W_minus is not None:
        np.subtract(W_minus[s:e], P, out=P)


def residual_factor(X, r, ws: Workspace, scale: float) -> np.ndarray:
    """``B = scale r * X (n, d)``, the small factor of the backward product."""
    return np.multiply(X, (scale * r)[:, None], out=ws.B)


def forward(X, W, a, c, ws: Workspace) -> np.ndarray:
    """``u = c relu(X W^T) a`` into ``ws.u``; the pattern ``1{X W^T >= 0}`` into ``ws.mask``."""

    def work(j, part):
        for i in part:
            forward_block(X, W, a, ws, j, i)

    ws.run(work)
    return sum_u(c, ws)


def backward(X, r, W, a, ws: Workspace, *, coef, out, W_minus=None, grad_a=None, c=1.0):
    """``out = coef diag(a) P`` with ``P = 1{X W^T >= 0}^T (r * X)``, from the last forward pass.

    ``coef`` is folded into the ``(n, d)`` factor ``r * X`` and ``a`` into the
    ``(m, d)`` result, so no ``(n, m)`` array is scaled; the 0/1 pattern of a
    block is made from the stored bool one in the thread's scratch, in cache.
    With ``W_minus`` the result is ``W_minus - coef diag(a) P`` (the GD update,
    written into ``out``, which must not overlap ``W`` or ``W_minus``). With
    ``grad_a`` (an ``(m,)`` buffer) it also gives
    ``dL/da_r = c w_r . P_r = c sum_i r_i relu(w_r . x_i)``, as ``relu(z) = z 1{z >= 0}``.
    """
    B = residual_factor(X, r, ws, 1.0 if grad_a is not None else coef)
    kw = {"coef": coef, "out": out, "W_minus": W_minus, "grad_a": grad_a, "c": c}

    def work(j, part):
        for i in part:
            backward_block(X, B, W, a, ws, j, i, **kw)

    ws.run(work)


def descend(X, r, W, a, ws: Workspace, *, eta, c, W_next, a_next=None, grad_a=None):
    """One GD step and the next forward pass, fused block by block in one pass of the threads.

    Per block: ``W(k+1)`` (and ``a(k+1)`` with ``grad_a``) from the pattern of
    ``W(k)``, then the block's forward pass at ``W(k+1)``, while the block is in
    cache; the threads meet once per step instead of twice. Returns ``u(k+1)``;
    ``ws.mask`` then holds the pattern of ``W(k+1)``.
    """
    coef = float(eta) * c
    B = residual_factor(X, r, ws, 1.0 if grad_a is not None else coef)
    kw = {"coef": coef, "out": W_next, "W_minus": W, "grad_a": grad_a, "c": c}
    a_new = a if grad_a is None else a_next

    def work(j, part):
        for i in part:
            backward_block(X, B, W, a, ws, j, i, **kw)
            if grad_a is not None:
                s, e = ws.blocks[i]
                np.multiply(grad_a[s:e], -float(eta), out=a_next[s:e])
                a_next[s:e] += a[s:e]
            forward_block(X, W_next, a_new, ws, j, i)

    ws.run(work)
    return sum_u(c, ws)
