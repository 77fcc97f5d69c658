"""Substrate comparison: the same network run and trained on several substrates.

Inference: every substrate runs the free and nudged phases from the same initial states, and
is judged against the accurate ODE reference (adaptive integrator, tight tolerances): largest
deviation of the settled states, RMS deviation of the trajectories on the common time grid
(tau), classification, and the Lyapunov check of its own trajectories (the stability module,
unchanged). Learning: each substrate trains from the same seed and initial weights; final
accuracy, relative deviation of the final weights from the ODE-trained ones, sparsity, time.

Substrates are named by specs, as on the command line (:mod:`deepcircuit.substrates.spec`):
``"spice:clamp=limiter"``, ``"brian2:target=cython"``, ``"spice:mismatch=0.3;seed=1"``. The
reference every deviation is measured against is a spec too (``reference``; default the ideal
ODE): ``reference="ode:mismatch=0.3;seed=1"`` measures a SPICE chip against the same chip on the ODE.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from .._validation import check_real
from ..errors import DivergenceError, InvalidInputError, SimulationError
from .hardware_figures import summary as hardware_summary
from ..model.network import Network, NetworkBatch
from ..stability import TrajectoryCheck, check_phases
from ..substrates import (Schedule, SubstrateSpec, build_substrate, initial_states,
                          parse_substrate_spec)
from ..substrates.ode import OdeSubstrate
from ..data.tasks import Task, get_task
from ..learning.config import TrainingConfig
from ..learning.evaluation import check_task_fits
from ..learning.training import train
from ..substrates.trajectory import PhaseResult


#: Hardware figures every substrate's entry of ``compare --json`` carries (None where they do not exist).
HARDWARE_KEYS = ("energy_per_inference_J", "energy_per_step_J", "energy_free_phase_J", "unsettled",
                 "settling_time_s", "peak_power_W", "mean_power_W", "devices", "area_um2")


class _Stages:
    """Progress of a comparison: a bar on stderr naming the run under way (``progress``; on a
    terminal only, nothing in logs and pipes) and the caller's ``on_stage`` callback."""

    def __init__(self, total: int, progress: bool, on_stage: Callable[[str], None] | None) -> None:
        self.on_stage = on_stage
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="run", leave=False, disable=None)

    def stage(self, what: str) -> None:
        if self.on_stage is not None:
            self.on_stage(what)
        if self.bar is not None:
            self.bar.set_description(what)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _naming(label: str):
    """A simulation error inside re-raised with the substrate spec that raised it in front, so a
    comparison of several substrates says which one failed."""
    try:
        yield
    except DivergenceError as exc:
        raise DivergenceError(f"substrate {label!r}: {exc}", phase=exc.phase, epoch=exc.epoch,
                              magnitude=exc.magnitude) from exc
    except SimulationError as exc:
        raise SimulationError(f"substrate {label!r}: {exc}") from exc


def _parsed_specs(substrates: Sequence[str]) -> list[SubstrateSpec]:
    """Every spec of ``substrates`` parsed (:func:`deepcircuit.substrates.parse_substrate_spec`); at least one."""
    specs = [parse_substrate_spec(s) for s in substrates]
    if not specs:
        raise InvalidInputError("Give at least one substrate to compare.")
    return specs


def _reference(reference: "str | None", *, accurate: bool, rtol: float, atol: float, **budget):
    """``(label, substrate)`` every deviation is measured against.

    None: the ideal ODE, by the accurate adaptive integrator (``accurate``, logic tasks) or by
    projected Euler (data sets). A spec runs as written, except that an ``ode`` spec without
    ``method=`` is integrated as accurately as the default when ``accurate``.
    """
    spec = parse_substrate_spec(reference or "ode")
    options = dict(spec.options)
    if spec.name == "ode" and accurate and "method" not in options:
        options = {"method": "adaptive", "rtol": rtol, "atol": atol, **budget, **options}
    label = reference or ("ode (adaptive reference)" if accurate else "ode")
    return label, build_substrate(spec.name, options)


@dataclass
class InferenceComparison:
    """One substrate's inference against the accurate ODE reference.

    Deviations are in units of the state (1.0 = V_scale); ``trajectory_rms`` is over the free
    neurons of both phases, every presentation, on the reference's time grid (tau).
    """

    label: str
    substrate: str
    result: PhaseResult
    max_state_deviation: float
    max_state_deviation_nudged: float
    trajectory_rms: float
    euler_deviation: float
    accuracy: float
    predictions: list
    lyapunov: dict[str, TrajectoryCheck]
    seconds: float
    meta: dict = field(default_factory=dict)
    #: Hardware figures of merit (``hardware_figures.summary``): energy, settling time, devices;
    #: None where a substrate has no such figure.
    hardware: dict = field(default_factory=dict)
    #: Per presentation: did the free phase settle (``max |ds/dt|`` below the schedule's
    #: ``settle_tol`` at its end)? ``accuracy`` reads the outputs at the end either way.
    settled: list = field(default_factory=list)
    #: Per presentation: was the output classified correctly (free phase, final states)?
    correct: list = field(default_factory=list)

    @property
    def unsettled_presentations(self) -> list[int]:
        """Presentations whose free phase had not settled: their outputs are not equilibria."""
        return [p for p, ok in enumerate(self.settled) if not ok]

    @property
    def accuracy_settled_only(self) -> float | None:
        """Accuracy over the settled presentations only (None when none settled)."""
        ok = [c for c, st in zip(self.correct, self.settled) if st]
        return float(np.mean(ok)) if ok else None

    @property
    def lyapunov_monotone(self) -> bool:
        """Whether V was non-increasing along every phase and presentation."""
        return all(c.monotone for c in self.lyapunov.values())

    def to_dict(self) -> dict:
        return {"substrate": self.substrate, "max_state_deviation": self.max_state_deviation,
                "max_state_deviation_nudged": self.max_state_deviation_nudged,
                "trajectory_rms": self.trajectory_rms, "euler_deviation": self.euler_deviation,
                "accuracy": self.accuracy,
                # An accuracy read from states that had not settled is marked as such.
                "accuracy_from_unsettled_states": bool(self.unsettled_presentations),
                "accuracy_settled_only": self.accuracy_settled_only,
                "unsettled_presentations": self.unsettled_presentations,
                "settled_per_presentation": [bool(x) for x in self.settled],
                "predictions": self.predictions, "lyapunov_monotone": self.lyapunov_monotone,
                "lyapunov": {ph: {"monotone": c.monotone,
                                  "function": c.checks[0].function.name if c.checks else None,
                                  "max_increase": max((ch.max_increase for ch in c.checks), default=0.0)}
                             for ph, c in self.lyapunov.items()},
                "settled": bool(self.result.free.settled.all()), "seconds": self.seconds,
                **{k: self.hardware.get(k) for k in HARDWARE_KEYS},
                "meta": {k: v for k, v in self.meta.items() if isinstance(v, (int, float, str, bool))}}


@dataclass
class TrainingComparison:
    """One substrate's training from the shared seed and initial weights."""

    label: str
    substrate: str
    network: Network
    accuracy: float
    weight_deviation: float | None
    sparsity: float
    seconds: float
    history: Any
    diverged: str | None
    #: Presentations of the final evaluation that had not settled (``accuracy`` reads them anyway).
    unsettled_presentations: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "weight_deviation": self.weight_deviation,
                "sparsity": self.sparsity, "seconds": self.seconds, "diverged": self.diverged,
                "accuracy_from_unsettled_states": bool(self.unsettled_presentations),
                "unsettled_presentations": list(self.unsettled_presentations)}


@dataclass
class Comparison:
    """Everything :func:`compare` measured, keyed by substrate label."""

    task: Task
    network: Network
    schedule: Schedule
    reference: PhaseResult
    inference: dict[str, InferenceComparison]
    training: dict[str, TrainingComparison] = field(default_factory=dict)
    #: The spec of the substrate every deviation is measured against (``reference`` is its run).
    reference_label: str = "ode (adaptive reference)"

    def to_dict(self) -> dict:
        out = {}
        for label, inf in self.inference.items():
            d = inf.to_dict()
            if label in self.training:
                d["training"] = self.training[label].to_dict()
            out[label] = d
        return out


def energy_counts(res) -> dict:
    """Energy-like counts of a spiking substrate's run (empty for substrates without spikes).

    ``spikes_per_inference``: spikes of one presentation's free phase (all neurons, inputs
    included); ``spikes_per_training_step``: free plus nudged phase of one presentation;
    ``synaptic_events_per_second``: spikes times live outgoing synapses, per simulated second
    of one presentation.
    """
    f, n = res.free.meta, (res.nudged.meta if res.nudged is not None else {})
    if "spikes_per_presentation" not in f:
        return {}
    out = {"spikes_per_inference": float(f["spikes_per_presentation"]),
           "synaptic_events_per_second": float(f["synaptic_events_per_second"])}
    if "spikes_per_presentation" in n:
        out["spikes_per_training_step"] = float(f["spikes_per_presentation"] + n["spikes_per_presentation"])
    return out


def correct_per_presentation(task: Task, outputs: np.ndarray) -> list[bool]:
    """Whether each presentation's ``outputs (P, n_outputs)`` are classified correctly."""
    wrong = np.asarray(task.predict(outputs)) != task.labels
    if wrong.ndim > 1:
        wrong = wrong.any(axis=-1)
    return [bool(not w) for w in wrong]


def compare_inference(network: Network, task: "Task | str", substrates: Sequence[str], *,
                      schedule: Schedule | None = None, seed: int = 0, reference_rtol: float = 1e-10,
                      reference_atol: float = 1e-12, lyapunov_rtol: float = 1e-6,
                      lyapunov_bound_tol: float = 1e-6, reference_max_evaluations: "int | None" = 500_000,
                      reference_max_seconds: "float | None" = 120.0, progress: bool = False,
                      on_stage: "Callable[[str], None] | None" = None, reference: "str | None" = None) -> Comparison:
    """Run ``network`` on every substrate and judge each against the reference (default: the
    accurate ideal ODE).

    Parameters
    ----------
    network : Network
        The (trained) network; one network, not a batch.
    task : Task or str
        Its inputs are the presentations; its targets drive the nudged phase.
    substrates : sequence of str
        Substrate specs (``"ode"``, ``"brian2"``, ``"spice:clamp=limiter"``, ...).
    schedule : Schedule
        Phase lengths and dt (tau); default: ``Schedule()`` (the reference's).
    seed : int
        Seed of the shared initial states.
    reference_rtol, reference_atol : float
        Tolerances of the adaptive reference integrator.
    lyapunov_rtol, lyapunov_bound_tol : float
        Passed to :func:`deepcircuit.stability.check_trajectory` as ``rtol`` and ``bound_tol``;
        ``bound_tol`` is raised to twice the clamp overshoot a substrate reports in
        ``meta["clamp_overshoot_max"]`` (soft clamps hold neurons slightly past the bound).
    reference_max_evaluations, reference_max_seconds : int, float or None
        Work budget of the adaptive reference per phase (see :class:`OdeSubstrate`); a stiff
        network stops with a :class:`~deepcircuit.errors.SimulationError` instead of running on.
    progress : bool
        Show a bar on stderr naming the run under way (on a terminal only).
    on_stage : callable, optional
        Called with a description of each run before it starts (``"running substrate 'spice'"``).
    reference : str, optional
        The substrate spec every deviation is measured against (default: the ideal ODE). An
        ``ode`` spec without ``method=`` runs on the adaptive integrator with the reference
        tolerances and budgets; ``euler_deviation`` is then against the same spec's projected Euler.

    A substrate whose run diverged (non-finite states, or node voltages far outside the rails)
    raises :class:`~deepcircuit.errors.DivergenceError` naming it: its numbers would not be
    results.
    """
    task = get_task(task)
    if not isinstance(network, Network):
        raise InvalidInputError(f"compare_inference takes one Network; got {type(network).__name__}.")
    check_task_fits(task, network.roles)
    specs = _parsed_specs(substrates)
    # Full-length phases on every substrate, so trajectories share one time grid.
    schedule = replace(schedule or Schedule(), stop_at_equilibrium=False)
    batch = NetworkBatch.of(network)
    s0 = initial_states(np.random.default_rng(seed), 1, task.inputs, network.roles)
    stages = _Stages(2 + len(specs), progress, on_stage)
    stage, done = stages.stage, stages.done

    ref_label, ref_sub = _reference(reference, accurate=True, rtol=reference_rtol, atol=reference_atol,
                                    max_evaluations=reference_max_evaluations, max_seconds=reference_max_seconds)
    ref_spec = parse_substrate_spec(reference or "ode")
    euler_sub = (build_substrate("ode", {**ref_spec.options, "method": "euler"}) if ref_spec.name == "ode"
                 else OdeSubstrate())
    try:
        stage("running the adaptive ODE reference" if reference is None else f"running the reference {ref_label!r}")
        # A reference the user named is named in its errors; the default's say what they are.
        with ref_sub, (_naming(ref_label) if reference is not None else contextlib.nullcontext()):
            ref = ref_sub.run(batch, task.inputs, s0, schedule, targets=task.targets)
        done()
        stage("running the projected-Euler ODE")
        euler = euler_sub.run(batch, task.inputs, s0, schedule, targets=task.targets)
        done()
        runs = []
        for k, spec in enumerate(specs):
            label = spec.text
            stage(f"running substrate {label!r} ({k + 1} of {len(specs)})")
            t0 = time.perf_counter()
            with spec.build() as sub, _naming(label):
                res = sub.run(batch, task.inputs, s0, schedule, targets=task.targets)
            runs.append((label, spec.name, res, time.perf_counter() - t0))
            for ph in (res.free, res.nudged):
                if ph is not None and ph.diverged.any():
                    raise DivergenceError(f"substrate {label!r}: {ph.message}", phase=ph.phase,
                                          magnitude=float(ph.meta.get("magnitude", np.inf)))
            done()
    finally:
        stages.close()
    fr = network.roles.free
    out: dict[str, InferenceComparison] = {}
    for label, name, res, seconds in runs:
        dev_free = float(np.abs(res.free.final[..., fr] - ref.free.final[..., fr]).max())
        dev_nudged = float(np.abs(res.nudged.final[..., fr] - ref.nudged.final[..., fr]).max())
        sq, eul = [], 0.0
        for mine, theirs, base in ((res.free, ref.free, euler.free), (res.nudged, ref.nudged, euler.nudged)):
            if mine.times.shape != theirs.times.shape or not np.allclose(mine.times, theirs.times):
                mine = mine.resample(np.clip(theirs.times, mine.times[0], mine.times[-1]))
            sq.append(((mine.states[..., fr] - theirs.states[..., fr]) ** 2).ravel())
            eul = max(eul, float(np.abs(mine.states[..., fr] - base.states[..., fr]).max()))
        rms = float(np.sqrt(np.mean(np.concatenate(sq))))
        # A soft clamp holds a neuron slightly beyond its bound; a substrate that measures that
        # overshoot reports it, and a neuron that far from the bound still counts as held.
        overshoot = max(float(res.free.meta.get("clamp_overshoot_max", 0.0) or 0.0),
                        float(res.nudged.meta.get("clamp_overshoot_max", 0.0) or 0.0))
        checks = check_phases(res, batch, beta=schedule.beta, targets=task.targets, rtol=lyapunov_rtol,
                              bound_tol=max(lyapunov_bound_tol, 2.0 * overshoot))
        pred = task.predict(res.free.outputs)[0]
        meta = dict(res.free.meta)
        meta.update(energy_counts(res))
        out[label] = InferenceComparison(
            label, name, res, dev_free, dev_nudged, rms, eul, float(1.0 - task.error(res.free.outputs)[0]),
            np.asarray(pred).tolist(), checks, seconds, meta, hardware_summary(res),
            settled=[bool(x) for x in res.free.settled[0]], correct=correct_per_presentation(task, res.free.outputs[0]))
    return Comparison(task, network, schedule, ref, out, reference_label=ref_label)


def compare_training(initial: Network, task: "Task | str", substrates: Sequence[str], *, seed: int = 0,
                     config: TrainingConfig | None = None, progress: bool = False,
                     on_stage: "Callable[[str], None] | None" = None) -> dict[str, TrainingComparison]:
    """Train ``initial`` on every substrate from the same seed; compare with the ODE-trained weights.

    The ODE substrate (projected Euler) is always trained as the baseline of
    ``weight_deviation = ||W_substrate - W_ode||_F / ||W_ode||_F``.
    """
    task = get_task(task)
    config = config or TrainingConfig.preset("default", model=initial.family)
    specs = _parsed_specs(substrates)
    if not any(sp.name == "ode" and not sp.options for sp in specs):
        specs.insert(0, SubstrateSpec("ode", {}, "ode"))
    out: dict[str, TrainingComparison] = {}
    for spec in specs:
        label, name = spec.text, spec.name
        if on_stage is not None:
            on_stage(f"training on substrate {label!r}")
        with spec.build() as sub:
            r = train(task, networks=[initial], seeds=[seed], config=config, substrate=sub,
                      progress=progress, on_divergence="report")
        unsettled = [] if r.final_settled is None else np.flatnonzero(~r.final_settled[0]).tolist()
        out[label] = TrainingComparison(label, name, r.networks[0], float(1.0 - r.train_error[0]), None,
                                        float(r.networks[0].sparsity), r.seconds, r.histories[0], r.diverged[0],
                                        unsettled)
    W_ode = out["ode"].network.weights
    norm = float(np.linalg.norm(W_ode)) or 1.0
    for tc in out.values():
        tc.weight_deviation = float(np.linalg.norm(tc.network.weights - W_ode) / norm)
    return out


def compare(network: Network, task: "Task | str", substrates: Sequence[str], *,
            schedule: Schedule | None = None, seed: int = 0, train_from: Network | None = None,
            config: TrainingConfig | None = None, progress: bool = False,
            on_stage: "Callable[[str], None] | None" = None, **inference_options) -> Comparison:
    """:func:`compare_inference`, plus :func:`compare_training` from ``train_from`` if given."""
    comp = compare_inference(network, task, substrates, schedule=schedule, seed=seed, progress=progress,
                             on_stage=on_stage, **inference_options)
    if train_from is not None:
        comp.training = compare_training(train_from, task, substrates, seed=seed, config=config,
                                         progress=progress, on_stage=on_stage)
    return comp


#: Energy per event assumed for a spiking implementation on a digital neuromorphic chip, for the
#: estimate of :class:`PredictionComparison` (joules): Intel's Loihi as measured by Davies et al.,
#: "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning", IEEE Micro 38(1), 2018
#: (energy table: 23.6 pJ per synaptic spike operation, 1.7 pJ per spike sent within a tile).
#: Assumptions taken from the literature, not measurements of this project.
ENERGY_PER_SYNAPTIC_EVENT_J = 23.6e-12
ENERGY_PER_SPIKE_J = 1.7e-12


@dataclass(frozen=True)
class SpikeCounts:
    """Spikes and synaptic events of one inference (free phase, one sample; mean over the samples)
    and the energy estimate ``spikes * energy_per_spike + events * energy_per_synaptic_event``."""

    spikes_per_inference: float
    synaptic_events_per_inference: float
    energy_per_inference_J: float
    energy_per_spike_J: float
    energy_per_synaptic_event_J: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class PredictionComparison:
    """One substrate's predictions on the samples of a data set's split, against the reference's.

    ``accuracy`` is on ``split`` (normally ``test``); ``agreement`` is the fraction of samples
    whose predicted class equals the reference's (default the projected-Euler ideal ODE, the
    substrate training uses); ``settled`` the fraction of samples whose free phase reached
    equilibrium; ``max_state_deviation`` the largest difference of a settled free state from the
    reference's (units of the state, 1.0 = V_scale; every free neuron and sample), as on logic tasks.
    """

    label: str
    substrate: str
    split: str
    accuracy: float
    agreement: float
    settled: float
    predictions: list
    seconds: float
    max_state_deviation: float = 0.0
    reference: str = "ode"
    #: A spiking substrate's counts and energy estimate per inference (None for the others).
    spikes: "SpikeCounts | None" = None

    def to_dict(self) -> dict:
        return {"substrate": self.substrate, "split": self.split, "accuracy": self.accuracy,
                "agreement_with_ode": self.agreement, "settled": self.settled,
                "max_state_deviation": self.max_state_deviation, "reference": self.reference,
                "seconds": self.seconds, "n_samples": len(self.predictions),
                **(self.spikes.to_dict() if self.spikes is not None else {})}


def compare_predictions(network: Network, task: Task, substrates: Sequence[str], *,
                        schedule: Schedule | None = None, seed: int = 0,
                        state_init_high: float = 0.1, progress: bool = False,
                        on_stage: Callable[[str], None] | None = None,
                        reference: "str | None" = None,
                        energy_per_spike: float = ENERGY_PER_SPIKE_J,
                        energy_per_synaptic_event: float = ENERGY_PER_SYNAPTIC_EVENT_J,
                        ) -> dict[str, PredictionComparison]:
    """Free-phase predictions of ``network`` on every presentation of ``task``, per substrate.

    Made for data sets (hundreds of samples, hundreds of neurons): only the settled outputs
    are kept (presentations run in memory-bounded chunks), and each substrate is judged by its
    accuracy, by how often its predicted class agrees with the reference's and by the largest
    deviation of its settled free states from the reference's. ``reference``: a substrate spec
    run as written (default: the ideal ODE by projected Euler, the substrate training uses).
    Every substrate starts from the same initial states (drawn from ``seed``). ``task`` is a
    resolved Task (for example ``Dataset.test.subset(range(100))``); nothing is looked up by name.
    ``progress`` and ``on_stage`` report the substrate under way, as in :func:`compare_inference`.
    A spiking substrate also gets :class:`SpikeCounts` with ``energy_per_spike`` and
    ``energy_per_synaptic_event`` (joules; defaults :data:`ENERGY_PER_SPIKE_J`,
    :data:`ENERGY_PER_SYNAPTIC_EVENT_J`).
    """

    energy_per_spike = check_real("energy_per_spike", energy_per_spike, low=0.0)
    energy_per_synaptic_event = check_real("energy_per_synaptic_event", energy_per_synaptic_event, low=0.0)
    if not isinstance(task, Task):
        raise InvalidInputError(f"compare_predictions takes a resolved Task; got {type(task).__name__}.")
    check_task_fits(task, network.roles)
    specs = _parsed_specs(substrates)
    # Full-length free phases everywhere: every substrate is judged on the same time budget.
    schedule = replace(schedule or Schedule(), stop_at_equilibrium=False)
    batch = NetworkBatch.of(network)

    def run(sub):
        t0 = time.perf_counter()
        finals, settled, counts = _settled_states(sub, batch, task, seed, schedule, state_init_high)
        spikes = None
        if counts is not None:  # (spikes, synaptic events) over every sample: per inference
            n_spk, n_ev = counts[0] / task.n_presentations, counts[1] / task.n_presentations
            spikes = SpikeCounts(n_spk, n_ev, n_spk * energy_per_spike + n_ev * energy_per_synaptic_event,
                                 energy_per_spike, energy_per_synaptic_event)
        return finals, settled, time.perf_counter() - t0, spikes

    ref_label, ref_sub = _reference(reference, accurate=False, rtol=0.0, atol=0.0)
    ref_spec = parse_substrate_spec(reference or "ode")
    stages = _Stages(1 + len(specs), progress, on_stage)
    n = task.n_presentations
    fr, outs = network.roles.free, network.roles.outputs
    out: dict[str, PredictionComparison] = {}
    try:
        stages.stage(f"running the projected-Euler ODE on {n} samples" if reference is None
                     else f"running the reference {ref_label!r} on {n} samples")
        with ref_sub, _naming(ref_label):
            ref, ref_settled, ref_seconds, ref_spikes = run(ref_sub)
        stages.done()
        ref_pred = np.asarray(task.predict(ref[..., outs]))
        for k, spec in enumerate(specs):
            label = spec.text
            if (spec.name, spec.options) == (ref_spec.name, ref_spec.options):  # the reference itself
                finals, settled, seconds, spikes = ref, ref_settled, ref_seconds, ref_spikes
            else:
                stages.stage(f"running substrate {label!r} ({k + 1} of {len(specs)}) on {n} samples")
                with spec.build() as sub, _naming(label):
                    finals, settled, seconds, spikes = run(sub)
            stages.done()
            pred = np.asarray(task.predict(finals[..., outs]))
            same = pred == ref_pred
            if same.ndim > 1:
                same = same.all(axis=-1)
            err = float(np.asarray(task.error(finals[None, :, outs]))[0])
            dev = float(np.abs(finals[:, fr] - ref[:, fr]).max())
            out[label] = PredictionComparison(label, spec.name, task.split, 1.0 - err, float(same.mean()),
                                              float(settled.mean()), pred.tolist(), seconds, dev, ref_label,
                                              spikes)
    finally:
        stages.close()
    return out


def _settled_states(sub, batch: NetworkBatch, task: Task, seed: int, schedule: Schedule,
                    state_init_high: float) -> tuple[np.ndarray, np.ndarray, "tuple[int, int] | None"]:
    """Final free-phase states ``(P, N)`` and settled flags ``(P,)`` of one network on every
    presentation of ``task``, in memory-bounded chunks whose initial states are drawn as
    training's evaluation draws them (:func:`deepcircuit.learning.steps.evaluate_split`), and a
    spiking substrate's total ``(spikes, synaptic events)`` over them (None for the others)."""
    from ..learning.steps import EVAL_BYTES, draw_initial

    rngs = [np.random.default_rng(seed)]
    N, P = batch.roles.n_neurons, task.n_presentations
    chunk = max(1, min(P, EVAL_BYTES // max(len(batch) * (schedule.free_steps + 1) * N * 8, 1)))
    finals, settled, counts = [], [], []
    for a in range(0, P, chunk):
        part = task.subset(slice(a, a + chunk))
        free = sub.run(batch, part.inputs, draw_initial(rngs, part.inputs, batch.roles, state_init_high),
                       schedule).free
        finals.append(free.final[0])
        settled.append(free.settled[0])
        if "spikes" in free.meta:
            counts.append((free.meta["spikes"], free.meta["synaptic_events"]))
    total = tuple(int(x) for x in np.sum(counts, axis=0)) if counts else None
    return np.concatenate(finals), np.concatenate(settled).astype(bool), total
