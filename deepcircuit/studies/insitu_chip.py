"""Figures of one chip for the in-situ study (issue 21): agreement, energy, pruning.

Companions of :mod:`.insitu`, for the chips simulated on SPICE:

* :func:`state_agreement`: the largest deviation of the settled free states of two substrates
  (e.g. the non-ideal ODE and ngspice on the same chip) from the same initial states, in units of
  ``V_scale``;
* :func:`chip_energy`: energy per inference and per training step from the supply of a circuit
  substrate (SPICE with OTA synapses or precision clamps), read by
  :mod:`deepcircuit.studies.hardware_figures`;
* :func:`prune_to_sparsity` and :func:`pruning_sweep`: magnitude pruning of a network to given
  sparsities (a pruned synapse is absent from the netlist, so its OTA draws no bias current) and
  accuracy / energy per inference at each level.

Like every study, these read trajectories and phase results, never a substrate's internals.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from .._validation import check_int, check_real


def _initial(networks, inputs: np.ndarray, chips: Sequence[int], high: float) -> np.ndarray:
    from ..learning.training import _EVAL_STREAM
    from ..model.network import NetworkBatch
    from ..substrates import initial_states

    batch = NetworkBatch.of(list(networks))
    return np.stack([initial_states(np.random.default_rng([int(c), _EVAL_STREAM]), 1, inputs, batch.roles, high)[0]
                     for c in chips])


def state_agreement(networks, inputs: np.ndarray, substrate, reference, schedule, *,
                    chips: Sequence[int], state_init_high: float = 0.1) -> dict:
    """Largest ``|s_substrate - s_reference|`` over the free neurons at the end of the free phase.

    Both substrates run ``networks`` (network ``k`` on chip ``chips[k]``) from the same initial
    states. Returns ``max_state_deviation`` per network (units of ``V_scale``) and the fraction of
    presentations settled on each substrate; an unsettled phase's end state is still compared
    (and reported as unsettled, never hidden).
    """
    from ..model.network import NetworkBatch

    batch = NetworkBatch.of(list(networks))
    s0 = _initial(batch, inputs, chips, state_init_high)
    a = substrate.run(batch, inputs, s0, schedule).free
    b = reference.run(batch, inputs, s0, schedule).free
    fr = batch.roles.free
    dev = np.abs(a.states[:, :, -1, fr] - b.states[:, :, -1, fr]).max(axis=(1, 2))
    return {"max_state_deviation": [float(x) for x in dev],
            "settled": [float(x) for x in np.asarray(a.settled).mean(axis=1)],
            "reference_settled": [float(x) for x in np.asarray(b.settled).mean(axis=1)],
            "presentations": int(inputs.shape[0])}


def chip_energy(networks, task, substrate, config, *, chips: Sequence[int], presentations: int = 2,
                what: Sequence[str] = ("inference", "step")) -> dict:
    """Energy per inference and per training step of ``networks`` on a circuit ``substrate``.

    ``"inference"``: the first ``presentations`` of ``task`` through a free phase of the
    evaluation schedule of ``config`` (the read-out the accuracies use); ``"step"``: through a
    free and a nudged phase of the training schedule. The supply is read by
    :func:`deepcircuit.studies.hardware_figures.figures_of_merit`. Returns the means over
    presentations per network (joules; None without a supply or when a phase did not settle),
    the static power (W), settling times (s) and wall times.
    """
    from ..model.network import NetworkBatch
    from .hardware_figures import figures_of_merit

    presentations = check_int("presentations", presentations, low=1)
    batch = NetworkBatch.of(list(networks))
    part = task.subset(slice(0, presentations))
    s0 = _initial(batch, part.inputs, chips, config.state_init_high)

    def per_net(x):
        if x is None:
            return [None] * len(batch)
        x = np.asarray(x, dtype=float)
        return [float(np.mean(r)) if np.all(np.isfinite(r)) else None for r in x]

    out: dict = {"presentations": presentations}
    if "inference" in what:
        t0 = time.perf_counter()
        res = substrate.run(batch, part.inputs, s0, config.eval_schedule)
        f = figures_of_merit(res)
        out.update(energy_per_inference_J=per_net(f["energy_per_inference_J"]),
                   static_power_W=per_net(f["static_power_W"]), settling_time_s=per_net(f["settling_time_s"]),
                   free_settled=[float(x) for x in np.asarray(res.free.settled).mean(axis=1)],
                   inference_seconds=time.perf_counter() - t0)
    if "step" in what:
        t0 = time.perf_counter()
        res = substrate.run(batch, part.inputs, s0, config.schedule, targets=part.targets)
        f = figures_of_merit(res)
        if "inference" not in what:  # the training schedule's free phase is the inference
            out.update(energy_per_inference_J=per_net(f["energy_per_inference_J"]),
                       settling_time_s=per_net(f["settling_time_s"]),
                       free_settled=[float(x) for x in np.asarray(res.free.settled).mean(axis=1)])
        out.update(energy_per_step_J=per_net(f["energy_per_step_J"]),
                   step_free_settled=[float(x) for x in np.asarray(res.free.settled).mean(axis=1)],
                   step_nudged_settled=[float(x) for x in np.asarray(res.nudged.settled).mean(axis=1)],
                   step_seconds=time.perf_counter() - t0)
        out.setdefault("static_power_W", per_net(f["static_power_W"]))
    return out


def prunable(network) -> np.ndarray:
    """Live connections that pruning may remove: every one except the fixed leaks into a sink."""
    from ..model.topology import has_sink, sink_index

    keep = network.mask.copy()
    if has_sink(network.topology):
        keep[:, sink_index(network.roles)] = False
    return keep


def prune_to_sparsity(network, sparsity: float):
    """``network`` with the smallest-magnitude fraction ``sparsity`` of its prunable connections
    removed (magnitude pruning; ties at the threshold removed too). 0 returns it unchanged."""
    sparsity = check_real("sparsity", sparsity, low=0.0, high=1.0, high_open=True)
    if sparsity == 0:
        return network
    can = prunable(network)
    mags = np.abs(network.weights[can])
    k = int(round(sparsity * mags.size))
    if k == 0:
        return network
    threshold = np.sort(mags)[k - 1]
    remove = can & (np.abs(network.weights) <= threshold)
    return network.pruned(~remove)


def sparsity_of(network) -> float:
    """Fraction of the prunable connections of the topology that are absent."""
    from ..model.topology import has_sink, sink_index

    top = network.topology_mask.copy()
    if has_sink(network.topology):
        top[:, sink_index(network.roles)] = False
    live = prunable(network)
    return float(1.0 - live.sum() / max(int(top.sum()), 1))


def pruning_sweep(network, dataset, config, *, levels: Sequence[float], accuracy_substrate,
                  energy_substrate=None, chip: int = 0, energy_presentations: int = 2,
                  energy_what: Sequence[str] = ("inference",), on_rows=None) -> list[dict]:
    """Accuracy (on ``accuracy_substrate``, whole test split of ``dataset``) and, with
    ``energy_substrate``, energy per inference from its supply, at each sparsity level.

    Returns one row per level: ``sparsity`` (measured), ``synapses`` (live prunable connections),
    ``correct``, ``n``, ``accuracy`` with its Wilson interval, ``abs_weight_sum`` (sum of
    ``|W|``, which sets an OTA array's bias currents) and the energy figures (None without
    ``energy_substrate``). ``energy_what``: as :func:`chip_energy`'s ``what`` (``("step",)``
    reads the inference energy from the training schedule's shorter free phase). The accuracies
    of every level come first, then the energies; ``on_rows(rows)`` is called after each step
    (to save what is done).
    """
    from .insitu import test_scores, wilson_interval

    rows, nets = [], []
    for level in levels:
        net = prune_to_sparsity(network, level)
        nets.append(net)
        sc = test_scores([net], dataset.test, accuracy_substrate, [chip], config)
        n = dataset.test.n_presentations
        correct = int(round(float(sc.accuracy[0]) * n))
        lo, hi = wilson_interval(correct, n)
        rows.append({"level": float(level), "sparsity": sparsity_of(net), "synapses": int(prunable(net).sum()),
                     "correct": correct, "n": n, "accuracy": correct / n, "ci_low": lo, "ci_high": hi,
                     "settled": float(sc.settled[0]), "abs_weight_sum": float(np.abs(net.weights[net.mask]).sum()),
                     "energy_per_inference_J": None, "static_power_W": None, "settling_time_s": None,
                     "energy_seconds": None})
        if on_rows is not None:
            on_rows(rows)
    if energy_substrate is None:
        return rows
    for row, net in zip(rows, nets):
        e = chip_energy([net], dataset.test, energy_substrate, config, chips=[chip],
                        presentations=energy_presentations, what=energy_what)
        row.update(energy_per_inference_J=e["energy_per_inference_J"][0], static_power_W=e["static_power_W"][0],
                   settling_time_s=e["settling_time_s"][0],
                   energy_seconds=e.get("inference_seconds", e.get("step_seconds")))
        if "energy_per_step_J" in e:
            row["energy_per_step_J"] = e["energy_per_step_J"][0]
        if on_rows is not None:
            on_rows(rows)
    return rows


def plot_pruning(rows: Sequence[dict], path=None, *, title: str | None = None):
    """Energy per inference (or, where no phase settled to define it, the supply's static power)
    and accuracy against sparsity (two panels). Returns the Figure."""
    from .plots import _figure, save_figure

    fig, (ax1, ax2) = _figure(2, width=4.8, height=3.6)
    x = np.array([100 * r["sparsity"] for r in rows])

    def col(key):
        return np.array([np.nan if r.get(key) is None or r.get(key) != r.get(key) else r[key] for r in rows],
                        dtype=float)

    e, p = col("energy_per_inference_J"), col("static_power_W")
    if np.isfinite(e).any():
        ax1.plot(x, 1e9 * e, marker="o")
        ax1.set_ylabel("energy per inference (nJ)")
    else:
        # class-A OTAs draw their bias whatever the states: energy = static power x time
        ax1.plot(x, 1e3 * p, marker="s", color="tab:orange")
        ax1.set_ylabel("static power of the supply (mW)\n(energy = this x inference time)")
    ax1.set_xlabel("sparsity (% of synapses removed)")
    ax1.set_ylim(bottom=0)
    ax1.grid(alpha=0.3)
    acc = 100 * col("accuracy")
    err = np.clip(np.vstack([acc - 100 * col("ci_low"), 100 * col("ci_high") - acc]), 0, None)
    ax2.errorbar(x, acc, yerr=err, marker="o", capsize=3)
    ax2.set_xlabel("sparsity (% of synapses removed)")
    ax2.set_ylabel("test accuracy on the chip (%, Wilson 95 %)")
    ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig
