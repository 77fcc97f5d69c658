"""Learning on imperfect chips (issue 21): deploy, fine-tune in situ, or train in situ.

A *chip* is one draw of the non-idealities of :mod:`deepcircuit.substrates.chip`: network ``k``
of a batch run on a substrate with ``mismatch=m; seed=S`` (and OTA offsets for
``transconductor="ota"``) is chip ``(S, k)``, the same chip on the ODE and on SPICE (the draw
depends on the network's index and the seed only). One network on ``ode:mismatch=m;seed=S`` is
chip ``(S, 0)``.

For every chip the study measures the test accuracy of

* ``ideal``: the ideal-trained model on the ideal substrate (the reference),
* ``deployed``: the same weights programmed into the chip, run as they are,
* ``finetune``: the model trained further by DEEP's rule *on the chip* (``train(init=model,
  substrate=chip)``) for ``k`` epochs, one row per ``k`` of ``finetune_epochs`` (all read from one
  run: the test split is evaluated after every epoch),
* ``scratch``: a fresh network trained on the chip from its seed for ``scratch_epochs``,

all on the same test presentations, each with a Wilson 95 % interval (``scipy.stats.binomtest``)
over that chip's test presentations.
Test evaluations draw their initial states from the generator ``(chip, EVAL_STREAM)``, the one
``train`` uses for its own test evaluations, so a deployment on an ideal chip reproduces the
ideal accuracy exactly.

The study knows substrates only by name and options; what runs on them is the ordinary training
and evaluation code (:func:`deepcircuit.train`, :func:`~deepcircuit.learning.steps.evaluate_split`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .._validation import check_choice, check_int, check_real
from ..errors import InvalidInputError

#: The arms of the study, in the order they are reported.
ARMS = ("ideal", "deployed", "finetune", "scratch")
#: Columns of a result row.
COLUMNS = ("solver", "trained_on", "transconductor", "mismatch", "chip_seed", "chip", "arm", "epochs", "correct", "n",
           "accuracy", "ci_low", "ci_high", "settled", "train_presentations", "seconds")


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``correct / n`` (scipy's ``binomtest``)."""
    from scipy.stats import binomtest

    n = check_int("n", n, low=1)
    correct = check_int("correct", correct, low=0, high=n)
    ci = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class InSituPlan:
    """What one study runs.

    Parameters
    ----------
    mismatches : sequence of float
        Relative standard deviations of the transconductances (0 = matched devices).
    transconductors : sequence of {"vccs", "ota"}
        Synapse models; an OTA chip has its tanh law, output conductance and input offsets even
        at mismatch 0.
    chips : int
        Chips per (transconductor, mismatch): networks ``0 .. chips-1`` of the draw ``chip_seed``.
    chip_seed : int
        Seed of the chips' draws.
    finetune_epochs : sequence of int
        Epochs of in-situ fine-tuning reported (one run of ``max`` epochs; empty = no fine-tuning).
    scratch_epochs : int
        Epochs of in-situ training from scratch (0 = no scratch arm).
    scratch_chips : int or None
        Chips that get the scratch arm (the first ones; None = all).
    train_samples, test_samples : int or None
        Use only the first N training / test presentations (None = the whole split).
    solver : {"ode", "spice"}
        The substrate every chip runs on.
    substrate_options : dict
        Further options of that substrate (``clamp="limiter"``, ``workers=2``, ...).
    train_solver : {None, "ode", "spice"}
        Where the fine-tune arm trains: None = on ``solver`` itself (in situ). ``"ode"`` with
        ``solver="spice"``: on the ODE twin of the same chip, then scored on ``solver`` (for
        circuits too slow to train on in the loop); the rows say ``trained_on``.
    ota_options : dict
        Options of the OTA cells only (``ota_linear_range``, ``ota_gain``, ``ota_offset``), so a
        study states the OTA it measured whatever the package's defaults are.
    """

    mismatches: tuple = (0.0, 0.1, 0.2, 0.3)
    transconductors: tuple = ("vccs", "ota")
    chips: int = 5
    chip_seed: int = 1
    finetune_epochs: tuple = (1, 3)
    scratch_epochs: int = 0
    scratch_chips: int | None = None
    train_samples: int | None = None
    test_samples: int | None = None
    solver: str = "ode"
    substrate_options: dict = field(default_factory=dict)
    train_solver: str | None = None
    ota_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m in self.mismatches:
            check_real("mismatch", m, low=0.0, high=1.0)
        for t in self.transconductors:
            check_choice("transconductor", t, ("vccs", "ota"))
        check_int("chips", self.chips, low=1)
        check_int("chip_seed", self.chip_seed, low=0)
        for k in self.finetune_epochs:
            check_int("finetune epochs", k, low=1)
        check_int("scratch_epochs", self.scratch_epochs, low=0)
        for name in ("scratch_chips", "train_samples", "test_samples"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low=1)
        check_choice("solver", self.solver, ("ode", "spice"))
        if self.train_solver is not None:
            check_choice("train_solver", self.train_solver, ("ode", "spice"))


def model_of(result, k: int = 0):
    """Network ``k`` of a :class:`~deepcircuit.learning.results.TrainingResult` as a model file
    object (its settings and data set split), for :func:`run_study` without a file on disk."""
    from ..learning.model_file import ModelFile

    ds = result.dataset
    return ModelFile(result.networks[k], seed=int(result.seeds[k]), task=ds.name, substrate=result.substrate,
                     config=result.config.to_dict(), dataset=None if ds.source == "logic" else ds.to_dict())


def chip_substrate(plan: InSituPlan, mismatch: float, transconductor: str):
    """The substrate of the chips of one grid cell (``mismatch``, ``transconductor``)."""
    from ..substrates import get_substrate

    options = {"mismatch": float(mismatch), "seed": plan.chip_seed, "transconductor": transconductor}
    if plan.solver == "ode":
        # Only the phase ends are needed (the rule's sums are kept by the engine); a digits
        # evaluation on a loaded machine can outlast the ODE's default 120 s budget per call.
        options.update(record="final", max_seconds=None)
    options.update(plan.substrate_options)
    if transconductor == "ota":
        options.update(plan.ota_options)
    return get_substrate(plan.solver, **options)


def ideal_substrate(plan: InSituPlan):
    """The reference: the ideal ODE (the model's own equations)."""
    from ..substrates import get_substrate

    return get_substrate("ode", record="final", max_seconds=None)


def study_dataset(model, plan: InSituPlan):
    """The model's data set split as it was trained, cut to the plan's first N presentations."""
    from ..data.split import dataset_for_model

    ds = dataset_for_model(model)
    if plan.train_samples is not None:
        ds = replace(ds, train=ds.train.subset(slice(0, plan.train_samples)))
    if plan.test_samples is not None:
        ds = replace(ds, test=ds.test.subset(slice(0, plan.test_samples)))
    return ds


def test_scores(networks, test, substrate, chips: Sequence[int], config):
    """Free-phase scores of ``networks`` (network ``k`` on chip ``chips[k]``) on the test split,
    initial states from the generators ``(chip, EVAL_STREAM)``."""
    from ..learning.steps import evaluate_split
    from ..learning.training import _EVAL_STREAM
    from ..model.network import NetworkBatch

    rngs = [np.random.default_rng([int(c), _EVAL_STREAM]) for c in chips]
    return evaluate_split(substrate, NetworkBatch.of(list(networks)), test, rngs, config.eval_schedule,
                          config.state_init_high)


def _row(plan: InSituPlan, transconductor: str, mismatch: float, chip: int, arm: str, epochs: int,
         accuracy: float, n: int, settled: float, train_presentations: int, seconds: float) -> dict:
    correct = int(round(float(accuracy) * n))
    lo, hi = wilson_interval(correct, n)
    trained_on = (plan.train_solver or plan.solver) if arm in ("finetune", "scratch") else ""
    return {"solver": plan.solver, "trained_on": trained_on, "transconductor": transconductor, "mismatch": float(mismatch),
            "chip_seed": plan.chip_seed, "chip": int(chip), "arm": arm, "epochs": int(epochs),
            "correct": correct, "n": int(n), "accuracy": correct / n, "ci_low": lo, "ci_high": hi,
            "settled": float(settled), "train_presentations": int(train_presentations),
            "seconds": float(seconds)}


def run_cell(model, plan: InSituPlan, mismatch: float, transconductor: str, *, dataset=None,
             ideal_rows: "list[dict] | None" = None, arms: Sequence[str] = ARMS) -> list[dict]:
    """Every arm of the chips of one grid cell; returns the result rows (see :data:`COLUMNS`).

    ``model`` is a :class:`~deepcircuit.learning.model_file.ModelFile` (or its path) of the
    ideal-trained network. ``ideal_rows``: rows of the ideal arm already measured (the ideal
    reference does not depend on the cell); measured here when None and ``"ideal"`` in ``arms``.
    """
    from ..learning.model_file import ModelFile, load_model
    from ..learning.training import train

    model = model if isinstance(model, ModelFile) else load_model(model)
    ds = dataset if dataset is not None else study_dataset(model, plan)
    config = model.training_config()
    chips = list(range(plan.chips))
    net = model.network
    n_test = ds.test.n_presentations
    n_train = ds.train.n_presentations
    rows: list[dict] = []
    if "ideal" in arms:
        if ideal_rows is None:
            t0 = time.perf_counter()
            sc = test_scores([net] * len(chips), ds.test, ideal_substrate(plan), chips, config)
            sec = (time.perf_counter() - t0) / len(chips)
            ideal_rows = [_row(replace(plan, solver="ode"), "vccs", 0.0, c, "ideal", 0, sc.accuracy[k], n_test,
                               sc.settled[k], 0, sec) for k, c in enumerate(chips)]
        rows += [dict(r, transconductor=transconductor, mismatch=float(mismatch)) for r in ideal_rows]
    sub = chip_substrate(plan, mismatch, transconductor)
    try:
        if "deployed" in arms:
            t0 = time.perf_counter()
            sc = test_scores([net] * len(chips), ds.test, sub, chips, config)
            sec = (time.perf_counter() - t0) / len(chips)
            rows += [_row(plan, transconductor, mismatch, c, "deployed", 0, sc.accuracy[k], n_test, sc.settled[k],
                          0, sec) for k, c in enumerate(chips)]
        if "finetune" in arms and plan.finetune_epochs:
            rows += _finetune(model, ds, config, plan, sub, mismatch, transconductor, chips, train)
        if "scratch" in arms and plan.scratch_epochs:
            few = chips[: plan.scratch_chips] if plan.scratch_chips else chips
            t0 = time.perf_counter()
            res = train(ds, model=net.family, topology=net.topology, hidden=_hidden(net), seeds=few,
                        config=config.replace(epochs=plan.scratch_epochs, eval_every=0), substrate=sub)
            sec = (time.perf_counter() - t0) / len(few)
            acc = 1.0 - np.asarray(res.test_error, dtype=float)
            rows += [_row(plan, transconductor, mismatch, c, "scratch", plan.scratch_epochs, acc[k], n_test,
                          np.nan, n_train * plan.scratch_epochs, sec) for k, c in enumerate(few)]
    finally:
        close = getattr(sub, "close", None)
        if close is not None:
            close()
    return rows


def _hidden(net) -> tuple:
    """The hidden sizes ``train`` takes for ``net`` (a '+sink' topology adds its sink itself)."""
    from ..model.topology import has_sink

    hidden = tuple(net.roles.hidden)
    return hidden[:-1] if has_sink(net.topology) else hidden


def _finetune(model, ds, config, plan, sub, mismatch, transconductor, chips, train) -> list[dict]:
    """The fine-tune arm: one run of ``max(finetune_epochs)`` epochs from the model on every chip.

    Several k: the test split is evaluated by ``train`` after every epoch. One k (the SPICE
    study): ``train``'s own end-of-run evaluations run one step only (on a circuit simulator they
    cost as much as the training; they are not reported),
    and the test split is scored by :func:`test_scores` with the model's evaluation schedule and
    the deployed arm's initial states: the two arms are paired presentation by presentation.
    """
    ks = sorted(set(plan.finetune_epochs))
    last = ks[-1]
    t0 = time.perf_counter()
    score_sub = sub
    if plan.train_solver not in (None, plan.solver):
        twin = replace(plan, solver=plan.train_solver, substrate_options={})
        sub = chip_substrate(twin, mismatch, transconductor)
        ks = [last]  # scored on the plan's solver after training
    if len(ks) > 1:
        cfg = config.replace(epochs=last, eval_every=1)
    else:
        cfg = config.replace(epochs=last, eval_every=0, eval_free_steps=1)
    res = train(ds, init=[model] * len(chips), seeds=chips, config=cfg, substrate=sub)
    sec = (time.perf_counter() - t0) / len(chips)
    n_test, n_train = ds.test.n_presentations, ds.train.n_presentations
    settled = np.full(len(chips), np.nan)
    if len(ks) == 1:
        t1 = time.perf_counter()
        sc = test_scores(res.networks, ds.test, score_sub, chips, config)
        errors = {last: sc.error}
        settled = sc.settled
        sec += (time.perf_counter() - t1) / len(chips)
    else:
        errors = {e: [h.test_error[e - 1] for h in res.histories] for e in ks}
    rows = []
    for k, c in enumerate(chips):
        for e in ks:
            err = float(errors[e][k])
            if not np.isfinite(err):  # pragma: no cover - train evaluates every epoch here
                raise InvalidInputError(f"chip {c}: no test evaluation after epoch {e}")
            row = _row(plan, transconductor, mismatch, c, "finetune", e, 1.0 - err, n_test, settled[k],
                       n_train * e, sec * e / last)
            if res.diverged[k]:
                row["diverged"] = res.diverged[k]
            rows.append(row)
    return rows


def run_study(model, plan: InSituPlan, *, out: "str | Path | None" = None,
              progress: Callable[[str], None] | None = None, arms: Sequence[str] = ARMS):
    """The whole grid, cell by cell; returns a pandas DataFrame of every row.

    With ``out`` (a ``.csv`` path) the rows so far are written atomically after every cell (a
    ``.parquet`` twin beside it when pyarrow is there), and cells already in the file are not run
    again, so a stopped study resumes and a cut one still leaves a table.
    """
    import pandas as pd

    from ..learning.model_file import ModelFile, load_model

    model = model if isinstance(model, ModelFile) else load_model(model)
    ds = study_dataset(model, plan)
    rows = []
    done = set()
    if out is not None and Path(out).exists():
        old = pd.read_csv(out)
        rows = old.to_dict("records")
        done = {(r["solver"], r["transconductor"], float(r["mismatch"]), int(r["chip_seed"])) for r in rows
                if r["arm"] != "ideal"}
    ideal_rows = None
    for t in plan.transconductors:
        for m in plan.mismatches:
            key = (plan.solver, t, float(m), plan.chip_seed)
            if key in done:
                continue
            t0 = time.perf_counter()
            cell = run_cell(model, plan, m, t, dataset=ds, ideal_rows=ideal_rows, arms=arms)
            ideal_rows = [r for r in cell if r["arm"] == "ideal"] or ideal_rows
            rows += cell
            if out is not None:
                write_rows(rows, out)
            if progress is not None:
                progress(f"{plan.solver} {t} mismatch {m:g}: {summary_line(cell)} "
                         f"({time.perf_counter() - t0:.0f} s)")
    return pd.DataFrame(rows)


def summary_line(rows: Sequence[dict]) -> str:
    """Mean accuracy per arm (and epochs) of some rows, as one line."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((ARMS.index(r["arm"]), r["arm"], r["epochs"]), []).append(r["accuracy"])
    return ", ".join(f"{arm}{'-' + str(e) if arm in ('finetune', 'scratch') else ''} "
                     f"{100 * np.mean(v):.1f} %" for (_, arm, e), v in sorted(groups.items()))


def write_rows(rows: Sequence[dict], out: "str | Path") -> Path:
    """Write the rows to ``out`` (CSV) atomically, and a Parquet twin when pyarrow is installed."""
    import pandas as pd

    from ..atomic_files import atomic_output, write_atomic

    out = Path(out)
    df = pd.DataFrame(list(rows))
    write_atomic(out, df.to_csv(index=False))
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # pragma: no cover - pyarrow is a declared dependency
        return out
    with atomic_output(out.with_suffix(".parquet"), suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return out


def arm_table(df):
    """Mean accuracy per (solver, transconductor, mismatch, arm, epochs) over the chips, with the
    worst and best chip and a Wilson interval of the mean at one chip's test size: the chips
    share their test presentations, so pooling them would overstate the certainty."""
    g = df.groupby(["solver", "transconductor", "mismatch", "arm", "epochs"], sort=False)
    t = g.agg(chips=("chip", "nunique"), accuracy=("accuracy", "mean"), worst=("accuracy", "min"),
              best=("accuracy", "max"), n=("n", "max")).reset_index()
    ci = [wilson_interval(int(round(a * n)), int(n)) for a, n in zip(t["accuracy"], t["n"])]
    t["ci_low"], t["ci_high"] = [c[0] for c in ci], [c[1] for c in ci]
    order = {a: i for i, a in enumerate(ARMS)}
    return t.sort_values(["solver", "transconductor", "mismatch", "arm", "epochs"],
                         key=lambda s: s.map(order) if s.name == "arm" else s).reset_index(drop=True)


def plot_accuracy(df, path: "str | Path | None" = None, *, title: str | None = None):
    """Accuracy against mismatch, one line per arm (mean over chips, error bars the range over
    chips), one panel per transconductor. Returns the Figure; saved atomically to ``path``."""
    from .plots import _figure, save_figure

    kinds = [k for k in ("vccs", "ota") if k in set(df["transconductor"])]
    fig, axes = _figure(len(kinds), width=5.0, height=3.8)
    t = arm_table(df)
    styles = {"ideal": dict(color="k", ls="--"), "deployed": dict(color="tab:red", marker="o"),
              "finetune": dict(marker="s"), "scratch": dict(color="tab:green", marker="^")}
    for ax, kind in zip(axes, kinds):
        sub = t[t["transconductor"] == kind]
        for (arm, e), line in sub.groupby(["arm", "epochs"], sort=False):
            line = line.sort_values("mismatch")
            x, y = line["mismatch"].to_numpy(), 100 * line["accuracy"].to_numpy()
            # clipped: a mean of equal values can round a hair outside them
            err = np.clip(np.vstack([y - 100 * line["worst"].to_numpy(), 100 * line["best"].to_numpy() - y]), 0, None)
            label = {"ideal": "ideal model, ideal ODE", "deployed": "deployed as trained",
                     "finetune": f"fine-tuned in situ, {e} epoch{'s' if e > 1 else ''}",
                     "scratch": f"trained in situ from scratch, {e} epochs"}[arm]
            ax.errorbar(x, y, yerr=err, capsize=3, label=label, **styles[arm])
        ax.set_title(f"{kind.upper()} synapses")
        ax.set_xlabel("transconductance mismatch (relative sd)")
        ax.set_ylabel("test accuracy (%), mean and range over chips")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig
