"""The Dask worker side of a sweep: substrates are loaded once per worker process, in its main thread.

Dask runs tasks in a worker thread, but some simulators must be imported from the main thread
of the process (Brian2's import installs a signal handler: "signal only works in main thread").
:class:`LoadSubstrates` is a worker plugin; its ``setup`` runs on the worker's event loop, in the
main thread, when the plugin is registered and again whenever a worker (re)starts.
"""

from __future__ import annotations

from distributed import WorkerPlugin


class LoadSubstrates(WorkerPlugin):
    """Build (and close) one instance of each named substrate, so its simulator is imported."""

    idempotent = True

    def __init__(self, substrates) -> None:
        self.substrates = tuple(sorted(set(substrates)))
        self.name = "deepcircuit-load-substrates-" + "-".join(self.substrates)

    def setup(self, worker) -> None:
        from ...errors import DeepCircuitError
        from ...substrates import get_substrate

        for name in self.substrates:
            try:
                with get_substrate(name):
                    pass
            except DeepCircuitError:
                pass  # the runs on it fail with the same message, each as a row
