"""Topologies: which directed connections i -> j a network may have.

A topology is a boolean mask ``M[i, j]`` (True = the connection i -> j exists). Whatever the
topology, some connections are forbidden by the model: self-loops and any connection into an
input or the bias neuron (inputs are clamped, so nothing may drive them).

A named topology may end in ``+sink`` (``complete+sink``, ``layered+sink``): the network then has
one more hidden neuron, the *sink*, stored as a last hidden layer of one neuron. Every other free
neuron has a connection into it and it has none out. Why: in DEEP activity is conserved, so the
rails are the only place where the activity the inputs push in can go, and without a sink most
hidden states sit at a rail (98 % on digits). The sink fills up to its upper rail, where it takes
any inflow, so each connection j -> sink drains ``W[j, sink] * s_j`` from neuron j: a leak made
of DEEP's own synapses (on a circuit, a transconductor into the rail), whose weight the rule
learns like any other. Its own state never acts on the network (it has no outgoing connection).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..errors import ForbiddenConnectionError, InvalidInputError, InvalidTypeError
from .roles import Roles

TOPOLOGIES = ("complete", "layered", "complete+sink", "layered+sink")
#: Suffix of a named topology that adds the sink neuron (see the module docstring).
SINK = "+sink"


def has_sink(topology: Any) -> bool:
    """True for a named topology with a sink neuron (``complete+sink``, ``layered+sink``)."""
    return isinstance(topology, str) and topology in ("complete" + SINK, "layered" + SINK)


def sink_index(roles: Roles) -> int:
    """Index of the sink neuron of a ``+sink`` topology: the last hidden neuron."""
    return roles.n_inputs + roles.n_hidden - 1


def with_sink_layer(hidden: tuple, topology: Any) -> tuple:
    """Hidden layer sizes with the sink's layer of one neuron appended when ``topology`` has one."""
    if not has_sink(topology):
        return tuple(hidden)
    hidden = tuple(hidden)
    return (() if hidden in ((), (0,)) else hidden) + (1,)  # hidden 0: the sink is the only hidden neuron


def _sink_mask(roles: Roles, base: str) -> np.ndarray:
    """``base`` on every neuron but the sink, plus a connection from each free neuron into it."""
    if not roles.hidden or roles.hidden[-1] != 1:
        raise InvalidInputError(
            f"The '{base}{SINK}' topology keeps its sink neuron as the last hidden layer, of one "
            f"neuron; got hidden layers {list(roles.hidden)}. Create the network with hidden sizes "
            "ending in 1, or let deepcircuit.train add the sink.")
    rest = Roles(roles.n_inputs, roles.hidden[:-1], roles.n_outputs)
    k = sink_index(roles)
    others = [i for i in range(roles.n_neurons) if i != k]
    mask = np.zeros((roles.n_neurons,) * 2, dtype=bool)
    mask[np.ix_(others, others)] = build_mask(rest, base)
    mask[roles.n_inputs:, k] = True
    return mask & allowed_mask(roles)


def allowed_mask(roles: Roles) -> np.ndarray:
    """Every connection the model allows: no self-loops, nothing into an input or the bias."""
    n = roles.n_neurons
    mask = ~np.eye(n, dtype=bool)
    mask[:, : roles.n_inputs] = False
    return mask


def complete_mask(roles: Roles) -> np.ndarray:
    """The complete graph: every allowed pair, in both directions."""
    return allowed_mask(roles)


def layered_mask(roles: Roles) -> np.ndarray:
    """Adjacent layers only, forward and backward; no intra-layer or skip-layer connections.

    As in the reference code, the bias neuron feeds every non-input layer, so each hidden and
    output neuron has a bias weight of its own; the other inputs feed the first layer after them.
    """
    layers = roles.layers
    mask = np.zeros((roles.n_neurons,) * 2, dtype=bool)
    for a, b in zip(layers[:-1], layers[1:]):
        mask[np.ix_(a, b)] = True
        mask[np.ix_(b, a)] = True
    for layer in layers[2:]:
        mask[roles.bias_index, list(layer)] = True
    return mask & allowed_mask(roles)


def mask_from_edges(roles: Roles, edges: Any) -> np.ndarray:
    """Mask of a user graph: an iterable of ``(i, j)`` pairs or a ``networkx.DiGraph``.

    Nodes are neuron indices or names (``x0``, ``bias``, ``h3``, ``y0``, see
    :attr:`Roles.names`). A forbidden connection raises :class:`ForbiddenConnectionError`
    naming it, rather than being dropped silently.
    """
    if hasattr(edges, "edges") and hasattr(edges, "is_directed"):
        if not edges.is_directed():
            raise InvalidTypeError(
                "The topology graph must be a directed graph (networkx.DiGraph); got an undirected "
                f"{type(edges).__name__}. Use G.to_directed() to get both directions.")
        pairs: Iterable = list(edges.edges())
    else:
        try:
            pairs = [tuple(e) for e in edges]
        except TypeError:
            raise InvalidTypeError(
                "The topology must be 'complete', 'layered', an iterable of (i, j) pairs or a "
                f"networkx.DiGraph; got {type(edges).__name__}.") from None
    allowed = allowed_mask(roles)
    mask = np.zeros_like(allowed)
    for pair in pairs:
        if len(pair) != 2:
            raise InvalidInputError(f"Each edge must be a pair (i, j); got {pair!r}.")
        i, j = (roles.index_of(v) for v in pair)
        if not allowed[i, j]:
            names = roles.names
            why = ("a self-loop" if i == j else
                   f"into {'the bias neuron' if j == roles.bias_index else 'input ' + names[j]}, which is clamped")
            raise ForbiddenConnectionError(
                f"Connection {names[i]} -> {names[j]} ({i} -> {j}) is forbidden: it is {why}. "
                "Allowed connections end on hidden or output neurons and are not self-loops.")
        mask[i, j] = True
    return mask


def build_mask(roles: Roles, topology: Any) -> np.ndarray:
    """Mask for a topology name (see :data:`TOPOLOGIES`) or a user graph."""
    if has_sink(topology):
        return _sink_mask(roles, topology[: -len(SINK)])
    if isinstance(topology, str):
        if topology == "complete":
            return complete_mask(roles)
        if topology == "layered":
            return layered_mask(roles)
        raise InvalidInputError(
            f"Unknown topology {topology!r}; use one of {', '.join(map(repr, TOPOLOGIES))}, "
            "an edge list or a networkx.DiGraph.")
    if isinstance(topology, np.ndarray) and topology.dtype == bool:
        if topology.shape != (roles.n_neurons,) * 2:
            raise InvalidInputError(
                f"A topology mask must have shape {(roles.n_neurons,) * 2}; got {topology.shape}.")
        return mask_from_edges(roles, zip(*np.nonzero(topology)))
    return mask_from_edges(roles, topology)


def check_sink(roles: Roles, topology: str, mask: np.ndarray) -> None:
    """For a network labelled with a ``+sink`` topology (a model file, say): its last hidden layer
    is one neuron with no outgoing connection, so that training keeps the right synapses fixed."""
    if not has_sink(topology):
        return
    if not roles.hidden or roles.hidden[-1] != 1 or mask[sink_index(roles)].any():
        raise InvalidInputError(
            f"A network labelled {topology!r} must have a sink: a last hidden layer of one neuron "
            f"with no outgoing connection; got hidden layers {list(roles.hidden)}"
            + ("" if not roles.hidden or roles.hidden[-1] != 1 else " and connections out of it") + ".")
