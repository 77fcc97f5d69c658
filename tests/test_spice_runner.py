"""The in-loop runner: netlists of a call spread over Dask worker processes (substrates/cluster.py).

Pins: a task that raises is retried once and then reported, never dropped; a worker process that
dies is replaced and its task rescheduled; a SPICE training whose worker is killed mid-epoch
completes with the same weights as in one process.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from deepcircuit import train
from deepcircuit.errors import SimulationError
from deepcircuit.learning.config import TrainingConfig
from deepcircuit.substrates import ngspice_shared
from deepcircuit.substrates.cluster import ProcessRunner, TaskFailed


def _die_once(x, marker):
    """Kills its worker process the first time it runs for ``x == 1`` (a crash in ngspice)."""
    path = f"{marker}-{x}"
    if x == 1 and not os.path.exists(path):
        open(path, "w").close()
        os._exit(1)
    return x * x


def _always_fails(x, marker):
    with open(marker, "a") as fh:
        fh.write(f"{x}\n")
    if x == 2:
        raise ValueError(f"item {x} cannot be simulated")
    return x


@pytest.fixture(scope="module")
def runner():
    r = ProcessRunner(workers=2)
    yield r
    r.close()


def test_a_worker_that_dies_is_replaced_and_its_task_rescheduled(runner, tmp_path):
    before = runner.worker_pids()
    assert runner.map(_die_once, [0, 1, 2, 3], str(tmp_path / "m")) == [0, 1, 4, 9]
    assert (tmp_path / "m-1").exists()  # it did die once
    deadline = time.monotonic() + 30
    while len(runner.worker_pids()) < 2 and time.monotonic() < deadline:  # the nanny restarts it
        time.sleep(0.2)
    after = runner.worker_pids()
    assert len(after) == 2 and after != before


def test_a_failing_task_is_retried_once_then_reported(runner, tmp_path):
    marker = tmp_path / "tries"
    with pytest.raises(TaskFailed, match="item 2 cannot be simulated") as info:
        runner.map(_always_fails, [1, 2, 3], str(marker))
    assert info.value.index == 1
    assert marker.read_text().split().count("2") == 2  # the first try and one retry
    out = runner.map(_always_fails, [1, 2, 3], str(marker), raise_failures=False)
    assert out[0] == 1 and out[2] == 3 and isinstance(out[1], TaskFailed)


spice = pytest.importorskip("deepcircuit.substrates.spice")


@pytest.mark.spice
def test_spice_training_survives_a_worker_killed_mid_epoch():
    cfg = TrainingConfig(epochs=6, free_steps=100, nudged_steps=100)
    alone = train("xor", seeds=[0, 1], config=cfg, substrate=spice.SpiceSubstrate(clamp="limiter"))
    with spice.SpiceSubstrate(clamp="limiter", workers=2, presentations_per_run=1) as sub:
        pids = sub.runner.worker_pids()
        killed = []

        def kill_one():
            time.sleep(1.0)  # the training is under way (about 4 s on 2 workers)
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

        t = threading.Thread(target=kill_one)
        t.start()
        t0 = time.monotonic()
        res = train("xor", seeds=[0, 1], config=cfg, substrate=sub)
        t.join()
        assert killed and time.monotonic() - t0 > 1.0  # the kill came while it was training
        assert pids[0] not in sub.runner.worker_pids()
    assert sub._runner is None  # closed: the local cluster is gone
    assert res.diverged == [None, None]
    for a, b in zip(res.networks, alone.networks):
        # Presentations in separate netlists take ngspice time steps of their own: close, not equal.
        np.testing.assert_allclose(a.weights, b.weights, atol=1e-2)


@pytest.mark.spice
def test_spice_netlist_failing_in_the_workers_is_reported_with_where(tmp_path):
    cfg = TrainingConfig(epochs=1, free_steps=100, nudged_steps=100)
    # Tolerances ngspice cannot meet: "Timestep too small" at once, in every try.
    impossible = {"trtol": 1e-9, "reltol": 1e-12, "abstol": 1e-30}
    with spice.SpiceSubstrate(workers=2, options=impossible, netlist_dir=tmp_path) as sub:
        with pytest.raises(SimulationError, match=r"of network 0, presentations 0\.\.3 of this call failed twice "
                                                  r"in the Dask workers \(retried once\): .*Timestep too small"):
            train("xor", seeds=[0], config=cfg, substrate=sub)
        # two seeds: the failing networks are reported as diverged, with the same reason
        res = train("xor", seeds=[0, 1], config=cfg, substrate=sub)
        assert all("retried once" in d for d in res.diverged)


def test_cli_train_workers_option(tmp_path):
    import json
    import subprocess
    import sys

    dc = [sys.executable, "-m", "deepcircuit", "train", "--task", "xor", "--epochs", "2", "--quiet"]
    p = subprocess.run(dc + ["--workers", "2", "--out", str(tmp_path / "ode")], capture_output=True, text=True)
    assert p.returncode == 2 and "--workers and --scheduler apply to --substrate spice" in p.stderr
    assert not (tmp_path / "ode").exists()
    if shutil.which("ngspice") is None and not _has_libngspice():
        pytest.skip("needs ngspice")
    p = subprocess.run(dc + ["--substrate", "spice", "--clamp", "limiter", "--workers", "2", "--seeds", "2",
                             "--free-steps", "100", "--nudged-steps", "100", "--json",
                             "--out", str(tmp_path / "spice")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout.splitlines()[-1])
    assert d["substrate"] == "spice" and d["seeds"] == [0, 1] and len(d["models"]) == 2


def _has_libngspice() -> bool:
    try:
        ngspice_shared.load_ngspice()
        return True
    except Exception:
        return False


@pytest.mark.spice
def test_program_engine_reads_every_row_and_refuses_a_cut_raw_file(tmp_path):
    from deepcircuit import Network, Roles, Schedule, get_task, initial_states
    from deepcircuit.substrates.circuit import compile_netlist
    from deepcircuit.substrates.ngspice_program import read_raw, run_program

    if shutil.which("ngspice") is None:
        pytest.skip("needs the ngspice program")
    task, roles = get_task("xor"), Roles(3, (5,), 1)
    net = Network.create(roles, rng=1, init_scale=0.5)
    s0 = initial_states(np.random.default_rng(0), 1, task.inputs, roles)
    sched = Schedule(free_steps=100, nudged_steps=100)
    sub = spice.SpiceSubstrate()
    netlist = compile_netlist(net, task.inputs, s0, sched, targets=task.targets, options={"reltol": 1e-4})
    t_lib, v_lib = sub._simulate(ngspice_shared.load_ngspice(), netlist)
    t_prog, v_prog = sub._simulate_program(netlist)
    np.testing.assert_array_equal(t_prog, t_lib)  # the same ngspice, the same steps
    np.testing.assert_array_equal(v_prog, v_lib)
    run = run_program(netlist.text)
    raw = tmp_path / "cut.raw"
    (tmp_path / "x.cir").write_text(netlist.text)
    import subprocess as sp

    sp.run(["ngspice", "-b", "-r", str(raw), str(tmp_path / "x.cir")], capture_output=True, check=False)
    assert set(read_raw(raw)) == set(run.vectors)
    raw.write_bytes(raw.read_bytes()[:-8])  # a run that stopped while writing
    assert read_raw(raw) == {}
    # a netlist ngspice cannot use: exit status 0, no rows; reported, never read as states
    bad = netlist.text.replace(".tran", "* .tran")
    with pytest.raises(SimulationError, match="ngspice"):
        sub._simulate_program(type(netlist)(**{**netlist.__dict__, "text": bad}))
