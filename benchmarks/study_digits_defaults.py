"""Study: which DEEP configuration makes the hidden layer learn the 8x8 digits?

Run: ``python benchmarks/study_digits_defaults.py`` (the whole study, validation split, about
2 minutes per configuration on a free core), ``--study NAME ...`` (some of it), ``--final``
(the chosen configuration, 30 epochs, on the test split, and the same with the input weights
frozen), or one configuration: ``--run --set name=value ...`` (test split). Add ``--alignment``
to measure the gradient alignment at the start and end of each run.

The data: scikit-learn's ``load_digits`` (1797 samples, 64 features, 10 classes), a stratified
80/20 split with seed 0, features scaled to [0, 1] by a MinMaxScaler fitted on the training
split; inputs ``[x, 1]`` (bias neuron last), one output per class (argmax readout), one-hot
targets. Every presentation starts from free states ``~ Uniform(0, 0.1)``.

The dynamics are the ``deep`` (``gamma = 0``) or ``deep-leaky`` family's projected Euler scheme,
``s <- clip(s + dt (s @ W - s * (W.sum(1) + gamma) + beta (y - s) on outputs), 0, 1)``, stepped
here as one batched numpy matmul per step over a minibatch (the numba kernel of the ODE
substrate is slow at N ~ 175); :func:`check_against_substrate` runs one minibatch through
``get_substrate("ode").run`` and :func:`deepcircuit.learning.rule.weight_update` and asserts that this
harness gives the same states and the same update, so the figures are those of the package.

The rules (both local: synapse i -> j reads only s_i and s_j):

* ``stdp``: DEEP's rule, ``dW[i, j] = 1/(P T2) sum_p sum_t s_i(t) (s_j(t) - s_j(t-1))``;
* ``stdp2``: both endpoints, ``dW[i, j] = 1/(P T2) sum_p sum_t s_i(t) ((s_j(t) - s_j(t-1)) -
  (s_i(t) - s_i(t-1)))``; see ``docs/gradient.md`` for why this is DEEP's gradient structure
  (``-dL/dW[i, j] = s_i (lambda_j - lambda_i)``);
* ``stdp2-mirror``: ``stdp2`` with each backward synapse (output -> hidden) taking the update
  of its forward twin (hidden -> output), as in Kolen-Pollack learning.

The update is ``W += eta_eff * dW`` with ``eta_eff = eta * (10 / beta)`` (the rule has no
1/beta; this keeps the effective learning rate equal across betas) times an optional per-layer
factor. Times in tau, states dimensionless.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from deepcircuit import Network, NetworkBatch, Roles, Schedule, get_substrate
from deepcircuit.learning.rule import weight_update
from deepcircuit.substrates.trajectory import PhaseResult


@dataclass(frozen=True)
class Config:
    """Every setting of one digits run (times in tau)."""

    hidden: int = 100
    epochs: int = 30
    batch: int = 64
    dt: float = 0.05
    free_tau: float = 50.0
    nudged_tau: float = 50.0
    beta: float = 10.0
    eta: float = 100.0
    rule: str = "stdp"              # "stdp", "stdp2" or "stdp2-mirror"
    gamma: float = 0.0              # leak (deep-leaky); 0 = deep
    init_in: float = 1.0            # std of input -> hidden weights
    init_in_mean: float = 0.0
    init_bias: float = 0.0          # std of bias weights
    init_free: float = 0.05         # std of weights leaving free neurons
    init_free_mean: float = 0.05    # mean of weights leaving free neurons
    eta_in: float = 1.0             # per-layer factors on eta: input->hidden (bias included)
    eta_hh: float = 1.0             # hidden->output
    eta_back: float = 1.0           # output->hidden
    freeze_in: bool = False         # freeze input->hidden weights (does the hidden layer learn?)
    seed: int = 0


def load_data(seed: int = 0, validation: bool = False):
    """Digits, stratified 80/20 split (seed), MinMax scaled on train; inputs with bias column.

    ``validation``: split the training part again (stratified 80/20, same seed) and return the
    held-out fifth in place of the test set, so the study chooses without seeing the test set.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    if validation:
        Xtr, Xte, ytr, yte = train_test_split(Xtr, ytr, test_size=0.2, stratify=ytr, random_state=seed)
    sc = MinMaxScaler().fit(Xtr)
    add_bias = lambda a: np.hstack([np.clip(sc.transform(a), 0.0, 1.0), np.ones((len(a), 1))])
    return add_bias(Xtr), ytr, add_bias(Xte), yte


def make_network(cfg: Config, n_in: int = 65, n_out: int = 10) -> Network:
    """Layered n_in-hidden-n_out DEEP network (forward and backward), initialised per ``cfg``."""
    roles = Roles(n_in, (cfg.hidden,), n_out)
    family = "deep-leaky" if cfg.gamma > 0 else "deep"
    params = {"gamma": cfg.gamma} if cfg.gamma > 0 else None
    net = Network.create(roles, family=family, topology="layered", params=params, init_scale=1.0,
                         rng=np.random.default_rng(cfg.seed))
    W = np.array(net.weights)
    scale = np.full(roles.n_neurons, cfg.init_free)
    mean = np.full(roles.n_neurons, cfg.init_free_mean)
    scale[: n_in - 1], mean[: n_in - 1] = cfg.init_in, cfg.init_in_mean
    scale[n_in - 1], mean[n_in - 1] = cfg.init_bias, 0.0
    W = np.where(net.mask, W * scale[:, None] + mean[:, None], 0.0)
    return net.with_weights(W)


def layer_masks(net: Network) -> dict:
    """Boolean masks of the weight groups: input->hidden, hidden->output, output->hidden."""
    r = net.roles
    m = np.asarray(net.mask)
    inp = np.zeros_like(m)
    inp[: r.n_inputs] = True
    out = np.zeros_like(m)
    out[r.n_neurons - r.n_outputs:] = True
    return {"in": m & inp, "hh": m & ~inp & ~out, "back": m & out}


class Harness:
    """Batched projected Euler of one network and the local rule's sums."""

    def __init__(self, net: Network, cfg: Config):
        self.cfg = cfg
        self.r = net.roles
        self.mask = np.asarray(net.mask)
        self.W = np.array(net.weights)
        self.groups = layer_masks(net)
        self.lr = np.zeros_like(self.W)
        for name, factor in (("in", cfg.eta_in), ("hh", cfg.eta_hh), ("back", cfg.eta_back)):
            self.lr[self.groups[name]] = 0.0 if (name == "in" and cfg.freeze_in) else factor
        self.lr *= cfg.eta * (10.0 / cfg.beta)

    def phase(self, s, steps, beta=0.0, y=None, accumulate=False):
        """Run ``steps`` Euler steps from ``s (B, N)``.

        Returns ``(final state, speed (B,) in 1/tau, sums)``; ``sums`` is
        ``sum_p sum_t s_i(t) (s_j(t) - s_j(t-1))`` (N, N), the STDP sum of
        :func:`deepcircuit.learning.rule.stdp_update`, when ``accumulate``.
        """
        r, dt = self.r, self.cfg.dt
        nx, no = r.n_inputs, r.n_outputs
        A = self.W[:, nx:]
        d = self.W[nx:].sum(axis=1) + self.cfg.gamma
        s = s.copy()
        acc = np.zeros((r.n_neurons, r.n_neurons - nx)) if accumulate else None
        speed = np.full(len(s), np.inf)
        for _ in range(steps):
            free = s[:, nx:]
            v = s @ A - free * d
            if beta:
                v[:, -no:] += beta * (y - free[:, -no:])
            new = np.clip(free + dt * v, 0.0, 1.0)
            step = new - free
            s[:, nx:] = new
            if accumulate:
                acc += s.T @ step      # pre is the new state s(t), post the change s(t) - s(t-1)
            speed = np.abs(step).max(axis=1) / dt
        if accumulate:
            acc = np.hstack([np.zeros((r.n_neurons, nx)), acc])
        return s, speed, acc

    def initial(self, x, rng):
        s = np.empty((len(x), self.r.n_neurons))
        s[:, : self.r.n_inputs] = x
        s[:, self.r.n_inputs:] = rng.uniform(0.0, 0.1, size=(len(x), self.r.n_neurons - self.r.n_inputs))
        return s

    def rule(self, sums, P):
        """The configured local rule from the STDP sums of P presentations (before eta)."""
        T2 = int(round(self.cfg.nudged_tau / self.cfg.dt))
        dW = sums / (P * T2)
        if self.cfg.rule in ("stdp2", "stdp2-mirror"):
            # minus the pre-synaptic neuron's own change: sum_t s_i(t) (s_i(t) - s_i(t-1))
            dW = dW - np.diag(dW)[:, None]
        if self.cfg.rule == "stdp2-mirror":
            # feedback synapse o -> h takes the update of its forward twin h -> o (Kolen-Pollack
            # style; still local: both read only s_h and s_o), so feedback follows the readout
            back = self.groups["back"]
            dW = np.where(back, dW.T, dW)
        elif self.cfg.rule not in ("stdp", "stdp2"):
            raise ValueError(f"unknown rule {self.cfg.rule!r}")
        return np.where(self.mask, dW, 0.0)

    def train_batch(self, x, y, rng):
        c = self.cfg
        s = self.initial(x, rng)
        s, sp_free, _ = self.phase(s, int(round(c.free_tau / c.dt)))
        s, sp_nudged, sums = self.phase(s, int(round(c.nudged_tau / c.dt)), c.beta, y, accumulate=True)
        dW = self.rule(sums, len(x))
        self.W = np.where(self.mask, self.W + self.lr * dW, 0.0)
        return dW, sp_free

    def predict(self, x, rng, chunk=512, tau=None):
        out, unsettled, rail = [], 0, 0.0
        r = self.r
        for k in range(0, len(x), chunk):
            s = self.initial(x[k:k + chunk], rng)
            s, sp, _ = self.phase(s, int(round((tau or self.cfg.free_tau) / self.cfg.dt)))
            out.append(s[:, -r.n_outputs:])
            unsettled += int(np.sum(sp > 1e-4))
            hid = s[:, r.n_inputs:r.n_neurons - r.n_outputs]
            rail += float(np.sum((hid <= 0.0) | (hid >= 1.0)))
        o = np.vstack(out)
        self.hidden_at_rail = rail / (len(x) * (r.n_neurons - r.n_inputs - r.n_outputs))
        return o, unsettled / len(x)


def check_against_substrate(cfg: Config, n: int = 8) -> float:
    """Run one small minibatch through the ODE substrate and ``weight_update``; return the largest
    difference of the update of every rule from this harness's (raises if above 1e-9)."""
    Xtr, ytr, _, _ = load_data()
    small = replace(cfg, hidden=12, free_tau=2.0, nudged_tau=2.0)
    net = make_network(small)
    h = Harness(net, small)
    x, y = Xtr[:n], np.eye(10)[ytr[:n]]
    s0 = h.initial(x, np.random.default_rng(1))
    sched = Schedule(dt=small.dt, free_steps=int(round(small.free_tau / small.dt)),
                     nudged_steps=int(round(small.nudged_tau / small.dt)), beta=small.beta)
    res = get_substrate("ode").run(NetworkBatch.of(net), x, s0[None], sched, targets=y)
    s, _, _ = h.phase(s0, sched.free_steps)
    _, _, sums = h.phase(s, sched.nudged_steps, small.beta, y, accumulate=True)
    err = 0.0
    for rule in ("stdp", "stdp2", "stdp2-mirror"):
        ref = weight_update(rule, res, {"beta": small.beta, "beta0": 0.0, "beta1": 1.0,
                                        "nudged_steps": sched.nudged_steps})[0][0]
        mine = Harness(net, replace(small, rule=rule)).rule(sums, n)
        err = max(err, float(np.abs(mine - np.where(net.mask, ref, 0.0)).max()))
    if err > 1e-9:
        raise AssertionError(f"harness and ODE substrate disagree by {err:.3g}")
    return err


def run(cfg: Config, *, log=print, eval_every: int = 1, validation: bool = False) -> dict:
    """Train one configuration; return the per-epoch curve and the final accuracies.

    With ``validation`` the "test" figures are on the validation split (see :func:`load_data`).
    """
    Xtr, ytr, Xte, yte = load_data(validation=validation)
    Ytr = np.eye(10)[ytr]
    net = make_network(cfg)
    h = Harness(net, cfg)
    rng = np.random.default_rng(cfg.seed + 1000)
    # Evaluation draws its initial states from its own generator, so how often one evaluates
    # does not change the training.
    eval_rng = np.random.default_rng(cfg.seed + 2000)
    curve = []
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(Xtr))
        norms = {g: 0.0 for g in h.groups}
        for k in range(0, len(order), cfg.batch):
            idx = order[k:k + cfg.batch]
            dW, _ = h.train_batch(Xtr[idx], Ytr[idx], rng)
            for g, m in h.groups.items():
                norms[g] += float(np.linalg.norm((h.lr * dW)[m]))
        if (epoch + 1) % eval_every == 0 or epoch == cfg.epochs - 1:
            o_te, uns = h.predict(Xte, eval_rng)
            o_tr, _ = h.predict(Xtr, eval_rng)
            sat = float(np.mean((o_tr <= 0.0) | (o_tr >= 1.0)))
            row = {"epoch": epoch + 1, "test": float(np.mean(o_te.argmax(1) == yte)),
                   "train": float(np.mean(o_tr.argmax(1) == ytr)), "unsettled_test": uns,
                   "out_at_rail": sat, "hidden_at_rail": h.hidden_at_rail, "seconds": time.perf_counter() - t0,
                   **{f"update_{g}": v for g, v in norms.items()}}
            curve.append(row)
            log(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))
    # The same final network with a 5x longer free phase: are the predictions those of settled states?
    o_long, uns_long = h.predict(Xte, eval_rng, tau=5 * cfg.free_tau)
    long = {"test_long_free_phase": float(np.mean(o_long.argmax(1) == yte)), "unsettled_long": uns_long,
            "long_free_tau": 5 * cfg.free_tau}
    log(json.dumps(long))
    return {"config": asdict(cfg), "curve": curve, "test": curve[-1]["test"], "train": curve[-1]["train"], **long,
            "seconds": time.perf_counter() - t0, "W0": np.asarray(net.weights), "W": h.W}


def digits_alignment(W: np.ndarray, cfg: Config, *, samples: int = 64, betas=(10.0, 1.0, 0.1)) -> dict:
    """Cosine of DEEP's rule (stdp) and the two-endpoint rule (stdp2) with -gradient on digits.

    ``samples`` validation presentations, the ODE substrate with this configuration's schedule,
    :func:`deepcircuit.stability.gradient_check.gradient_check`; by weight group.
    """
    from deepcircuit.stability.gradient_check import gradient_check
    from deepcircuit.data.tasks import Task

    _, _, Xva, yva = load_data(validation=True)
    net = make_network(cfg).with_weights(W)
    task = Task("digits-validation", Xva[:samples], np.eye(10)[yva[:samples]], "argmax")
    sched = Schedule(dt=cfg.dt, free_steps=int(round(cfg.free_tau / cfg.dt)),
                     nudged_steps=int(round(cfg.nudged_tau / cfg.dt)), beta=cfg.beta)
    rep = gradient_check(net, task, betas=betas, schedule=sched, rules={"deep": "stdp", "deep-stdp2": "stdp2"},
                         symmetric=False, fd_entries=0)
    return rep.to_dict()


def parse_set(items):
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


#: The study's base: the prototype's layered 64-100-10 network with shorter phases (10 tau each,
#: dt 0.1; the 5x longer final check shows the predictions are those of settled states), the
#: project deep initialisation, minibatch 64, 15 epochs, on the validation split. ``eta`` 10 with
#: T2 = 100 steps is the prototype's eta 100 with T2 = 1000 (the rule divides by T2).
STUDY_BASE = {"dt": 0.1, "free_tau": 10.0, "nudged_tau": 10.0, "epochs": 15, "eta": 10.0}
#: The configuration the study chose (every setting not named here is the base's / Config's):
#: deep-leaky (gamma 1), beta 1 (eta_eff = eta * 10 / beta = 100), the two-endpoint rule with
#: mirrored feedback, small input weights (std 0.1) learning 3x faster, feedback 10x slower.
CHOSEN = {"beta": 1.0, "eta": 10.0, "gamma": 1.0, "init_in": 0.1, "eta_in": 3.0, "eta_back": 0.1,
          "rule": "stdp2-mirror"}
#: The study, in the order it was run: each entry changes the base; same seed, split, validation split.
STUDIES = {
    "deep": {"beta": 10.0},                                     # DEEP's rule as in the prototype
    "deep-frozen-in": {"beta": 10.0, "freeze_in": True},        # ... is only the readout learning?
    "leak1": {"beta": 10.0, "gamma": 1.0, "eta": 30.0},         # a leak: contracting, settles
    "stdp2-beta1": {"rule": "stdp2", "beta": 1.0, "gamma": 1.0, "eta_back": 0.1},
    "stdp2-beta1-init0.1": {"rule": "stdp2", "beta": 1.0, "gamma": 1.0, "eta_back": 0.1, "init_in": 0.1,
                            "eta_in": 3.0},
    "stdp2-beta1-init0.1-frozen-in": {"rule": "stdp2", "beta": 1.0, "gamma": 1.0, "eta_back": 0.1,
                                      "init_in": 0.1, "eta_in": 3.0, "freeze_in": True},
    "chosen": dict(CHOSEN),
    "chosen-gamma0": {**CHOSEN, "gamma": 0.0},
}
#: ``--final``: the chosen configuration for 30 epochs on the test split, and with frozen inputs.
FINAL = {"chosen": {**CHOSEN, "epochs": 30}, "chosen-frozen-in": {**CHOSEN, "epochs": 30, "freeze_in": True}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", action="store_true", help="run one configuration (Config() + --set), test split")
    ap.add_argument("--final", action="store_true",
                    help="the chosen configuration, 30 epochs, test split, and the same with frozen inputs")
    ap.add_argument("--study", nargs="*", default=None, help=f"studies to run (default all: {list(STUDIES)})")
    ap.add_argument("--set", nargs="*", default=[], help="name=value changes of the base configuration")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--eval-every", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--alignment", action="store_true",
                    help="also measure the gradient alignment at the start and end of each run")
    ap.add_argument("--test", action="store_true",
                    help="report on the test split (default for --run); studies use the validation split")
    args = ap.parse_args(argv)
    changes = parse_set(args.set)
    base = replace(Config(), **{**({} if args.run else STUDY_BASE), **changes})
    if args.epochs is not None:
        base = replace(base, epochs=args.epochs)
    print(f"harness vs ODE substrate: max |dW difference| = {check_against_substrate(base):.2e}", flush=True)
    names = ["run"] if args.run else (args.study or list(FINAL if args.final else STUDIES))
    table = FINAL if args.final else STUDIES
    on_test = args.run or args.test or args.final
    results = {}
    for name in names:
        # --set wins over the study's own changes
        cfg = base if name == "run" else replace(base, **{**table[name], **changes})
        print(f"== {name}: {asdict(cfg)}", flush=True)
        results[name] = run(cfg, log=lambda m: print(m, flush=True), eval_every=args.eval_every,
                            validation=not on_test)
        if args.alignment:
            for when in ("W0", "W"):
                d = digits_alignment(results[name][when], cfg)
                print(f"alignment ({'start' if when == 'W0' else 'end'}): singular {d['singular']}/"
                      f"{d['presentations']}, |grad| {d['gradient_norm']:.3g}", flush=True)
                for rule, a in d["rules"].items():
                    print(f"  {rule}: beta {a['beta']} cosine {np.round(a['cosine'], 3).tolist()}", flush=True)
                    for g, v in a["groups"].items():
                        print(f"    {g}: {np.round(v, 3).tolist()}", flush=True)
                results[name][f"alignment_{when}"] = d
    for r in results.values():
        r.pop("W0", None), r.pop("W", None)
    split = "test" if on_test else "validation"
    print(f"\n| study | {split} acc | train acc | seconds |\n| --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['test']:.4f} | {r['train']:.4f} | {r['seconds']:.0f} |")
    if args.json:
        from deepcircuit.atomic_files import write_atomic
        write_atomic(args.json, json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
