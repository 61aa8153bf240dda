"""Where many independent fits run: one executor rule for the prior sweeps
(:func:`bayesvc.prior_sweep`) and the parametric bootstrap (:func:`bayesvc.estimators.lrt.test_component`).

``executor`` may be

- ``None``: in the calling thread, one task after the other (one worker thread for the sweeps);
- ``"threads"`` or an ``int`` n: a ``ThreadPoolExecutor`` (``workers`` threads, or n);
- ``"processes"``: a spawn-context ``ProcessPoolExecutor`` with ``workers`` processes;
- any ``concurrent.futures.Executor`` instance (tasks and results must pickle), a
  ``dask.distributed.Client`` (through ``client.get_executor()``), or a dask scheduler address
  (``"tcp://host:8786"``: a client is connected for the run and closed after it).

>>> pool, owned, label = executor_pool("threads", workers=2, default_workers=1, what="demo")
>>> label, owned
('threads(2)', True)
>>> run_tasks(abs, [-1, -2, 3], executor=pool)
([1, 2, 3], 'ThreadPoolExecutor')
>>> pool.shutdown()
"""

from __future__ import annotations

import re
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np

from ..errors import fail


#: a dask scheduler address (``tcp://10.0.0.5:8786``, ``tls://...``, ``inproc://...``, ``host:port``)
SCHEDULER_ADDRESS = re.compile(r"^(?:(?:tcp|tls|inproc|ucx|ws|wss)://\S+|[\w.-]+:\d+)$")


class _OwnedClient(Executor):
    """A dask client connected for one run: submits through its executor, closes it on shutdown."""

    def __init__(self, address: str, what: str):
        try:
            from dask.distributed import Client
        except ImportError:  # pragma: no cover - dask is an optional dependency
            fail(f"{what}: executor={address!r} is a dask scheduler address; install dask[distributed]")
        try:
            self.client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as err:
            fail(f"{what}: cannot connect to the dask scheduler at {address!r}: {err}")
        self.pool = self.client.get_executor(pure=False)

    def submit(self, fn, /, *args, **kwargs):
        return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, **kw):
        self.client.close()


def executor_pool(executor, workers: int | None, default_workers: int, what: str, serial_threads: int = 1,
                  thread_prefix: str = "bayesvc"):
    """``(Executor, owned, label)``: the executor to run tasks on and whether the caller closes it.

    ``default_workers`` is used for ``"threads"`` and ``"processes"`` without ``workers``;
    ``executor=None`` gives ``serial_threads`` threads unless ``workers`` is set. ``what`` prefixes
    the error message.
    """
    if hasattr(executor, "get_executor") and type(executor).__module__.startswith("distributed"):
        return executor.get_executor(pure=False), False, "dask"
    if isinstance(executor, Executor):
        return executor, False, type(executor).__name__
    if isinstance(executor, str) and SCHEDULER_ADDRESS.match(executor):
        return _OwnedClient(executor, what), True, f"dask({executor})"
    n = int(workers) if workers else default_workers
    if isinstance(executor, (int, np.integer)) and not isinstance(executor, bool):
        if executor < 1:
            fail(f"{what}: executor={executor} threads: need at least 1")
        n = int(executor)
    elif executor is None and not workers:
        n = serial_threads
    if executor is None or executor == "threads" or isinstance(executor, (int, np.integer)):
        return ThreadPoolExecutor(max_workers=n, thread_name_prefix=thread_prefix), True, f"threads({n})"
    if executor == "processes":
        import multiprocessing as mp

        return ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn")), True, f"processes({n})"
    fail(f"{what}: executor must be None, 'threads', 'processes', a number of threads, a "
         f"concurrent.futures.Executor, a dask.distributed.Client or a dask scheduler address "
         f"('tcp://host:8786'), got {executor!r}")


def run_tasks(fn, tasks: list, executor=None, workers: int | None = None, default_workers: int = 1,
              what: str = "executor") -> tuple[list, str]:
    """``[fn(t) for t in tasks]`` on the executor (``None`` without ``workers``: in this thread);
    results in task order, and a label of where they ran."""
    if executor is None and not workers:
        return [fn(t) for t in tasks], "serial"
    pool, owned, label = executor_pool(executor, workers, default_workers, what)
    try:
        return [f.result() for f in [pool.submit(fn, t) for t in tasks]], label
    finally:
        if owned:
            pool.shutdown()
