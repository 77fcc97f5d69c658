"""Dask clusters for work that must run in separate worker processes.

Two users: ``sweep`` (one task per training run, ``deepcircuit.studies.sweep.run``) and the SPICE
substrate (one task per chunk of presentations, :class:`ProcessRunner`). Both start a
``distributed.LocalCluster`` of single-threaded worker *processes* (ngspice is not thread-safe
and keeps state per process), or connect to an existing scheduler (``--scheduler ADDRESS``),
with the same configuration: no spilling or pausing (a simulation's memory is not Dask data),
a bounded number of worker deaths per task, and optional worker memory limits and lifetimes.

A worker process that dies (killed, out of memory, segfault in a simulator) is replaced by its
nanny and the tasks it held are rescheduled by the scheduler, up to ``allowed_failures`` deaths
per task (then the task fails with ``KilledWorker``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Sequence

from ..errors import InvalidInputError, SimulationError

#: Worker deaths a task survives before it is declared failed (Dask's ``allowed-failures``).
ALLOWED_FAILURES = 3


def cluster_config(*, memory_limit: str | None = None, restart_after: str | None = None,
                   allowed_failures: int = ALLOWED_FAILURES) -> dict:
    """The ``dask.config`` settings of our clusters (see the module docstring)."""
    config = {"distributed.worker.memory.pause": False, "distributed.worker.memory.spill": False,
              "distributed.worker.memory.target": False,
              "distributed.worker.memory.terminate": 0.95 if memory_limit else False,
              "distributed.scheduler.allowed-failures": allowed_failures,
              # Send every task to a worker at once: a worker never waits on the scheduler between
              # tasks (tiny tasks would otherwise pay a round trip each); stealing rebalances.
              "distributed.scheduler.worker-saturation": float("inf"),
              "distributed.scheduler.work-stealing": True,
              "distributed.logging.distributed": "error"}
    if restart_after:
        config.update({"distributed.worker.lifetime.duration": restart_after,
                       "distributed.worker.lifetime.stagger": "10 seconds",
                       "distributed.worker.lifetime.restart": True})
    return config


def start_client(*, workers: int | None = None, scheduler: str | None = None, memory_limit: str | None = None,
                 restart_after: str | None = None, allowed_failures: int = ALLOWED_FAILURES):
    """``(client, cluster)``: a client of ``scheduler`` (cluster None: not ours to stop), else of a
    new ``LocalCluster`` of ``workers`` single-threaded worker processes (default: one per core)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="30s"), None
        except (OSError, TimeoutError) as exc:
            raise InvalidInputError(f"--scheduler {scheduler}: no Dask scheduler answered there ({exc}); start "
                                    "one with `dask scheduler` and `dask worker ADDRESS`.") from None
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise InvalidInputError(f"--workers must be >= 1; got {workers}.")
    with dask.config.set(cluster_config(memory_limit=memory_limit, restart_after=restart_after,
                                        allowed_failures=allowed_failures)):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               memory_limit=memory_limit or 0, dashboard_address=":0", silence_logs=50)
        return Client(cluster), cluster


@contextlib.contextmanager
def dask_client(*, workers: int | None = None, scheduler: str | None = None,
                memory_limit: str | None = None, restart_after: str | None = None):
    """A ``distributed.Client`` (:func:`start_client`) for the length of a ``with`` block.

    ``memory_limit`` (e.g. ``"2GiB"``, per worker): the nanny restarts a worker that grows past
    95 % of it. ``restart_after`` (a duration such as ``"10 minutes"``): each worker is closed
    gracefully and restarted after that long (Dask's worker lifetime), which bounds slow leaks.
    """
    client, cluster = start_client(workers=workers, scheduler=scheduler, memory_limit=memory_limit,
                                   restart_after=restart_after, allowed_failures=2)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class TaskFailed(SimulationError):
    """A task failed on every try: ``index`` (its position in the mapped items), ``reason``."""

    def __init__(self, index: int, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.index, self.reason, self.cause = index, reason, cause


class ProcessRunner:
    """Maps a function over items in Dask worker processes, started on first use.

    Each task is retried once when it raises (a second failure is reported, never dropped); a
    worker that dies is replaced and its tasks rescheduled (up to ``allowed_failures`` deaths per
    task). Ctrl-C while waiting cancels the tasks and stops the workers of a cluster this runner
    started (an external scheduler's workers are only asked to drop the tasks).

    Parameters
    ----------
    workers : int or None
        Worker processes of the local cluster (None: one per core).
    scheduler : str or None
        Address of an existing Dask scheduler (``tcp://host:8786``) instead of a local cluster.
    retries : int
        Extra tries of a task that raised (default 1).
    """

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None, retries: int = 1,
                 allowed_failures: int = ALLOWED_FAILURES, memory_limit: str | None = None,
                 restart_after: str | None = None) -> None:
        self.workers, self.scheduler, self.retries = workers, scheduler, retries
        self.allowed_failures, self.memory_limit, self.restart_after = allowed_failures, memory_limit, restart_after
        self._client = self._cluster = None

    @property
    def client(self):
        if self._client is None:
            self._client, self._cluster = start_client(
                workers=self.workers, scheduler=self.scheduler, memory_limit=self.memory_limit,
                restart_after=self.restart_after, allowed_failures=self.allowed_failures)
        return self._client

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (to watch or, in tests, to kill one)."""
        return sorted(self.client.run(os.getpid).values())

    def map(self, fn: Callable, items: Sequence[Any], *args: Any, raise_failures: bool = True) -> list:
        """``[fn(item, *args) for item in items]`` computed in the workers, in order.

        An item whose every try failed (it raised, or its worker died ``allowed_failures`` times)
        raises :class:`TaskFailed`; with ``raise_failures=False`` its place in the list holds the
        :class:`TaskFailed` instead and the other items are still returned.
        """
        from distributed import KilledWorker, wait

        client = self.client
        futures = [client.submit(fn, item, *args, pure=False, retries=self.retries) for item in items]
        try:
            wait(futures)
            out = []
            for k, f in enumerate(futures):
                if f.status == "error":
                    exc = f.exception()
                    if isinstance(exc, KilledWorker):
                        why = (f"its worker process died {self.allowed_failures} times while running it "
                               f"(Dask KilledWorker)")
                    else:
                        why = str(exc) or type(exc).__name__
                    out.append(TaskFailed(k, why, exc))
                elif f.status == "cancelled":
                    out.append(TaskFailed(k, "the task was cancelled (the cluster shut down?)"))
                else:
                    out.append(f.result())
                if raise_failures and isinstance(out[-1], TaskFailed):
                    raise out[-1]
            return out
        except KeyboardInterrupt:
            client.cancel(futures, force=True)
            self.close()  # Ctrl-C stops our workers, not only the wait
            raise
        finally:
            for f in futures:
                f.release()

    def close(self) -> None:
        """Disconnect, and stop the local cluster if this runner started it. Safe to call twice."""
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_client"] = state["_cluster"] = None  # workers stay with the instance that started them
        return state
