"""Plot helpers (matplotlib): each returns a Figure and can save it atomically.

The figures are built with :class:`matplotlib.figure.Figure` directly, not through pyplot, so
they work under any backend (Agg included, no display needed) and leave no global state.
``path`` saves the figure through a temporary file in the same folder renamed over the
target, so a crash never leaves a half-written image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import InvalidInputError


def save_figure(fig, path: "str | Path", *, dpi: int = 120) -> Path:
    """Save ``fig`` to ``path`` (format from the extension) atomically: temporary file + rename."""
    from ..atomic_files import atomic_output

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if not fmt:
        raise InvalidInputError(f"Cannot tell the image format of {str(path)!r}; give an extension like .png or .pdf.")
    with atomic_output(path, suffix=f".{fmt}") as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return path


def _figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def plot_lyapunov(check, *, network: int = 0, labels=None, title: str | None = None,
                  path: "str | Path | None" = None):
    """V(t) per presentation of one network, from a :class:`~deepcircuit.stability.lyapunov.TrajectoryCheck`.

    V is drawn on a log scale (values at or below 0 are left out); a marker shows the largest
    increase of every presentation whose V is not monotone. ``labels`` names the presentations
    (default ``p0, p1, ...``). Returns the Figure; saves it to ``path`` when given.
    """
    times, values = check.times, check.values
    if not 0 <= network < values.shape[0]:
        raise InvalidInputError(f"The 'network' index must be in 0..{values.shape[0] - 1}; got {network}.")
    fig, (ax,) = _figure()
    P = values.shape[1]
    labels = list(labels) if labels is not None else [f"p{p}" for p in range(P)]
    for p in range(P):
        c = check.check(network, p)
        v = np.where(values[network, p] > 0, values[network, p], np.nan)
        rate = "" if not np.isfinite(c.decay_rate) else f", rate {c.decay_rate:.3g}/tau"
        line, = ax.plot(times, v, label=f"{labels[p]}: {'monotone' if c.monotone else 'NOT monotone'}{rate}")
        if not c.monotone and c.max_increase_time is not None:
            k = int(np.argmin(np.abs(times - c.max_increase_time)))
            ax.plot([times[k]], [values[network, p, k]], "x", color=line.get_color(), markersize=9)
    if np.any(values[network] > 0):
        ax.set_yscale("log")
    name = check.checks[0].function.name if check.checks else "V"
    cert = "certified" if check.checks and check.checks[0].function.certified else "not certified"
    ax.set_xlabel("time (tau)")
    ax.set_ylabel(f"V = {name}")
    ax.set_title(title or f"{check.phase} phase, network {network}: V = {name} ({cert})")
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    if path is not None:
        save_figure(fig, path)
    return fig


def _extra(history: Any) -> Mapping[str, Any]:
    if hasattr(history, "extra"):
        return history.extra
    if isinstance(history, Mapping):
        return history.get("extra", history)
    raise InvalidInputError(
        f"Expected a History, a history dict or its 'extra' dict; got {type(history).__name__}.")


def _floats(values) -> np.ndarray:
    # Model files store non-finite floats as strings ("nan", "-inf"); float() reads them back.
    return np.array([float(v) for v in values], dtype=float)


def plot_certificates(history: Any, *, title: str | None = None, path: "str | Path | None" = None):
    """Certificate margins and spectral abscissa per epoch, from a training history.

    ``history`` is a :class:`~deepcircuit.learning.results.History`, its dict form (as in a model
    file), or its ``extra`` dict, recorded with
    :func:`~deepcircuit.stability.lyapunov.certificate_recorder`. Left: the smallest margin of each
    Gershgorin condition (above 0 = holds). Right: the spectral abscissa of the restricted
    Jacobian (below 0 = Hurwitz), with epochs where equilibrium was not reached marked.
    """
    extra = _extra(history)
    needed = ("gershgorin_margin_negative_diagonal", "gershgorin_margin_row", "gershgorin_margin_column")
    missing = [k for k in needed if k not in extra]
    if missing:
        raise InvalidInputError(
            f"The history has no certificate record ({', '.join(missing)} missing); train with "
            "callbacks=[certificate_recorder()] or `deepcircuit train --record-certificates`.")
    fig, (ax, ax2) = _figure(2, width=5.0)
    for key, label in zip(needed, ("negative diagonal", "row dominance", "column dominance")):
        y = _floats(extra[key])
        ax.plot(np.arange(len(y)), y, label=label)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("smallest margin (1/tau)")
    ax.set_title("Gershgorin conditions (hold above 0)")
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    if "spectral_abscissa" in extra:
        a = _floats(extra["spectral_abscissa"])
        x = np.arange(len(a))
        ax2.plot(x, np.where(np.isfinite(a), a, np.nan), label="spectral abscissa")
        if "equilibrium_reached" in extra:
            miss = ~np.array([bool(v) for v in extra["equilibrium_reached"]])
            if miss.any():
                ax2.plot(x[miss], np.where(np.isfinite(a[miss]), a[miss], 0.0), "rx",
                         label="equilibrium not reached")
        ax2.axhline(0.0, color="k", lw=0.8)
        ax2.legend(fontsize="small")
    from matplotlib.ticker import MaxNLocator

    for a in (ax, ax2):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("largest real part (1/tau)")
    ax2.set_title("restricted Jacobian at the free equilibria")
    ax2.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig


# -- substrate comparison ----------------------------------------------------------------------
_SUBSTRATE_COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]


def plot_substrate_trajectories(comparison, *, path: "str | Path | None" = None):
    """Free then nudged trajectories of every substrate overlaid, one panel per presentation.

    Solid lines: outputs; thin lines: hidden neurons; black dotted: the accurate ODE reference.
    Time is in units of tau, the nudged phase starting where the free phase ends.
    """
    from matplotlib.figure import Figure

    ref = comparison.reference
    roles = comparison.network.roles
    P = ref.free.n_presentations
    fig = Figure(figsize=(4.2 * P, 3.6), layout="constrained")
    axes = fig.subplots(1, P, squeeze=False)[0]
    t_free = ref.free.times
    t_all = np.concatenate([t_free, t_free[-1] + ref.nudged.times])
    outs = list(range(roles.n_neurons - roles.n_outputs, roles.n_neurons))
    hidden = list(range(roles.n_inputs, roles.n_neurons - roles.n_outputs))

    def joined(res, p, n):
        return np.concatenate([res.free.states[0, p, :, n], res.nudged.states[0, p, :, n]])

    labels = comparison.task.inputs[:, :-1].astype(int)
    for p, ax in enumerate(axes):
        for k, (label, inf) in enumerate(comparison.inference.items()):
            color = _SUBSTRATE_COLORS[k % len(_SUBSTRATE_COLORS)]
            t = np.concatenate([inf.result.free.times, inf.result.free.times[-1] + inf.result.nudged.times])
            for n in hidden:
                ax.plot(t, joined(inf.result, p, n), color=color, lw=0.5, alpha=0.5)
            for n in outs:
                ax.plot(t, joined(inf.result, p, n), color=color, lw=1.8, label=label if n == outs[0] else None)
        for n in outs:
            ax.plot(t_all, joined(ref, p, n), "k:", lw=1.5, label="reference (adaptive ODE)" if n == outs[0] else None)
        ax.axvline(t_free[-1], color="grey", lw=0.8, ls="--")
        moving = [label for label, inf in comparison.inference.items() if not inf.result.free.settled[0, p]]
        ax.set_title(f"input {labels[p].tolist()}, target {comparison.task.targets[p].tolist()}"
                     + (f"\nnot settled: {', '.join(moving)}" if moving else ""), fontsize=9)
        ax.set_xlabel("time (tau)")
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("state (1 = V_scale)")
    axes[0].legend(fontsize=7, loc="best")
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_substrate_lyapunov(comparison, *, phase: str = "free", path: "str | Path | None" = None):
    """V(t) along each substrate's trajectory (one panel per substrate, a line per presentation)."""
    from matplotlib.figure import Figure

    items = list(comparison.inference.items())
    fig = Figure(figsize=(4.2 * len(items), 3.4), layout="constrained")
    axes = fig.subplots(1, len(items), squeeze=False)[0]
    for ax, (label, inf) in zip(axes, items):
        check = inf.lyapunov[phase]
        for p in range(check.values.shape[1]):
            v = check.values[0, p]
            keep = v > 0
            ax.semilogy(check.times[keep], v[keep], label=f"p{p}")
        fn = check.checks[0].function.name if check.checks else "?"
        vmax = float(np.nanmax(check.values[0])) if check.values[0].size else 0.0
        if vmax > 0:
            # Below ~1e-14 of its start V is rounding noise of the substrate, not dynamics.
            ax.set_ylim(bottom=vmax * 1e-14)
        ax.set_title(f"{label}: V = {fn}, {'monotone' if check.monotone else 'NOT monotone'}", fontsize=9)
        ax.set_xlabel("time (tau)")
    axes[0].set_ylabel(f"V ({phase} phase)")
    axes[0].legend(fontsize=7)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_weight_matrices(networks: Mapping[str, Any], *, path: "str | Path | None" = None):
    """``W[i, j]`` of each network as an image (rows: from, columns: to), one panel per label."""
    from matplotlib.figure import Figure

    items = list(networks.items())
    fig = Figure(figsize=(3.8 * len(items), 3.6), layout="constrained")
    axes = fig.subplots(1, len(items), squeeze=False)[0]
    vmax = max(float(np.abs(n.weights).max()) for _, n in items) or 1.0
    im = None
    for ax, (label, net) in zip(axes, items):
        W = np.where(net.mask, net.weights, np.nan)
        im = ax.imshow(W, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        names = net.roles.names
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(f"{label} ({net.n_connections} connections)", fontsize=9)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="W[i, j] (from row i to column j)")
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_deviations(comparison, *, targets: Mapping[str, float] | None = None,
                    path: "str | Path | None" = None):
    """Bars (log scale) of each substrate's deviation from the references, with target lines."""
    from matplotlib.figure import Figure

    labels = list(comparison.inference)
    metrics = [("max_state_deviation", "settled state vs adaptive ODE"),
               ("trajectory_rms", "trajectory RMS vs adaptive ODE"),
               ("euler_deviation", "max deviation vs projected-Euler ODE")]
    fig = Figure(figsize=(max(6.0, 1.6 * len(labels) * 1.5), 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(labels))
    w = 0.8 / len(metrics)
    for k, (key, desc) in enumerate(metrics):
        vals = [max(getattr(comparison.inference[l], key), 1e-17) for l in labels]
        ax.bar(x + (k - 1) * w, vals, w, label=desc)
    for name, value in (targets or {}).items():
        ax.axhline(value, ls="--", lw=0.8, color="grey")
        ax.text(len(labels) - 0.5, value, f" {name}: {value:g}", fontsize=7, va="bottom", ha="right")
    ax.set_yscale("log")
    # "*": a substrate with presentations that had not settled (its "settled state" is not one).
    unsettled = [bool(getattr(comparison.inference[l], "unsettled_presentations", [])) for l in labels]
    ax.set_xticks(x, [l + ("*" if u else "") for l, u in zip(labels, unsettled)], fontsize=8)
    if any(unsettled):
        ax.set_title("* not settled on some presentation: final states, not equilibria", fontsize=8)
    ax.set_ylabel("deviation (units of V_scale)")
    ax.legend(fontsize=7)
    if path is not None:
        save_figure(fig, path)
    return fig


def gradient_alignment_figure(reports: Mapping[str, Any], *, path: "str | Path | None" = None):
    """Cosine between each rule's update and -gradient against beta (log axis), one line per rule.

    ``reports`` maps a label (for example a substrate or an epoch) to a
    :class:`~deepcircuit.stability.gradient_check.GradientCheck`; labels prefix the rule names.
    """
    fig, (ax,) = _figure()
    for label, rep in reports.items():
        for rule, a in rep.rules.items():
            name = f"{label} {rule}".strip()
            ax.semilogx(a.beta, a.cosine, marker="o", label=name)
            if a.symmetric is not None:
                ax.semilogx(a.beta, a.symmetric["cosine"], ls="--", marker=".", label=f"{name} (+-beta)")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("beta (1/tau)")
    ax.set_ylabel("cosine(update, -gradient)")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(fontsize=7)
    if path is not None:
        save_figure(fig, path)
    return fig
