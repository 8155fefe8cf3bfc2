"""Where tasks run: a local process pool, or a Dask distributed cluster."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

from sandbox.sweep.tasks import _execute, _import_on_worker, _outcome

_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_blas():
    """One BLAS thread per worker unless the caller chose otherwise (as Dask's nanny does)."""
    unset = [k for k in _BLAS_THREADS if k not in os.environ]
    os.environ.update(dict.fromkeys(unset, "1"))
    try:
        yield
    finally:
        for k in unset:
            os.environ.pop(k, None)


def _run_local(task_fn, tasks, root_seed: int, workers: int | None) -> Iterator[tuple]:
    """``(task, outcome)`` as tasks finish on a local process pool (spawned, not forked)."""
    ctx = multiprocessing.get_context("spawn")  # forking a process with threads can deadlock
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        with _single_threaded_blas():  # workers start on submit and read the variables then
            futures = {pool.submit(_execute, task_fn, c, s, root_seed): (c, s) for c, s in tasks}
        for fut in as_completed(futures):
            yield futures[fut], _outcome(fut)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(task_fn, tasks, root_seed: int, scheduler: str, workers: int | None, code):
    """``(task, outcome)`` as tasks finish on the Dask cluster at ``scheduler``.

    Every worker first imports the task's module (a worker that cannot would
    drop the task stream) and reports the hash of the sources it imported: a
    worker started before the code changed is refused.
    """
    from distributed import Client
    from distributed import as_completed as dask_completed

    with Client(scheduler, set_as_default=False) as client:
        if workers:
            client.wait_for_workers(workers)
        module = task_fn.__module__
        if module != "__main__":  # a __main__ function travels by value
            try:
                seen = client.run(_import_on_worker, module)
            except ImportError as exc:
                raise ValueError(
                    f"task_fn: the Dask workers cannot import {module!r} ({exc}); "
                    "install the project on every worker"
                ) from None
            stale = sorted(w for w, h in seen.items() if code is not None and h != code)
            if stale:
                raise ValueError(
                    f"scheduler: workers {stale} imported other sources of {module!r} than the "
                    f"driver's ({code}); restart them after changing the code"
                )
        name = getattr(task_fn, "__name__", "task")
        pending = {
            client.submit(
                _execute, task_fn, c, s, root_seed, key=f"{name}-{uuid.uuid4().hex}", pure=False
            ): (c, s)
            for c, s in tasks
        }
        done = dask_completed(
            list(pending), loop=client.loop, with_results=True, raise_errors=False
        )  # gathers each result as soon as its task ends
        try:
            for fut, res in done:
                res = res if isinstance(res, dict) else _outcome(fut)  # else: raises, recorded
                task = pending.pop(fut)
                fut.release()  # the scheduler forgets it: a worker lost later is not re-run for it
                yield task, res
        finally:
            client.cancel(list(pending))
