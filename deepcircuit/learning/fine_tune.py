"""Starting a training from saved model files (``train --init``, ``train(init=...)``).

A fine-tune continues the networks of one or more model files: their family, topology, masks,
weights (sink connections included) and the data set split and scaler they were trained with.
Every model file holds one network (one seed); several files train together as a batch, one
network per file. A task, data set, family or shape that does not fit the files is refused
with one line naming what differs, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import InvalidInputError
from ..model.network import Network
from .model_file import ModelFile, load_model


@dataclass(frozen=True)
class FineTuneStart:
    """What a fine-tune starts from: the files, their networks and seeds, the data set."""

    models: tuple  # of ModelFile
    networks: tuple  # of Network, one per file
    seeds: tuple  # of int, one per network
    dataset: Any  # deepcircuit.data.split.Dataset

    @property
    def family(self) -> str:
        return self.networks[0].family

    def training_config(self):
        """The first file's saved training settings (the default settings of a fine-tune)."""
        return self.models[0].training_config()


def _where(m: ModelFile, k: int) -> str:
    return repr(m.path) if m.path else f"init model {k}"


def load_init(init: "str | Path | ModelFile | Sequence") -> list[ModelFile]:
    """The model files of ``init`` (paths or :class:`ModelFile` objects), checked to be of one
    shape and one data set (they train as one batch)."""
    items = [init] if isinstance(init, (str, Path, ModelFile)) else list(init)
    if not items:
        raise InvalidInputError("init (--init) needs at least one model file.")
    models = [m if isinstance(m, ModelFile) else load_model(m) for m in items]
    a = models[0]
    for k, m in enumerate(models[1:], 1):
        na, nb = a.network, m.network
        what = None
        if nb.family != na.family:
            what = f"family {nb.family!r}, not {na.family!r}"
        elif nb.roles != na.roles:
            what = f"shape {nb.roles}, not {na.roles}"
        elif not (nb.topology_mask == na.topology_mask).all():
            what = "another topology"
        elif (m.dataset or {}).get("name", m.task) != (a.dataset or {}).get("name", a.task) or \
                _split(m) != _split(a):
            what = "another data set or split"
        if what:
            raise InvalidInputError(
                f"--init files train as one batch and must match: {_where(m, k)} has {what} "
                f"({_where(a, 0)}).")
    return models


def _split(m: ModelFile) -> tuple:
    d = m.dataset or {}
    return tuple(d.get(k) for k in ("split_seed", "test_fraction", "validation_fraction", "readout"))


def trained_on(m: ModelFile) -> str:
    """The name of the data set or logic task a model file was trained on ('' if unknown)."""
    return str((m.dataset or {}).get("name") or m.task or "")


def start_from(init, task=None, *, model: str | None = None, topology: Any = None, hidden: Any = None,
               seeds: "Sequence[int] | None" = None, data: "str | Path | None" = None,
               test: "str | Path | None" = None) -> FineTuneStart:
    """Resolve a fine-tune: the files' networks, seeds and data set; refuses what does not fit.

    ``task`` (None, a name, a Task or a Dataset) must be the data set the files were trained on
    (None: theirs; a user data file is given again as ``data``). ``model``, ``topology`` and
    ``hidden``, when given, must be the files'. ``seeds``: None = the files' own seeds; else one
    seed per file (a seed draws the initial states of every
    presentation; the weights are the file's).
    """
    from ..data.split import Dataset, dataset_for_model
    from ..data.tasks import Task
    from ..model.topology import has_sink
    from .evaluation import check_task_fits
    from .initial_networks import parse_hidden

    models = load_init(init)
    first = models[0]
    net: Network = first.network
    where = _where(first, 0)
    if model is not None and model != net.family:
        raise InvalidInputError(f"--init {where} is a {net.family!r} network; --model {model} would be "
                                "another family (drop --model to fine-tune it).")
    if topology is not None and (not isinstance(topology, str) or topology != net.topology):
        raise InvalidInputError(f"--init {where} has topology {net.topology!r}; --topology {topology!r} would "
                                "be another network (drop --topology to fine-tune it).")
    sink_free = tuple(net.roles.hidden[:-1]) if has_sink(net.topology) else None  # as --hidden names them
    if hidden is not None and parse_hidden(hidden) not in (tuple(net.roles.hidden), sink_free):
        raise InvalidInputError(f"--init {where} has hidden layers {list(net.roles.hidden)}; --hidden "
                                f"{hidden} would be another network (drop --hidden to fine-tune it).")
    ours = trained_on(first)
    if isinstance(task, Dataset):
        if ours and task.name.lower() != ours.lower():
            raise InvalidInputError(f"--init {where} was trained on {ours!r}; the data set given is "
                                    f"{task.name!r} (fine-tune on the data set it was trained on).")
        dataset = task
    elif isinstance(task, Task):
        raise InvalidInputError("train(init=...) takes a data set name or a Dataset, not a single Task split.")
    else:
        if task is not None and ours and str(task).lower() != ours.lower():
            raise InvalidInputError(f"--init {where} was trained on {ours!r}; --task {task} is another "
                                    f"data set (drop --task to fine-tune on {ours!r}).")
        dataset = dataset_for_model(first, task=None if data is not None else task, data=data, test=test)
    check_task_fits(dataset.train, net.roles)
    if seeds is None:
        own = [m.seed for m in models]
        seeds = own if all(isinstance(s, int) and s >= 0 for s in own) else list(range(len(models)))
    seeds = list(seeds)
    if len(seeds) != len(models):
        raise InvalidInputError(f"--init gives one network per model file ({len(models)} file(s)) but "
                                f"{len(seeds)} seed(s) were asked for; give one file per seed.")
    if len(set(seeds)) != len(seeds):
        raise InvalidInputError(f"--init files share a seed ({sorted(seeds)}); give --seed K to renumber them "
                                "K, K+1, ...")
    return FineTuneStart(tuple(models), tuple(m.network for m in models), tuple(seeds), dataset)
