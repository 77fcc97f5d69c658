"""Plot helpers (matplotlib): each returns a Figure and can save it atomically.

The figures are built with :class:`matplotlib.figure.Figure` directly, not through pyplot, so
they work under any backend (Agg included, no display needed) and leave no global state.
``path`` saves the figure through a temporary file in the same folder renamed over the
target, so a crash never leaves a half-written image.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import InvalidInputError


def save_figure(fig, path: "str | Path", *, dpi: int = 120) -> Path:
    """Save ``fig`` to ``path`` (format from the extension) via a temporary file + rename."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if not fmt:
        raise InvalidInputError(f"Cannot tell the image format of {str(path)!r}; give an extension like .png or .pdf.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{fmt}", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; an image is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def plot_lyapunov(check, *, network: int = 0, labels=None, title: str | None = None,
                  path: "str | Path | None" = None):
    """V(t) per presentation of one network, from a :class:`~deepcircuit.lyapunov.TrajectoryCheck`.

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

    ``history`` is a :class:`~deepcircuit.training.History`, its dict form (as in a model
    file), or its ``extra`` dict, recorded with
    :func:`~deepcircuit.lyapunov.certificate_recorder`. Left: the smallest margin of each
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
