"""Analysis of a sweep: success rates with Wilson intervals, accuracy against each swept parameter.

Reads the Parquet data set a sweep wrote (``DIR/results``) and writes ``DIR/report.md`` and one
plot per swept parameter (``DIR/plots/``): the success rate (fraction of runs that finished
``ok`` at 100 % training accuracy) with its Wilson 95 % interval over the seeds, and the mean
accuracy with its standard deviation, against the parameter's values, one line per model family
and substrate. Substrate options with numeric values (non-idealities: ``spice:mismatch``,
``spice:bits``, ``spice:noise``) also get accuracy against the value beside the ideal ODE runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InvalidInputError

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (``(nan, nan)`` when ``n == 0``)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def load_results(out: "str | Path"):
    """The sweep's rows as a pandas DataFrame (``pandas.read_parquet(DIR / "results")``)."""
    import pandas as pd

    path = Path(out) / "results"
    if not path.is_dir() or not any(path.glob("*.parquet")):
        raise InvalidInputError(f"{str(out)!r} has no sweep results ({path}/*.parquet); run `deepcircuit sweep "
                                f"--out {out}` first.")
    return pd.read_parquet(path)


def parameter_columns(df) -> list[str]:
    """Columns that are run parameters: the ``train`` options and ``SUBSTRATE:OPTION`` columns."""
    from .spec import train_options

    names = set(train_options())
    return [c for c in df.columns if c in names or ":" in c]


def swept_parameters(df) -> list[str]:
    """Parameter columns with more than one value (the seed excluded: it is the repetition)."""
    return [c for c in parameter_columns(df) if c != "seed" and df[c].astype(str).nunique(dropna=False) > 1]


def _success(df):
    return (df["status"] == "ok") & (df["train_accuracy"].fillna(0.0) >= 1.0)


def summary_table(df, param: str):
    """Per (value of ``param``, model, substrate): runs, successes, rate, Wilson 95 %, mean/std accuracy."""
    import pandas as pd

    groups = [param] + [g for g in ("model", "substrate") if g != param]
    d = df.assign(_success=_success(df), _acc=df["train_accuracy"].where(df["status"] != "failed"))
    d[param] = d[param].astype(object).where(d[param].notna(), "-")
    rows = []
    for key, g in d.groupby(groups, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        n, k = len(g), int(g["_success"].sum())
        lo, hi = wilson_interval(k, n)
        rows.append({**dict(zip(groups, key)), "runs": n, "ok": int((g["status"] == "ok").sum()),
                     "solved": k, "success_rate": k / n, "wilson_low": lo, "wilson_high": hi,
                     "mean_accuracy": float(g["_acc"].mean()), "std_accuracy": float(g["_acc"].std(ddof=0))})
    table = pd.DataFrame(rows)
    try:
        table = table.sort_values(groups, key=lambda s: s.map(_sort_key))
    except TypeError:
        pass
    return table


def _sort_key(v: Any):
    return (0, float(v), "") if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else (1, 0.0, str(v))


def _numeric(values) -> bool:
    vals = [v for v in values if v is not None and v == v]
    return bool(vals) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in vals)


def _plot_param(table, param: str, path: Path) -> Path:
    from ...studies.plots import _figure, save_figure

    fig, (ax1, ax2) = _figure(2, width=5.5, height=3.8)
    values = [v for v in table[param].unique()]
    numeric = _numeric(values) and "-" not in values
    pos = {v: (float(v) if numeric else i) for i, v in enumerate(values)}
    lines = [c for c in ("model", "substrate") if c != param]
    for key, g in table.groupby(lines, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        x = np.array([pos[v] for v in g[param]])
        r = g["success_rate"].to_numpy()
        err = np.vstack([r - g["wilson_low"].to_numpy(), g["wilson_high"].to_numpy() - r])
        label = " / ".join(map(str, key))
        ax1.errorbar(x, r, yerr=err, marker="o", capsize=3, label=label)
        ax2.errorbar(x, g["mean_accuracy"], yerr=g["std_accuracy"], marker="o", capsize=3, label=label)
    for ax, title in ((ax1, "success rate (Wilson 95 %)"), (ax2, "mean training accuracy (± std)")):
        ax.set_xlabel(param)
        ax.set_title(title)
        ax.set_ylim(-0.05, 1.05)
        if not numeric:
            ax.set_xticks(list(pos.values()), [str(v) for v in pos])
    ax1.legend(fontsize=8)
    return save_figure(fig, path)


def nonideality_table(df, column: str):
    """Accuracy against a numeric substrate option, and the ideal ODE runs' accuracy."""
    sub = column.partition(":")[0]
    d = df[(df["substrate"] == sub) & (df["status"] != "failed")]
    ode = df[(df["substrate"] == "ode") & (df["status"] != "failed")]["train_accuracy"]
    t = d.groupby(column)["train_accuracy"].agg(["count", "mean", "std"]).reset_index()
    return t, (float(ode.mean()) if len(ode) else float("nan"), float(ode.std(ddof=0)) if len(ode) else float("nan"),
               int(len(ode)))


def _plot_nonideality(t, ode, column: str, path: Path) -> Path:
    from ...studies.plots import _figure, save_figure

    fig, (ax,) = _figure(1, width=5.5, height=3.8)
    ax.errorbar(t[column], t["mean"], yerr=t["std"].fillna(0.0), marker="o", capsize=3,
                label=column.partition(":")[0])
    if ode[2]:
        ax.axhline(ode[0], color="k", ls="--", label=f"ode (ideal), n={ode[2]}")
        ax.axhspan(ode[0] - ode[1], ode[0] + ode[1], color="k", alpha=0.1)
    ax.set_xlabel(column)
    ax.set_ylabel("training accuracy (mean ± std)")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _md(table) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def write_sweep_report(out: "str | Path") -> Path:
    """Write ``out/report.md`` and ``out/plots/*.png`` from ``out/results``; returns the report path."""
    from ...atomic_files import write_atomic

    out = Path(out)
    df = load_results(out)
    counts = df["status"].value_counts().to_dict()
    lines = [f"# Sweep report: {out}", "",
             f"{len(df)} runs: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "diverged", "failed")) + ".",
             "A run *succeeds* when it finished `ok` at 100 % training accuracy; intervals are Wilson 95 % "
             "over the runs (seeds) of each group. Accuracy means exclude failed runs.", ""]
    swept = swept_parameters(df)
    lines += [f"Swept parameters: {', '.join(f'`{p}`' for p in swept) or 'none'}.", ""]
    for param in swept:
        table = summary_table(df, param)
        name = param.replace(":", "_")
        png = _plot_param(table, param, out / "plots" / f"{name}.png")
        lines += [f"## `{param}`", "", f"![{param}](plots/{png.name})", "", _md(table.round(4)), ""]
    for col in [c for c in df.columns if ":" in c and _numeric(df[c].dropna().tolist())]:
        t, ode = nonideality_table(df, col)
        if t.empty:
            continue
        name = "nonideal_" + col.replace(":", "_")
        png = _plot_nonideality(t, ode, col, out / "plots" / f"{name}.png")
        lines += [f"## Accuracy against `{col}`, beside the ideal ODE", "", f"![{col}](plots/{png.name})", "",
                  _md(t.round(4)), "",
                  f"ODE (ideal): mean accuracy {ode[0]:.3g} ± {ode[1]:.3g} over {ode[2]} runs.", ""]
    failed = df[df["status"] == "failed"]
    if len(failed):
        lines += ["## Failures", "", "| error | runs |", "|---|---|"]
        for msg, n in failed["error"].fillna("?").str.slice(0, 200).value_counts().items():
            lines.append(f"| {msg.replace('|', '/')} | {n} |")
        lines.append("")
    if "stability" in df.columns:
        st = df["stability"].fillna("-").value_counts().to_dict()
        lines += ["## Stability of the trained networks (free phase, on their substrate)", "",
                  ", ".join(f"{k}: {v}" for k, v in st.items()), ""]
    return write_atomic(out / "report.md", "\n".join(lines))
