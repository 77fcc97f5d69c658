"""Comparison reports: the plots and a short Markdown summary, written to one folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .comparison import Comparison
from .hardware_figures import format_si
from ..atomic_files import write_atomic
from .plots import (plot_deviations, plot_substrate_lyapunov, plot_substrate_trajectories,
                    plot_weight_matrices)

#: Targets stated in the README (issue 6), drawn on the deviation plot.
TARGETS = {"SPICE diode clamp (settled)": 0.03, "SPICE limiter / precision clamp (settled)": 0.005,
           "Brian2 rate vs Euler": 1e-6}


def comparison_rows(comp: Comparison) -> list[list]:
    """One row per substrate: the numbers of the summary table."""
    rows = []
    for label, inf in comp.inference.items():
        tr = comp.training.get(label)
        star = "*" if inf.unsettled_presentations else ""
        tstar = "*" if tr is not None and tr.unsettled_presentations else ""
        rows.append([label, f"{inf.max_state_deviation:.3g}{star}", f"{inf.trajectory_rms:.3g}",
                     f"{inf.euler_deviation:.3g}", f"{100 * inf.accuracy:.0f} %{star}",
                     "yes" if inf.lyapunov_monotone else "no", f"{inf.seconds:.2f}",
                     "-" if tr is None else f"{100 * tr.accuracy:.0f} %{tstar}",
                     "-" if tr is None or tr.weight_deviation is None else f"{tr.weight_deviation:.3g}",
                     "-" if tr is None else f"{100 * tr.sparsity:.0f} %",
                     "-" if tr is None else f"{tr.seconds:.1f}",
                     *hardware_cells(inf.hardware)])
    return rows


def unsettled_notes(comp: Comparison) -> list[str]:
    """Footnotes for the ``*`` of :func:`comparison_rows`: numbers read from unsettled states."""
    notes = []
    for label, inf in comp.inference.items():
        if inf.unsettled_presentations:
            only = inf.accuracy_settled_only
            notes.append(
                f"* {label}: presentation(s) {inf.unsettled_presentations} of the free phase had not settled "
                f"(max |ds/dt| >= {comp.schedule.settle_tol:g} /tau at its end), so their outputs and "
                f"states are not equilibria; accuracy on the settled presentations only: "
                + ("none settled" if only is None else f"{100 * only:.0f} %") + ".")
            if inf.hardware.get("unsettled"):
                # No inference energy exists without an equilibrium; what the flagged phase cost does.
                notes.append(f"  {label}: {inf.hardware['unsettled']}; supply energy over the whole free "
                             f"phase {format_si(inf.hardware.get('energy_free_phase_J'), 'J')} per presentation.")
        tr = comp.training.get(label)
        if tr is not None and tr.unsettled_presentations:
            notes.append(f"* {label} (trained): presentation(s) {tr.unsettled_presentations} of the final "
                         "evaluation had not settled; the trained accuracy reads them anyway.")
    ref = comp.reference.free
    if not ref.settled.all():
        notes.append(f"Note: the adaptive ODE reference itself had not settled on presentation(s) "
                     f"{np.flatnonzero(~ref.settled[0]).tolist()}; deviations there compare moving states.")
    return notes


HEADERS = ["substrate", "max state dev", "traj RMS", "dev vs Euler", "accuracy", "V monotone",
           "run s", "trained acc", "weight dev", "sparsity", "train s",
           "E/inference", "E/step", "settling", "devices", "area"]


def hardware_cells(hw: dict) -> list[str]:
    """The hardware columns of a row: energies, settling time, device count, area ('-' if none)."""
    dev = hw.get("devices")
    area = hw.get("area_um2")
    return [format_si(hw.get("energy_per_inference_J"), "J"), format_si(hw.get("energy_per_step_J"), "J"),
            format_si(hw.get("settling_time_s"), "s"), "-" if not dev else str(sum(dev.values())),
            "-" if area is None else f"{area / 1e6:.3g} mm^2"]


def write_report(comp: Comparison, out: "str | Path", *, title: str = "Substrate comparison",
                 model_path: str | None = None, command: str | None = None,
                 written: "list | None" = None) -> Path:
    """Write ``report.md`` and the plots (PNG) into ``out``; returns the report's path.

    ``written``, if given, gets the path of each file as soon as it is complete (so an
    interrupted run can say which ones it kept)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = written if written is not None else []
    plot_substrate_trajectories(comp, path=out / "trajectories.png")
    done.append(str(out / "trajectories.png"))
    plot_substrate_lyapunov(comp, path=out / "lyapunov.png")
    done.append(str(out / "lyapunov.png"))
    plot_deviations(comp, targets=TARGETS, path=out / "deviations.png")
    done.append(str(out / "deviations.png"))
    nets = {"model": comp.network}
    nets.update({f"trained on {k}": t.network for k, t in comp.training.items()})
    plot_weight_matrices(nets, path=out / "weights.png")
    done.append(str(out / "weights.png"))

    s = comp.schedule
    lines = [f"# {title}", ""]
    if model_path:
        lines.append(f"Model: `{model_path}`; task: `{comp.task.name}`.")
    if command:
        lines.append(f"Measured by: `{command}`")
    lines += ["", f"Schedule: dt = {s.dt:g} tau, {s.free_steps} free + {s.nudged_steps} nudged steps, "
              f"beta = {s.beta:g}. Deviations are in units of V_scale, against the adaptive ODE "
              "reference (settled states, trajectory RMS) and the projected-Euler ODE (dev vs Euler).", "",
              "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in comparison_rows(comp)]
    notes = unsettled_notes(comp)
    if notes:
        lines += [""] + notes
    lines += ["", "Targets: Brian2 rate within 1e-6 of projected Euler; SPICE with diode clamps within "
              "0.03 V_scale of the accurate reference on settled states, the stiff limiter and the precision "
              "clamp (the default, issue 13) within 0.005.",
              "Hardware figures (SPICE; docs/hardware.md): energy from the supply VDD (OTA synapses, "
              "precision clamps; '-' with ideal VCCS synapses and passive clamps: no supply), per array and "
              "presentation until every node is within 1 % of V_scale of its final value; devices and area "
              "of one array.", ""]
    for label, inf in comp.inference.items():
        dev = inf.meta.get("clamp_deviation")
        if dev is not None:
            lines.append(f"- {label}: clamp deviation from the ideal projection {float(dev):.3g} V_scale.")
        if "spikes_per_inference" in inf.meta:
            lines.append(f"- {label}: {inf.meta['spikes_per_inference']:.0f} spikes per inference, "
                         f"{inf.meta.get('spikes_per_training_step', float('nan')):.0f} per training step "
                         f"(one presentation), {inf.meta['synaptic_events_per_second']:.3g} synaptic "
                         "events per simulated second.")
        if not inf.lyapunov_monotone:
            worst = max((c.max_increase for ch in inf.lyapunov.values() for c in ch.checks), default=0.0)
            lines.append(f"- {label}: V not monotone along its trajectory (largest increase {worst:.3g}).")
    lines += ["", "![trajectories](trajectories.png)", "", "![Lyapunov](lyapunov.png)", "",
              "![deviations](deviations.png)", "", "![weights](weights.png)", ""]
    path = write_atomic(out / "report.md", "\n".join(lines))
    done.append(str(path))
    return path
