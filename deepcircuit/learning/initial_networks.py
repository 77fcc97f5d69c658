"""The networks a training starts from: hidden layer sizes (:func:`parse_hidden`) and each
seed's initial weights (:func:`make_networks`, drawn from that seed's generator and shaped by
the ``init_*`` settings of :class:`~deepcircuit.learning.config.TrainingConfig`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .._validation import check_int
from ..errors import InvalidInputError
from ..model.network import Network
from ..model.roles import Roles
from ..model.topology import has_sink, sink_index, with_sink_layer
from ..data.split import Dataset
from ..data.tasks import Task
from .config import TrainingConfig


def parse_hidden(hidden: "int | str | Sequence[int]") -> tuple[int, ...]:
    """Hidden layer sizes from ``5``, ``"5"``, ``"5,3"`` or ``[5, 3]``."""
    if isinstance(hidden, str):
        try:
            hidden = [int(h) for h in hidden.split(",") if h.strip()]
        except ValueError:
            raise InvalidInputError(
                f"The 'hidden' parameter must be layer sizes like '5' or '5,3'; got {hidden!r}.") from None
    if isinstance(hidden, (int, np.integer)):
        hidden = [int(hidden)]
    return tuple(check_int("hidden", h, low=0) for h in hidden)


def make_networks(task: "Task | Dataset", *, model: str, topology: Any, hidden, seeds: Sequence[int],
                  config: TrainingConfig, params: Mapping[str, float] | None = None) -> list[Network]:
    """The initial network of each seed (weights drawn from that seed's generator)."""
    if isinstance(task, Dataset):
        task = task.train
    roles = Roles(task.n_inputs, with_sink_layer(parse_hidden(hidden), topology), task.n_outputs)
    if config.init_scale_bias is None and config.init_scale_free is None and config.init_mean_free == 0.0:
        nets = [Network.create(roles, family=model, topology=topology, params=params,
                               init_scale=config.init_scale, rng=seed_rng(s)) for s in seeds]
        return _init_sink(nets, topology, config.init_sink)
    # Same standard normal draws as the reference, rescaled per source row: rows of inputs by
    # init_scale, the bias row by init_scale_bias, rows of free neurons by init_scale_free and
    # shifted by init_mean_free (both directions between free neurons are free rows, so ep-sym
    # stays symmetric).
    def _or(value, default):
        return default if value is None else value

    row_scale = np.full(roles.n_neurons, float(config.init_scale))
    row_scale[roles.bias_index] = _or(config.init_scale_bias, config.init_scale)
    row_scale[roles.n_inputs:] = _or(config.init_scale_free, config.init_scale)
    row_mean = np.zeros(roles.n_neurons)
    row_mean[roles.n_inputs:] = config.init_mean_free
    nets = [Network.create(roles, family=model, topology=topology, params=params,
                           init_scale=1.0, rng=seed_rng(s)) for s in seeds]
    nets = [n.with_weights(np.where(n.mask, n.weights * row_scale[:, None] + row_mean[:, None], 0.0))
            for n in nets]
    return _init_sink(nets, topology, config.init_sink)


def _init_sink(nets: list[Network], topology: Any, weight: float) -> list[Network]:
    """Every connection into the sink neuron (``+sink`` topologies) starts at ``weight``."""
    if not has_sink(topology):
        return nets
    k = sink_index(nets[0].roles)
    out = []
    for n in nets:
        W = np.array(n.weights)
        W[:, k] = np.where(n.mask[:, k], weight, 0.0)
        out.append(n.with_weights(W))
    return out


def seed_rng(seed: int) -> np.random.Generator:
    """The generator of ``seed`` (a non-negative integer): a seed's weights, and in a training its
    initial states, are drawn from it."""
    return np.random.default_rng(check_int("seed", seed, low=0))
