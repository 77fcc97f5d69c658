"""Gradient alignment: the true gradient of the settled loss, and how closely each rule follows it.

The loss is the task's MSE at the free equilibrium, ``L = 1/P sum_p 1/2 ||s*_out(p) - y(p)||^2``.
Its gradient with respect to every weight comes from implicit differentiation of the fixed
point: on the free neurons that the projection does not hold at a bound (the *interior* set I),
``F_I(s*, W) = 0`` with ``F = s @ A + c - d * s`` (the family's linear form), so
``ds*_I = -J_II^{-1} dF_I`` and ``dL/dtheta = -lambda^T dF/dtheta`` with one linear solve
``J_II^T lambda = dL/ds_I``. Clamped inputs and neurons held at a bound do not move
(``lambda = 0`` there). The family's :meth:`~deepcircuit.model.families.Family.form_gradient` maps
``dL/dA, dL/dc, dL/dd`` to ``dL/dW, dL/db``; for DEEP this gives
``-dL/dW[i, j] = s_i (lambda_j - lambda_i)`` (W[i, j] is j's inflow and i's outflow).

A singular ``J_II`` (DEEP's conserved activity when no interior neuron flows into a held one:
a continuum of equilibria, no gradient) is detected per presentation and reported; those
presentations are left out of both the gradient and the rules' updates, never turned into
numbers.

The rules are applied exactly as training applies them: a substrate runs the free and nudged
phases and :func:`deepcircuit.learning.rule.weight_update` reads the trajectories, so the check
works on every substrate (the gradient is the ideal model's, at the equilibrium polished from
the substrate's free state). Times in tau, states dimensionless, gradients per unit weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .._validation import check_int, check_real
from ..errors import DeepCircuitError, InvalidInputError
from ..learning.rule import weight_update
from ..model.network import Network, NetworkBatch
from ..substrates import Schedule, Substrate, get_substrate, initial_states
from ..substrates.chip import Chip
from ..data.tasks import Task, get_task
from ..substrates.trajectory import PhaseResult
from . import as_built
from .active_set import Equilibria, active_set_equilibria, is_singular
from .finite_differences import central_differences, output_loss, perturbed_networks, settle_schedule

#: The rules compared, keyed by the family that trains with them (``deep-leaky`` shares
#: ``deep``'s rule), plus the two-endpoint variants of DEEP's rule.
RULE_OF = {"deep": "stdp", "deep-stdp2": "stdp2", "deep-stdp2-mirror": "stdp2-mirror", "ep-asym": "endpoint",
           "ep-sym": "contrastive"}
#: Default betas of the sweep (1/tau).
DEFAULT_BETAS = (10.0, 1.0, 0.1, 0.01)


def _form(network: Network):
    fam = network.family_
    return fam, fam.linear_form(np.asarray(network.weights), np.asarray(network.bias), network.params)


def polish_equilibria(network: Network, states, *, tol: float = 1e-9, rcond: float = 1e-10,
                      max_iter: int = 50) -> Equilibria:
    """Exact free equilibria near ``states (P, N)`` (a substrate's settled free states).

    The dynamics are linear between the bounds, so given which neurons the projection holds,
    the interior states solve one linear system. Starting from the neurons at a bound in
    ``states`` (within 1e-6), this alternates that solve with releasing held neurons whose
    velocity points inward and holding interior ones that left [0, 1] (a projected Newton
    iteration), until the state is an equilibrium of the projected dynamics.
    """
    _, f = _form(network)
    A, c, d = f.A, f.c, f.d
    N = network.roles.n_neurons
    Jfull = A.T - np.diag(d)

    def field(s: np.ndarray) -> np.ndarray:
        return s @ A + c - d * s

    def solve_interior(s: np.ndarray, I: np.ndarray) -> bool:
        # Linear between the bounds: the interior states solve one system given the rest.
        J = Jfull[np.ix_(I, I)]
        if is_singular(J, rcond):
            return True
        if I.size:
            rest = np.ones(N, dtype=bool)
            rest[I] = False
            rhs = -(s[rest] @ A[np.ix_(rest, I)] + c[I])
            s[I] = np.linalg.solve(J, rhs)
        return False

    return active_set_equilibria(states, network.roles.n_inputs, field, solve_interior, tol=tol,
                                 scale=max(1.0, float(np.abs(A).max(initial=0.0))), max_iter=max_iter)


def settled_loss(network: Network, eq: Equilibria, targets, *, presentations=None) -> float:
    """``1/P sum_p 1/2 ||s_out - y||^2`` over ``presentations`` (default all; P counts all rows)."""
    targets = np.asarray(targets, dtype=float)
    sel = np.ones(len(targets), dtype=bool) if presentations is None else np.asarray(presentations)
    e = eq.states[sel][:, network.roles.outputs] - targets[sel]
    return float(0.5 * np.sum(e * e) / len(targets))


def loss_gradient(network: Network, eq: Equilibria, targets) -> tuple[np.ndarray, np.ndarray]:
    """``(dL/dW (N, N), dL/db (N,))`` of :func:`settled_loss` over the usable presentations.

    One solve with the transposed interior Jacobian per presentation. Entries outside the live
    mask are 0. For a symmetric family (ep-sym) ``W[i, j]`` and ``W[j, i]`` between free neurons
    are one parameter: both get the sum of the two partial derivatives.
    """
    r = network.roles
    fam, f = _form(network)
    A, c, d = f.A, f.c, f.d
    targets = np.asarray(targets, dtype=float)
    P, N = eq.states.shape
    Jfull = A.T - np.diag(d)
    out = np.zeros(N, dtype=bool)
    out[r.outputs] = True
    gA, gc, gd = np.zeros((N, N)), np.zeros(N), np.zeros(N)
    for p in np.flatnonzero(eq.usable):
        s, inner = eq.states[p], eq.interior[p]
        I = np.flatnonzero(inner)
        if not I.size:
            continue
        g = np.zeros(N)
        g[out] = s[out] - targets[p]
        lam = np.zeros(N)
        lam[I] = np.linalg.solve(Jfull[np.ix_(I, I)].T, g[I])
        # dL/dtheta = -lambda^T dF/dtheta, F_j = sum_i A[i, j] s_i + c_j - d_j s_j
        gA -= np.outer(s, lam)
        gc -= lam
        gd += lam * s
    gW, gb = fam.form_gradient(gA / P, gc / P, gd / P)
    gW = np.where(np.asarray(network.mask), gW, 0.0)
    if fam.symmetric:
        fr = r.free
        blk = gW[fr, fr]
        gW[fr, fr] = np.where(np.asarray(network.mask)[fr, fr], blk + blk.T, 0.0)
    gb = np.asarray(gb, dtype=float).copy()
    gb[: r.n_inputs] = 0.0
    if not fam.has_bias_vector:
        gb[:] = 0.0
    return gW, gb


def finite_difference_gradient(network: Network, eq: Equilibria, targets, entries, *, h: float = 1e-6,
                               settle_steps: int = 4000, dt: float = 0.05) -> np.ndarray:
    """Central finite differences of the settled loss for the weights ``entries [(i, j), ...]``.

    Each perturbed network (``W[i, j] +- h``; for ep-sym both directions of a free pair) is
    settled by the ODE substrate from the unperturbed equilibrium, then polished; the loss is
    summed over the presentations usable in ``eq``.
    """
    r = network.roles
    nets = perturbed_networks(network, entries, h)
    use = eq.usable
    x = eq.states[use][:, : r.n_inputs]
    s0 = np.broadcast_to(eq.states[use], (len(nets),) + eq.states[use].shape).copy()
    free = get_substrate("ode").run(NetworkBatch.of(nets), x, s0, settle_schedule(dt, settle_steps)).free.final
    y = np.asarray(targets, dtype=float)[use]
    return central_differences([output_loss(polish_equilibria(net, free[k]).states, r.outputs, y, len(targets))
                                for k, net in enumerate(nets)], h)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")


def weight_groups(network: Network) -> dict:
    """Masks of the weight groups by role: ``input->hidden`` (bias included), ``input->output``,
    ``hidden->hidden``, ``hidden->output``, ``output->hidden``, ``output->output`` (live only)."""
    r = network.roles
    N = r.n_neurons
    kind = np.empty(N, dtype=object)
    kind[: r.n_inputs] = "input"
    kind[r.n_inputs:N - r.n_outputs] = "hidden"
    kind[N - r.n_outputs:] = "output"
    m = np.asarray(network.mask)
    groups = {}
    for a in ("input", "hidden", "output"):
        for b in ("hidden", "output"):
            g = m & (kind[:, None] == a) & (kind[None, :] == b)
            if g.any():
                groups[f"{a}->{b}"] = g
    return groups


@dataclass
class RuleAlignment:
    """One rule's update against ``-gradient`` over a sweep of beta (NaN where undefined)."""

    rule: str
    beta: list
    cosine: list
    norm_ratio: list
    groups: dict = field(default_factory=dict)
    symmetric: dict | None = None

    def to_dict(self) -> dict:
        d = {"rule": self.rule, "beta": self.beta, "cosine": self.cosine, "norm_ratio": self.norm_ratio,
             "groups": self.groups}
        if self.symmetric is not None:
            d["symmetric"] = self.symmetric
        return d


@dataclass
class AsBuiltReference:
    """The ``"as_built"`` reference: the gradient of the loss of the circuit as built (the
    substrate's chip at its own equilibrium) with respect to the programmed weights
    (:mod:`deepcircuit.stability.as_built`), and each rule's alignment with it."""

    chip: dict
    loss: float
    gradient_norm: float
    finite_difference_error: float
    singular: int
    not_converged: int
    presentations: int
    rules: dict = field(default_factory=dict)
    usable: np.ndarray | None = None
    grad: np.ndarray | None = None
    gW: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"chip": self.chip, "loss": self.loss, "gradient_norm": self.gradient_norm,
                "finite_difference_error": self.finite_difference_error, "singular": self.singular,
                "not_converged": self.not_converged, "rules": {k: v.to_dict() for k, v in self.rules.items()}}


@dataclass
class GradientCheck:
    """What :func:`gradient_check` returns; ``to_dict`` is the ``gradcheck --json`` object.

    The top-level ``loss``, ``gradient_norm``, ``finite_difference_error`` and ``rules`` are the
    ``"ideal"`` reference (the ideal model's gradient at the ideal equilibrium polished from the
    substrate's states); ``as_built`` the circuit as built. ``to_dict()["references"]`` names both.
    """

    family: str
    task: str
    substrate: str
    presentations: int
    singular: int
    not_converged: int
    loss: float
    gradient_norm: float
    finite_difference_error: float
    rules: dict
    status: str
    message: str
    as_built: AsBuiltReference | None = None

    def to_dict(self) -> dict:
        ideal = {"loss": self.loss, "gradient_norm": self.gradient_norm,
                 "finite_difference_error": self.finite_difference_error, "singular": self.singular,
                 "not_converged": self.not_converged, "rules": {k: v.to_dict() for k, v in self.rules.items()}}
        refs = {"ideal": ideal}
        if self.as_built is not None:
            refs["as_built"] = self.as_built.to_dict()
        return {"family": self.family, "task": self.task, "substrate": self.substrate,
                "presentations": self.presentations, "status": self.status, "message": self.message,
                **ideal, "references": refs}


def _select(result: PhaseResult, keep: np.ndarray) -> PhaseResult:
    from dataclasses import replace as dc_replace

    def cut(t):
        if t is None:
            return None
        # Sums a substrate measured over all presentations no longer apply to a subset.
        meta = {k: v for k, v in t.meta.items() if k != "synaptic_traces" or keep.all()}
        return dc_replace(t, states=t.states[:, keep], settled=t.settled[:, keep], meta=meta)
    return PhaseResult(cut(result.free), cut(result.nudged))


def _vector(network: Network, dW, db) -> np.ndarray:
    r = network.roles
    parts = [np.asarray(dW)[np.asarray(network.mask)]]
    if network.family_.has_bias_vector:
        parts.append(np.asarray(db)[r.n_inputs:])
    return np.concatenate(parts)


def gradient_check(network: Network, task: "Task | str", *, betas: Sequence[float] = DEFAULT_BETAS,
                   schedule: Schedule | None = None, substrate: "str | Substrate" = "ode",
                   rules: Mapping[str, str] | None = None, symmetric: bool = True,
                   settings: Mapping[str, float] | None = None, seed: int = 0,
                   fd_entries: int = 40, fd_step: float = 1e-6) -> GradientCheck:
    """Gradient of the settled loss, its finite-difference check, and each rule's alignment.

    Parameters
    ----------
    network : Network
        The network (any family); its dynamics are used for every rule.
    task : Task or str
        Presentations and targets.
    betas : sequence of float
        Nudging strengths of the sweep (1/tau).
    schedule : Schedule
        dt and phase lengths (default: ``Schedule()``, the paper's); ``beta`` is replaced.
    substrate : str or Substrate
        Where the phases run; the rules read its trajectories.
    rules : mapping
        ``{label: rule}`` to compare (default :data:`RULE_OF`).
    symmetric : bool
        Also the symmetric-nudge estimate (phases at ``+beta`` and ``-beta``,
        ``(U(beta) - U(-beta)) / 2``) where the substrate runs a negative beta.
    settings : mapping
        ``beta0``, ``beta1`` of the STDP rules (default 0, 1).
    fd_entries : int
        How many live weights (chosen at random, seeded) the finite-difference check perturbs.
    """
    task = get_task(task)
    betas = [check_real("beta", b, low=0.0, low_open=True) for b in betas]
    if not betas:
        raise InvalidInputError("Give at least one beta.")
    check_int("fd_entries", fd_entries, low=0)
    schedule = schedule or Schedule()
    rules = dict(rules or RULE_OF)
    settings = {"beta0": 0.0, "beta1": 1.0, **dict(settings or {})}
    r = network.roles
    sub = get_substrate(substrate)
    rng = np.random.default_rng(seed)
    s0 = initial_states(rng, 1, task.inputs, r, 0.1)
    batch = NetworkBatch.of(network)
    base = sub.run(batch, task.inputs, s0, Schedule(dt=schedule.dt, free_steps=schedule.free_steps,
                                                     nudged_steps=0, beta=0.0,
                                                     settle_tol=schedule.settle_tol)).free
    if base.diverged.any():
        raise InvalidInputError(f"The free phase diverged on {sub.name}: {base.message}")
    eq = polish_equilibria(network, base.final[0])
    use = eq.usable
    P = task.n_presentations
    n_sing, n_nc = int(eq.singular.sum()), int((~eq.converged & ~eq.singular).sum())
    gW, gb = loss_gradient(network, eq, task.targets)
    grad = _vector(network, gW, gb)
    gnorm = float(np.linalg.norm(grad))
    loss = settled_loss(network, eq, task.targets)
    status, msg = "ok", ""
    if not use.any():
        status = "singular" if n_sing else "not-converged"
        msg = (f"no presentation has an isolated equilibrium ({n_sing} of {P} with a singular interior "
               f"Jacobian: a continuum of equilibria, no gradient; {n_nc} not converged)")
    elif n_sing or n_nc:
        msg = (f"{n_sing} of {P} presentations have a singular interior Jacobian (no gradient) and "
               f"{n_nc} did not converge; they are left out of the gradient and the rules")
    # finite differences on a random subset of live weights (and ep biases are checked through W)
    fd_err = float("nan")
    pick = None
    if use.any() and fd_entries:
        live = np.argwhere(np.asarray(network.mask))
        if network.family_.symmetric:
            live = live[(live[:, 0] < r.n_inputs) | (live[:, 0] < live[:, 1])]
        pick = live[rng.choice(len(live), size=min(fd_entries, len(live)), replace=False)]
        fd = finite_difference_gradient(network, eq, task.targets, [tuple(e) for e in pick], h=fd_step)
        an = gW[pick[:, 0], pick[:, 1]]
        # Relative to the whole gradient's norm; absolute when the gradient is 0 (saturated
        # outputs). A weakly active bound (a neuron exactly at 0 or 1 with zero velocity) is a
        # kink where finite differences only converge like h.
        fd_err = float(np.linalg.norm(fd - an) / (gnorm if gnorm > 1e-9 else 1.0))
    # The circuit as built: the substrate's chip (its realised weights and element laws), polished
    # from the same free states; the reference in-situ learning should follow (deepcircuit.stability.as_built).
    chip = getattr(sub, "chip", None) or Chip()
    built = _as_built_reference(network, chip, base.final[0], task, rng_pick=pick if use.any() and fd_entries else None,
                                fd_step=fd_step)
    groups = weight_groups(network)
    refs = {"ideal": (use, grad, gW, gnorm), "as_built": (built.usable, built.grad, built.gW, built.gradient_norm)}
    aligned = {ref: {label: RuleAlignment(rule, list(betas), [], [], {g: [] for g in groups},
                                          {"cosine": [], "norm_ratio": []} if symmetric else None)
                     for label, rule in rules.items()} for ref in refs}
    sym_ok = symmetric
    for beta in betas:
        sched = Schedule(dt=schedule.dt, free_steps=schedule.free_steps, nudged_steps=schedule.nudged_steps,
                         beta=beta, settle_tol=schedule.settle_tol)
        res_all = sub.run(batch, task.inputs, s0, sched, targets=task.targets)
        res_m_all = None
        if sym_ok:
            try:
                res_m_all = sub.run(batch, task.inputs, s0, _negative(sched), targets=task.targets)
            except DeepCircuitError:
                # This substrate cannot run a negative nudge; the estimate is left out.
                sym_ok = False
        st = {"beta": beta, "nudged_steps": schedule.nudged_steps, **settings}
        for ref, (keep, g_vec, g_W, g_norm) in refs.items():
            res = _select(res_all, keep)
            res_m = None if res_m_all is None else _select(res_m_all, keep)
            for label, rule in rules.items():
                _align(aligned[ref][label], network, rule, res, res_m, st, keep, g_vec, g_W, g_norm, groups)
    if symmetric and not sym_ok:
        for table in aligned.values():
            for a in table.values():
                a.symmetric = None
    built.rules = aligned["as_built"]
    return GradientCheck(network.family, task.name, sub.name, P, n_sing, n_nc, loss, gnorm, fd_err,
                         aligned["ideal"], status, msg, built)


def _align(a: "RuleAlignment", network: Network, rule: str, res, res_m, st: dict, use, grad, gW, gnorm,
           groups) -> None:
    """Append one beta's alignment of ``rule``'s update (read from ``res``, the usable presentations
    ``use``) with ``-grad`` to ``a``."""
    P = len(use)
    n_use = max(int(use.sum()), 1)
    dW, db = (x[0] * n_use / P for x in weight_update(rule, res, st)) if use.any() else (gW * 0, gW[0] * 0)
    u = _vector(network, dW, db)
    a.cosine.append(_cos(u, -grad))
    a.norm_ratio.append(float(np.linalg.norm(u) / gnorm) if gnorm > 0 else float("nan"))
    for g, m in groups.items():
        a.groups[g].append(_cos(np.asarray(dW)[m], -gW[m]))
    if a.symmetric is not None:
        if res_m is not None and use.any():
            dWm, dbm = (x[0] * n_use / P for x in weight_update(rule, res_m, st))
            us = 0.5 * (u - _vector(network, dWm, dbm))
            a.symmetric["cosine"].append(_cos(us, -grad))
            a.symmetric["norm_ratio"].append(float(np.linalg.norm(us) / gnorm) if gnorm > 0 else float("nan"))
        else:
            a.symmetric["cosine"].append(float("nan"))
            a.symmetric["norm_ratio"].append(float("nan"))


def _as_built_reference(network: Network, chip: Chip, free_states, task: Task, *, rng_pick, fd_step: float
                        ) -> "AsBuiltReference":
    """The chip's settled loss, its gradient with respect to the programmed weights and its
    finite-difference check on the weights ``rng_pick`` (the ones the ideal check perturbs)."""
    dyn = as_built.AsBuilt(network, chip)
    eq = as_built.polish(dyn, free_states)
    gW, gb = as_built.loss_gradient(dyn, eq, task.targets)
    grad = _vector(network, gW, gb)
    gnorm = float(np.linalg.norm(grad))
    fd_err = float("nan")
    if rng_pick is not None and eq.usable.any():
        fd = as_built.finite_difference_gradient(network, chip, eq, task.targets, [tuple(e) for e in rng_pick],
                                                 h=fd_step)
        fd_err = float(np.linalg.norm(fd - gW[rng_pick[:, 0], rng_pick[:, 1]]) / (gnorm if gnorm > 1e-9 else 1.0))
    P = task.n_presentations
    return AsBuiltReference(chip.describe(), settled_loss(network, eq, task.targets), gnorm, fd_err,
                            int(eq.singular.sum()), int((~eq.converged & ~eq.singular).sum()), P,
                            usable=eq.usable, grad=grad, gW=gW)


def _negative(schedule: Schedule) -> Schedule:
    """The schedule with ``-beta`` (outputs pushed away from the target)."""
    from dataclasses import replace as dc_replace

    return dc_replace(schedule, beta=-schedule.beta)
