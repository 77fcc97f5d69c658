"""The network description: one value, independent of every simulator.

A :class:`Network` holds the roles of its neurons, the weight matrix ``W[i, j]`` of the
connection i -> j, the topology mask, the mask of live (not pruned) connections, the model
family and its parameters. It is immutable: updates and pruning return new networks. A
:class:`NetworkBatch` stacks several networks of the same shape (one per seed) so a study of
many seeds is one vectorised simulation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from .._validation import check_array, check_real
from ..errors import InvalidInputError
from .families import Family, get_family
from .roles import Roles
from .topology import allowed_mask, build_mask, check_sink


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


def _check_params(family: Family, params: Mapping[str, Any] | None) -> Mapping[str, float]:
    params = dict(params or {})
    unknown = set(params) - set(family.defaults)
    if unknown:
        allowed = ", ".join(map(repr, family.defaults)) or "none"
        raise InvalidInputError(
            f"Unknown parameter(s) {', '.join(map(repr, sorted(unknown)))} for family "
            f"{family.name!r}; its parameters are: {allowed}.")
    out = {k: float(v) for k, v in family.defaults.items()}
    for k, v in params.items():
        out[k] = check_real(k, v, low=0.0)
    return MappingProxyType(out)


@dataclass(frozen=True, eq=False)
class Network:
    """One DEEP-style network, described independently of any simulator.

    Parameters
    ----------
    roles : Roles
        Sizes of the input (with bias), hidden and output groups.
    weights : array (N, N)
        ``W[i, j]``, weight of the directed connection i -> j (dimensionless; on a circuit it
        multiplies the unit transconductance g). Must be zero wherever ``mask`` is False.
    topology_mask : bool array (N, N)
        The connections the topology provides.
    mask : bool array (N, N)
        The connections that are live: the topology minus the pruned ones.
    family : str
        Model family name (``deep``, ``deep-leaky``, ``ep-asym``, ``ep-sym``).
    params : mapping
        Family parameters (``gamma`` for ``deep-leaky``, in units of 1/tau).
    bias : array (N,)
        Learned bias vector ``b`` of the EP families (zeros and unused for DEEP).
    topology : str
        Name of the topology, for reports (``complete``, ``layered`` or ``custom``).
    """

    roles: Roles
    weights: np.ndarray
    topology_mask: np.ndarray
    mask: np.ndarray
    family: str = "deep"
    params: Mapping[str, float] = field(default_factory=dict)
    bias: np.ndarray | None = None
    topology: str = "custom"

    def __getstate__(self) -> dict:
        # A read-only mapping cannot be pickled; a Network must be (a fitted DEEPClassifier is
        # pickled, Dask ships results between processes): store the parameters as a dict.
        return {**self.__dict__, "params": dict(self.params)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, params=MappingProxyType(dict(state["params"])))

    def __post_init__(self) -> None:
        fam = get_family(self.family)
        n = self.roles.n_neurons
        W = check_array("weights", self.weights, shape=(n, n))
        tmask = check_array("topology_mask", self.topology_mask, shape=(n, n), dtype=bool)
        mask = check_array("mask", self.mask, shape=(n, n), dtype=bool)
        bias = np.zeros(n) if self.bias is None else check_array("bias", self.bias, shape=(n,))
        forbidden = tmask & ~allowed_mask(self.roles)
        if forbidden.any():
            i, j = np.argwhere(forbidden)[0]
            names = self.roles.names
            raise InvalidInputError(
                f"The topology contains the forbidden connection {names[i]} -> {names[j]} "
                "(self-loop or into a clamped input).")
        if (mask & ~tmask).any():
            i, j = np.argwhere(mask & ~tmask)[0]
            raise InvalidInputError(
                f"The live mask has connection {i} -> {j}, which the topology does not provide.")
        check_sink(self.roles, self.topology, tmask)
        off = (W != 0) & ~mask
        if off.any():
            i, j = np.argwhere(off)[0]
            names = self.roles.names
            raise InvalidInputError(
                f"weights[{i}, {j}] ({names[i]} -> {names[j]}) is {W[i, j]!r} but that connection "
                "is not live (outside the topology or pruned); it must be 0.")
        if fam.symmetric and not np.allclose(W[self.roles.free, self.roles.free],
                                             W[self.roles.free, self.roles.free].T, atol=1e-12):
            raise InvalidInputError(f"The {fam.name!r} family needs symmetric weights among free neurons.")
        if not fam.has_bias_vector and np.any(bias != 0):
            raise InvalidInputError(
                f"The {fam.name!r} family has no bias vector (its bias is the bias neuron); "
                "pass bias=None.")
        object.__setattr__(self, "weights", _frozen(W))
        object.__setattr__(self, "topology_mask", _frozen(tmask))
        object.__setattr__(self, "mask", _frozen(mask))
        object.__setattr__(self, "bias", _frozen(bias))
        object.__setattr__(self, "params", _check_params(fam, self.params))

    # -- construction -------------------------------------------------------------------
    @classmethod
    def create(cls, roles: Roles, *, family: str = "deep", topology: Any = "complete",
               params: Mapping[str, float] | None = None, init_scale: float = 0.05,
               rng: np.random.Generator | int | None = None) -> "Network":
        """A new network with weights ``~ Normal(0, init_scale^2)`` on the topology's connections.

        ``topology`` is ``"complete"``, ``"layered"``, an edge list of ``(i, j)`` pairs (indices or
        neuron names) or a ``networkx.DiGraph``. For ``ep-sym`` the weights are symmetrised.
        """
        fam = get_family(family)
        init_scale = check_real("init_scale", init_scale, low=0.0)
        rng = np.random.default_rng(rng)
        tmask = build_mask(roles, topology)
        if fam.symmetric:
            # A symmetric family needs both directions between free neurons.
            free = np.zeros_like(tmask)
            free[roles.free, roles.free] = True
            tmask = tmask | (tmask.T & free)
        n = roles.n_neurons
        W = rng.normal(0.0, init_scale, size=(n, n))
        if fam.symmetric:
            W = np.triu(W) + np.triu(W, 1).T
        W = np.where(tmask, W, 0.0)
        name = topology if isinstance(topology, str) else "custom"
        return cls(roles, W, tmask, tmask.copy(), family, params or {}, None, name)

    # -- derived values ------------------------------------------------------------------
    @property
    def family_(self) -> Family:
        """The :class:`~deepcircuit.model.families.Family` object of this network."""
        return get_family(self.family)

    @property
    def n_neurons(self) -> int:
        return self.roles.n_neurons

    @property
    def n_connections(self) -> int:
        """Number of live connections."""
        return int(self.mask.sum())

    @property
    def sparsity(self) -> float:
        """Fraction of the topology's connections that were pruned (0 = none, 1 = all)."""
        total = int(self.topology_mask.sum())
        return 0.0 if total == 0 else 1.0 - self.n_connections / total

    def edges(self) -> list[tuple[int, int, float]]:
        """Live connections as ``(i, j, W[i, j])`` triples, in row-major order."""
        return [(int(i), int(j), float(self.weights[i, j])) for i, j in np.argwhere(self.mask)]

    def to_networkx(self):
        """The live graph as a ``networkx.DiGraph`` with neuron names and ``weight`` attributes."""
        import networkx as nx

        g = nx.DiGraph()
        names = self.roles.names
        for i, name in enumerate(names):
            g.add_node(i, name=name)
        for i, j, w in self.edges():
            g.add_edge(i, j, weight=w)
        return g

    # -- new networks from this one ----------------------------------------------------
    def with_weights(self, weights: np.ndarray, bias: np.ndarray | None = None) -> "Network":
        """A copy with new weights (and bias); entries outside the live mask must be zero."""
        return Network(self.roles, weights, self.topology_mask, self.mask, self.family,
                       self.params, self.bias if bias is None else bias, self.topology)

    def pruned(self, keep: np.ndarray) -> "Network":
        """A copy whose live mask is ``mask & keep``; removed connections are set to 0."""
        keep = check_array("keep", keep, shape=self.mask.shape, dtype=bool)
        mask = self.mask & keep
        return Network(self.roles, np.where(mask, self.weights, 0.0), self.topology_mask, mask,
                       self.family, self.params, self.bias, self.topology)

    def __repr__(self) -> str:
        r = self.roles
        return (f"Network(family={self.family!r}, topology={self.topology!r}, inputs={r.n_inputs}, "
                f"hidden={list(r.hidden)}, outputs={r.n_outputs}, connections={self.n_connections}, "
                f"sparsity={self.sparsity:.2f})")


@dataclass(frozen=True, eq=False)
class NetworkBatch:
    """Networks of one shape and family, stacked along a leading axis (one per seed).

    Attributes: ``weights (S, N, N)``, ``bias (S, N)``, ``mask (S, N, N)``,
    ``topology_mask (S, N, N)``; ``roles``, ``family``, ``params`` are shared.
    """

    networks: tuple[Network, ...]

    def __post_init__(self) -> None:
        nets = tuple(self.networks)
        if not nets:
            raise InvalidInputError("A NetworkBatch needs at least one network.")
        first = nets[0]
        for k, n in enumerate(nets[1:], 1):
            if n.roles != first.roles or n.family != first.family or dict(n.params) != dict(first.params):
                raise InvalidInputError(
                    f"Network {k} of the batch differs from network 0 in roles, family or parameters; "
                    "a batch shares them.")
        object.__setattr__(self, "networks", nets)

    @classmethod
    def of(cls, networks: "Network | NetworkBatch | Sequence[Network]") -> "NetworkBatch":
        """A batch from one network, a batch, or a sequence of networks."""
        if isinstance(networks, NetworkBatch):
            return networks
        if isinstance(networks, Network):
            return cls((networks,))
        return cls(tuple(networks))

    def __len__(self) -> int:
        return len(self.networks)

    def __getitem__(self, k: int) -> Network:
        return self.networks[k]

    @property
    def roles(self) -> Roles:
        return self.networks[0].roles

    @property
    def family(self) -> str:
        return self.networks[0].family

    @property
    def family_(self) -> Family:
        return self.networks[0].family_

    @property
    def params(self) -> Mapping[str, float]:
        return self.networks[0].params

    @property
    def weights(self) -> np.ndarray:
        return np.stack([n.weights for n in self.networks])

    @property
    def bias(self) -> np.ndarray:
        return np.stack([n.bias for n in self.networks])

    @property
    def mask(self) -> np.ndarray:
        return np.stack([n.mask for n in self.networks])

    @property
    def topology_mask(self) -> np.ndarray:
        return np.stack([n.topology_mask for n in self.networks])
