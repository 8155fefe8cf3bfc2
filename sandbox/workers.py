"""Run jobs in worker processes that may die: every job ends with a result or a named error.

An experiment is someone else's code. It may raise, call ``sys.exit``, call
``os._exit``, be killed by the kernel for its memory, or crash the interpreter.
None of that may pass for success. :func:`run_isolated` hands each job to a
worker process (spawned, never forked: forking a process that holds BLAS
threads can deadlock) and yields one :class:`Outcome` per job:

- ``"ok"`` with the value the job function returned;
- ``"error"`` with a one-line message and the traceback when the function
  raised anything, ``SystemExit`` and ``KeyboardInterrupt`` included;
- ``"error"`` naming the exit code or signal when the worker process died
  before it reported (``os._exit``, SIGKILL, a segfault). The worker is
  replaced and the other jobs go on.

Workers are persistent (one start per worker, not per job) and receive one job
at a time, so a dead worker costs exactly the job it was running.
"""

from __future__ import annotations

import multiprocessing
import signal
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path


@dataclass(frozen=True)
class Outcome:
    status: str  # "ok" or "error"
    value: object = None  # what the job function returned (status "ok")
    error: str | None = None  # one line (status "error")
    detail: str | None = None  # the traceback, when there is one
    died: bool = False  # the worker process ended before it reported

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def describe(exc: BaseException) -> str:
    """``Type: message (at file.py:line)``, the innermost frame of the traceback."""
    where = traceback.extract_tb(exc.__traceback__)
    at = f" (at {Path(where[-1].filename).name}:{where[-1].lineno})" if where else ""
    text = str(exc) if not isinstance(exc, SystemExit) else f"exit code {exc.code!r}"
    return f"{type(exc).__name__}: {text}{at}"


def _worker(conn, fn: Callable, initializer, initargs) -> None:
    """The worker process: run jobs from ``conn`` until it closes or says ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if msg is None:
            return
        index, job = msg
        try:
            reply = (index, Outcome("ok", value=fn(job)))
        except BaseException as exc:  # SystemExit too: it is the job's error, not the worker's
            reply = (index, Outcome("error", error=describe(exc), detail=traceback.format_exc()))
        try:
            conn.send(reply)
        except (EOFError, OSError):  # the parent is gone
            return
        except Exception as exc:  # the value could not be pickled
            try:
                error = f"cannot send the result to the parent: {describe(exc)}"
                conn.send((index, Outcome("error", error=error)))
            except (EOFError, OSError):
                return


def _death(process) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"its worker process was killed by {name} before it reported a result"
    return (
        f"its worker process exited with code {code} before it reported a result "
        "(os._exit, or a crash of the interpreter)"
    )


class _Worker:
    def __init__(self, ctx, fn, initializer, initargs):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_worker, args=(child, fn, initializer, initargs), daemon=True
        )
        self.process.start()
        child.close()
        self.job: int | None = None  # index of the job in flight

    def give(self, index: int, job) -> None:
        self.job = index
        self.conn.send((index, job))

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        self.conn.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.conn.close()


def run_isolated(
    fn: Callable,
    jobs: list,
    *,
    processes: int = 1,
    initializer: Callable | None = None,
    initargs: tuple = (),
) -> Iterator[tuple[int, Outcome]]:
    """Yield ``(index, outcome)`` for every job of ``jobs`` as it finishes.

    Parameters
    ----------
    fn : a top-level function of an importable module (pickled by reference),
        called as ``fn(job)`` in a worker process.
    jobs : picklable arguments, one per call.
    processes : the number of worker processes (at most one per job).
    initializer, initargs : called once in every worker before its first job.
    """
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes: expected a positive integer, got {processes!r}")
    ctx = multiprocessing.get_context("spawn")
    todo = deque(enumerate(jobs))
    workers: list[_Worker] = []
    try:
        for _ in range(min(processes, len(todo))):
            workers.append(_Worker(ctx, fn, initializer, initargs))
        for w in workers:
            w.give(*todo.popleft())
        while any(w.job is not None for w in workers):
            busy = [w for w in workers if w.job is not None]
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for w in busy:
                if w.conn not in ready and w.process.sentinel not in ready:
                    continue
                index, outcome = w.job, None
                try:
                    if w.conn.poll():
                        index, outcome = w.conn.recv()
                except (EOFError, OSError):
                    pass
                if outcome is None:
                    w.process.join()
                    outcome = Outcome("error", error=_death(w.process), died=True)
                w.job = None
                if not w.process.is_alive():  # replace a dead worker while jobs remain
                    w.kill()
                    workers.remove(w)
                    if todo:
                        w = _Worker(ctx, fn, initializer, initargs)
                        workers.append(w)
                if todo and w in workers:
                    w.give(*todo.popleft())
                yield index, outcome
    finally:
        for w in workers:
            if w.job is None:
                w.stop()
            else:  # interrupted mid-job: no result is coming that anyone will read
                w.kill()
