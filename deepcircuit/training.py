"""Training: free phase, nudged phase, local update, pruning, per-epoch history.

The loop talks to a substrate only through :meth:`Substrate.run` and reads only the
trajectories it returns, so every substrate trains with the same code. Seeds are trained as one
batch; each seed has its own random generator, so a seed's result does not depend on which
other seeds share its batch.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ._validation import check_choice, check_int, check_real
from .errors import DivergenceError, DivergenceWarning, InvalidInputError, NotSettledWarning
from .families import get_family
from .learning import apply_update, weight_update
from .network import Network, NetworkBatch
from .pruning import magnitude_prune, stochastic_sparsify, symmetric_keep
from .roles import Roles
from .substrates import Schedule, Substrate, get_substrate, initial_states
from .tasks import Task, get_task
from .trajectory import PhaseResult

PRUNE_METHODS = ("stochastic", "magnitude")


@dataclass(frozen=True)
class TrainingConfig:
    """Every setting of a training run. Times in units of tau; rates dimensionless.

    Parameters
    ----------
    epochs : int
        Number of weight updates.
    dt : float
        Euler step / sampling interval (tau).
    free_steps, nudged_steps : int
        Length of the free and nudged phases in steps (T1, T2).
    beta : float
        Nudging strength (1/tau).
    eta : float
        Learning rate (the reference's ``dt_W``).
    beta0, beta1 : float
        Coefficients of the STDP rule (post-synaptic activity and rate of change).
    sign : bool
        Use ``sign(dW)`` instead of ``dW``.
    l1 : float
        L1 regularisation ``W -= l1 * sign(W)`` per update (0 = off).
    prune : None, "stochastic" or "magnitude"
        Pruning after each update (None = off).
    prune_tol, prune_temperature : float
        Pruning threshold on ``|W|`` and temperature of the stochastic sparsification.
    init_scale : float
        Standard deviation of the initial weights (of every connection unless one of the next
        three settings says otherwise).
    init_scale_bias : float or None
        Standard deviation of the initial weights leaving the bias neuron; ``None`` (the
        reference) uses ``init_scale``. 0 starts every bias connection at zero.
    init_scale_free : float or None
        Standard deviation of the initial weights on connections leaving free (hidden and
        output) neurons; ``None`` (the reference) uses ``init_scale`` for every connection.
        Connections leaving inputs keep ``init_scale`` and mean 0.
    init_mean_free : float
        Mean of the initial weights on connections leaving free neurons (reference: 0). A
        positive mean gives every free neuron a positive total outflow ``sum_k W[j, k]`` at the
        start, i.e. a stable, leaky node with graded (unclipped) states.
    state_init_high : float
        Initial free states are drawn from ``Uniform(0, state_init_high)`` every presentation.
    settle_tol : float
        Equilibrium tolerance on ``max |ds/dt|`` (1/tau).
    stop_at_equilibrium : bool
        End phases early once settled (saves time; off in the reference).
    max_weight : float
        A network whose largest ``|W|`` exceeds this is declared diverged.
    """

    epochs: int = 200
    dt: float = 0.05
    free_steps: int = 1000
    nudged_steps: int = 1000
    beta: float = 10.0
    eta: float = 100.0
    beta0: float = 0.0
    beta1: float = 1.0
    sign: bool = False
    l1: float = 0.0
    prune: str | None = None
    prune_tol: float = 0.01
    prune_temperature: float = 5.0
    init_scale: float = 0.05
    init_scale_bias: float | None = None
    init_scale_free: float | None = None
    init_mean_free: float = 0.0
    state_init_high: float = 0.1
    settle_tol: float = 1e-4
    stop_at_equilibrium: bool = False
    max_weight: float = 1e6

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, low=0)
        check_real("eta", self.eta, low=0.0)
        check_real("beta0", self.beta0)
        check_real("beta1", self.beta1)
        check_real("l1", self.l1, low=0.0)
        check_real("prune_tol", self.prune_tol, low=0.0)
        check_real("prune_temperature", self.prune_temperature, low=0.0, low_open=True)
        check_real("init_scale", self.init_scale, low=0.0)
        for name in ("init_scale_bias", "init_scale_free"):
            if getattr(self, name) is not None:
                check_real(name, getattr(self, name), low=0.0)
        check_real("init_mean_free", self.init_mean_free)
        check_real("state_init_high", self.state_init_high, low=0.0, high=1.0)
        check_real("max_weight", self.max_weight, low=0.0, low_open=True)
        if self.prune is not None:
            check_choice("prune", self.prune, PRUNE_METHODS)
        self.schedule  # validates dt, steps, beta, settle_tol

    @property
    def schedule(self) -> Schedule:
        """The :class:`Schedule` of one presentation."""
        return Schedule(dt=self.dt, free_steps=self.free_steps, nudged_steps=self.nudged_steps,
                        beta=self.beta, settle_tol=self.settle_tol,
                        stop_at_equilibrium=self.stop_at_equilibrium)

    def replace(self, **changes: Any) -> "TrainingConfig":
        """A copy with some settings changed; unknown names fail with the list of settings."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise InvalidInputError(
                f"Unknown training setting(s) {sorted(unknown)}; settings are "
                f"{', '.join(f.name for f in fields(self))}.")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainingConfig":
        return cls().replace(**dict(d))

    @classmethod
    def preset(cls, name: str = "default", *, model: str = "deep") -> "TrainingConfig":
        """Named settings: ``"paper"`` (the reference notebooks exactly) or ``"default"``.

        ``"paper"`` is T1 = T2 = 1000 Euler steps of 0.05, beta = 10, eta = 100 (eta = 1 for
        ``ep-asym``, whose rule is the endpoint rule), beta0 = 0, beta1 = 1. ``"default"`` is the
        project's better setting for each family; see the README for what changed and why.
        """
        check_choice("preset", name, PRESETS)
        get_family(model)
        paper = cls()
        if model in ("ep-asym", "ep-sym"):
            paper = paper.replace(eta=1.0)
        if name == "paper":
            return paper
        return paper.replace(**_DEFAULT_CHANGES.get(model, {}))


#: How the project defaults differ from the paper preset, per family (see README and
#: docs/training_defaults.md; benchmarks/bench_training_defaults.py measures both presets).
#: For ``deep`` only the initial weights change (the dynamics, the rule, eta, beta and the phase
#: lengths stay the paper's): input weights ~ Normal(0, 1); bias weights start at 0, so that
#: the hidden neurons start as varied threshold functions of the inputs instead of constants;
#: weights leaving free neurons ~ Normal(0.05, 0.05^2), small and positive on average, so that
#: every free neuron starts with a positive total outflow (a stable, leaky node, not a
#: self-exciting one stuck at a rail). ``deep-leaky`` uses the same initialisation (tested, not
#: tuned for it). ``ep-asym`` and ``ep-sym`` keep the paper settings.
_DEEP_INIT = {"init_scale": 1.0, "init_scale_bias": 0.0, "init_scale_free": 0.05, "init_mean_free": 0.05}
_DEFAULT_CHANGES: dict[str, dict[str, Any]] = {"deep": dict(_DEEP_INIT), "deep-leaky": dict(_DEEP_INIT)}
PRESETS = ("default", "paper")


@dataclass
class History:
    """Per-epoch record of one network's training (arrays have one entry per epoch).

    ``mse`` and ``error`` are measured on the free phase of each epoch, before that epoch's
    update (as in the reference). ``update_norm`` is the Frobenius norm of ``eta * dW``.
    ``free_settled`` / ``nudged_settled`` are the fractions of presentations at equilibrium.
    ``extra`` holds what epoch callbacks recorded (for example stability certificates).
    """

    mse: list = field(default_factory=list)
    error: list = field(default_factory=list)
    sparsity: list = field(default_factory=list)
    update_norm: list = field(default_factory=list)
    free_settled: list = field(default_factory=list)
    nudged_settled: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {k: [float(v) for v in getattr(self, k)] for k in
             ("mse", "error", "sparsity", "update_norm", "free_settled", "nudged_settled")}
        d["extra"] = self.extra
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "History":
        h = cls(**{k: list(d.get(k, [])) for k in
                   ("mse", "error", "sparsity", "update_norm", "free_settled", "nudged_settled")})
        h.extra = dict(d.get("extra", {}))
        return h

    def __len__(self) -> int:
        return len(self.mse)


@dataclass
class TrainingResult:
    """What :func:`train` returns: one trained network, history and final score per seed."""

    task: Task
    model: str
    substrate: str
    config: TrainingConfig
    seeds: list[int]
    initial_networks: list[Network]
    networks: list[Network]
    histories: list[History]
    train_error: np.ndarray
    mse: np.ndarray
    diverged: list[str | None]
    seconds: float
    #: ``(S, P)``: whether each presentation of the final evaluation settled; ``train_error``
    #: and ``mse`` read the outputs at the end of the phase either way.
    final_settled: np.ndarray | None = None

    @property
    def solved(self) -> int:
        """Number of seeds at 0 % training error (final evaluation) that did not diverge."""
        return int(sum(e == 0 and d is None for e, d in zip(self.train_error, self.diverged)))

    @property
    def sparsity(self) -> np.ndarray:
        return np.array([n.sparsity for n in self.networks])


EpochCallback = Callable[[int, NetworkBatch, PhaseResult], "Mapping[str, Any] | None"]


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


def make_networks(task: Task, *, model: str, topology: Any, hidden, seeds: Sequence[int],
                  config: TrainingConfig, params: Mapping[str, float] | None = None) -> list[Network]:
    """The initial network of each seed (weights drawn from that seed's generator)."""
    roles = Roles(task.n_inputs, parse_hidden(hidden), task.n_outputs)
    if config.init_scale_bias is None and config.init_scale_free is None and config.init_mean_free == 0.0:
        return [Network.create(roles, family=model, topology=topology, params=params,
                               init_scale=config.init_scale, rng=_seed_rng(s)) for s in seeds]
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
                           init_scale=1.0, rng=_seed_rng(s)) for s in seeds]
    return [n.with_weights(np.where(n.mask, n.weights * row_scale[:, None] + row_mean[:, None], 0.0))
            for n in nets]


def _seed_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(check_int("seed", seed, low=0))


def evaluate(networks, task: "Task | str", *, substrate: "str | Substrate" = "ode",
             schedule: Schedule | None = None, rng: "np.random.Generator | int | None" = None,
             state_init_high: float = 0.1):
    """Free-phase evaluation: returns ``(trajectory, error (S,), mse (S,))``."""
    task = get_task(task)
    batch = NetworkBatch.of(networks)
    check_task_fits(task, batch.roles)
    sub = get_substrate(substrate)
    schedule = schedule or Schedule()
    s0 = initial_states(np.random.default_rng(rng), len(batch), task.inputs, batch.roles, state_init_high)
    traj = sub.run(batch, task.inputs, s0, schedule).free
    return traj, task.error(traj.outputs), task.mse(traj.outputs)


def check_task_fits(task: Task, roles: Roles) -> None:
    """Raise a clear error when the task's input/output widths do not match the network's."""
    if task.n_inputs != roles.n_inputs or task.n_outputs != roles.n_outputs:
        raise InvalidInputError(
            f"Task {task.name!r} has {task.n_inputs} inputs (bias included) and {task.n_outputs} "
            f"outputs, but the network has {roles.n_inputs} and {roles.n_outputs}.")


def train(task: "Task | str", *, model: str = "deep", topology: Any = "complete",
          hidden: "int | str | Sequence[int]" = 5, seeds: "int | Sequence[int]" = (0,),
          config: TrainingConfig | None = None, substrate: "str | Substrate" = "ode",
          params: Mapping[str, float] | None = None, networks: Sequence[Network] | None = None,
          callbacks: Sequence[EpochCallback] = (), progress: bool = False,
          on_divergence: str = "report") -> TrainingResult:
    """Train one network per seed on ``task`` and return a :class:`TrainingResult`.

    Parameters
    ----------
    task : str or Task
        ``xor``, ``and``, ``or``, ``not``, ``identity`` or a ``-onehot`` version.
    model : str
        Model family (``deep``, ``deep-leaky``, ``ep-asym``, ``ep-sym``).
    topology : str, edge list or networkx.DiGraph
        ``complete``, ``layered`` or a user graph.
    hidden : int, str or sequence of int
        Hidden layer sizes.
    seeds : int or sequence of int
        A count (seeds ``0..n-1``) or the seeds themselves; each seeds its own generator.
    config : TrainingConfig
        Settings; default ``TrainingConfig.preset("default", model=model)``.
    substrate : str or Substrate
        Where the phases run (``ode`` by default).
    networks : sequence of Network, optional
        Start from these networks instead of fresh ones (one per seed).
    callbacks : sequence of callables
        ``callback(epoch, networks, phase_result)`` after each epoch's phases; a returned dict is
        stored in ``History.extra`` under its keys, one entry per epoch.
    progress : bool
        Show a progress bar on stderr.
    on_divergence : {"report", "raise"}
        ``report``: freeze a diverged network, warn with :class:`DivergenceWarning` and record it
        in ``TrainingResult.diverged``. ``raise``: raise :class:`DivergenceError` at once.
    """
    t_start = time.perf_counter()
    task = get_task(task)
    get_family(model)
    config = config or TrainingConfig.preset("default", model=model)
    if config.epochs > 0 and config.nudged_steps < 1:
        raise InvalidInputError("Training needs a nudged phase: 'nudged_steps' must be >= 1; got 0.")
    check_choice("on_divergence", on_divergence, ("report", "raise"))
    if isinstance(seeds, (int, np.integer)):
        seeds = list(range(check_int("seeds", seeds, low=1)))
    seeds = [check_int("seed", s, low=0) for s in seeds]
    if not seeds:
        raise InvalidInputError("At least one seed is needed.")
    rngs = [_seed_rng(s) for s in seeds]
    if networks is None:
        nets = make_networks(task, model=model, topology=topology, hidden=hidden, seeds=seeds,
                             config=config, params=params)
        # make_networks drew the weights from fresh generators of the same seeds; advance ours
        # past those draws so weights and states never share random numbers.
        for g, n in zip(rngs, nets):
            g.normal(size=(n.n_neurons, n.n_neurons))
    else:
        nets = list(networks)
        if len(nets) != len(seeds):
            raise InvalidInputError(f"Got {len(nets)} networks for {len(seeds)} seeds; give one per seed.")
    batch = NetworkBatch.of(nets)
    roles = batch.roles
    check_task_fits(task, roles)
    family = batch.family_
    sub = get_substrate(substrate)
    schedule = config.schedule
    settings = {"beta": config.beta, "beta0": config.beta0, "beta1": config.beta1,
                "nudged_steps": config.nudged_steps}

    S = len(seeds)
    W, b, mask = batch.weights, batch.bias, batch.mask
    histories = [History() for _ in seeds]
    diverged: list[str | None] = [None] * S
    active = np.ones(S, dtype=bool)

    def fail(k: int, msg: str, phase: str, epoch: int, magnitude: float) -> None:
        if on_divergence == "raise":
            raise DivergenceError(f"seed {seeds[k]}: {msg}", phase=phase, epoch=epoch, magnitude=magnitude)
        diverged[k] = msg
        active[k] = False
        warnings.warn(f"seed {seeds[k]}: {msg}; this network is frozen and counted as unsolved.",
                      DivergenceWarning, stacklevel=3)

    # Optional substrate capability (brian2 cpp_standalone): the whole training as one compiled
    # program, given the initial states this loop will draw; the loop below is unchanged and
    # receives each epoch's recording from sub.run (the substrate checks that it matches).
    plan = getattr(sub, "plan_training", None)
    if plan is not None and not callbacks:
        ahead = [copy.deepcopy(g) for g in rngs]
        plan(batch, task.inputs, task.targets, schedule, config,
             np.stack([_draw_initial(ahead, task, roles, config.state_init_high)
                       for _ in range(config.epochs + 1)]))

    bar = _progress(config.epochs, progress, f"{task.name}/{model}/{sub.name}")
    try:
        for epoch in range(config.epochs):
            s0 = _draw_initial(rngs, task, roles, config.state_init_high)
            result = sub.run(batch, task.inputs, s0, schedule, targets=task.targets)
            for ph in (result.free, result.nudged):
                for k in np.flatnonzero(ph.diverged & active):
                    why = (ph.meta.get("diverged_why") or [""] * len(seeds))[k] or "non-finite states"
                    fail(k, f"{ph.phase} phase diverged in epoch {epoch} ({why})", ph.phase, epoch, float("inf"))
            err, mse = task.error(result.free.outputs), task.mse(result.free.outputs)
            dW, db = weight_update(family.rule, result, settings)
            step = config.eta * (np.sign(dW) if config.sign else dW)
            step_norm = np.linalg.norm(np.where(mask, step, 0.0).reshape(S, -1), axis=1)
            W_new, b_new = apply_update(W, b, dW, db, mask, eta=config.eta, l1=config.l1, sign=config.sign)
            big = np.abs(W_new).reshape(S, -1).max(axis=1)
            bad = ~np.isfinite(big) | (big > config.max_weight) | ~np.isfinite(b_new).all(axis=1)
            for k in np.flatnonzero(bad & active):
                fail(k, f"weights diverged in the update of epoch {epoch} (max |W| = {big[k]:.3g}, "
                        f"limit {config.max_weight:g})", "update", epoch, float(big[k]))
            upd = active[:, None, None]
            W = np.where(upd, W_new, W)
            b = np.where(active[:, None], b_new, b)
            if config.prune is not None:
                if config.prune == "stochastic":
                    keep = stochastic_sparsify(W, mask, tol=config.prune_tol,
                                               temperature=config.prune_temperature, rng=rngs)
                else:
                    keep = magnitude_prune(W, mask, tol=config.prune_tol)
                if family.symmetric:
                    keep = symmetric_keep(keep, roles.free)
                mask = np.where(upd, keep, mask)
                W = np.where(mask, W, 0.0)
            batch = NetworkBatch(tuple(n.pruned(mask[k]).with_weights(W[k], b[k] if family.has_bias_vector else None)
                                       for k, n in enumerate(batch.networks)))
            extra = [dict() for _ in seeds]
            for cb in callbacks:
                out = cb(epoch, batch, result)
                if out:
                    for key, val in out.items():
                        for k in range(S):
                            extra[k][key] = val[k] if isinstance(val, (list, tuple, np.ndarray)) and len(val) == S else val
            tmask = batch.topology_mask.reshape(S, -1).sum(axis=1)
            for k, h in enumerate(histories):
                h.mse.append(float(mse[k]))
                h.error.append(float(err[k]))
                h.sparsity.append(float(1.0 - mask[k].sum() / max(tmask[k], 1)))
                h.update_norm.append(float(step_norm[k]))
                h.free_settled.append(float(result.free.settled[k].mean()))
                h.nudged_settled.append(float(result.nudged.settled[k].mean()) if result.nudged is not None else float("nan"))
                for key, val in extra[k].items():
                    h.extra.setdefault(key, []).append(val)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(solved=f"{int(np.sum((err == 0) & active))}/{S}", mse=f"{float(np.mean(mse)):.3g}")
    finally:
        if bar is not None:
            bar.close()

    final = sub.run(batch, task.inputs, _draw_initial(rngs, task, roles, config.state_init_high),
                    schedule).free
    if not final.settled.all():
        warnings.warn(f"Final evaluation: {final.message}", NotSettledWarning, stacklevel=2)
    final_err, final_mse = task.error(final.outputs), task.mse(final.outputs)
    return TrainingResult(task=task, model=model, substrate=sub.name, config=config, seeds=seeds,
                          initial_networks=nets, networks=list(batch.networks), histories=histories,
                          train_error=np.asarray(final_err, dtype=float), mse=np.asarray(final_mse, dtype=float),
                          diverged=diverged, seconds=time.perf_counter() - t_start,
                          final_settled=np.asarray(final.settled, dtype=bool))


def _draw_initial(rngs, task: Task, roles: Roles, high: float) -> np.ndarray:
    """Initial states ``(S, P, N)``, each network's drawn from its own generator."""
    return np.concatenate([initial_states(g, 1, task.inputs, roles, high) for g in rngs])


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # disable=None: a bar on a terminal, nothing in logs and pipes (CI, redirected output).
    return tqdm(total=total, desc=desc, unit="epoch", leave=False, disable=None)
