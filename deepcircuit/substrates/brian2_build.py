"""Building, caching and running Brian2's C++ standalone programs (the ``cpp_standalone`` target).

Every compiled program of the Brian2 substrates (the rate phase and training programs of
:mod:`~deepcircuit.substrates.brian2_standalone`, the spiking programs of
:mod:`~deepcircuit.substrates.brian2_spiking` and
:mod:`~deepcircuit.substrates.brian2_spiking_training`) is built by :func:`build_standalone` in
a folder under :func:`cache_root` named by a hash of its structure, :func:`code_version` and
:func:`compile_args`, and run by :func:`run_standalone` with new values as Brian2 run
arguments. The generated code gets two patches: the step clock read once per run
(:func:`backport_step_timing`) and a run-time seed (:func:`seed_from_environment`).

Compiler flags: Brian2's defaults without ``-ffast-math`` and with ``-ffp-contract=off``, so the
program rounds like numpy and the ODE substrate (no reassociation, no fused multiply-add).
"""

from __future__ import annotations

import contextlib
import functools
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ..atomic_files import write_atomic
from ..errors import SimulationError, SubstrateUnavailableError
from .brian2_common import brian2_target, over_budget

#: Environment variable naming the folder for the compiled programs (overrides the default).
CACHE_ENV = "DEEPCIRCUIT_BRIAN2_CACHE"


def cache_root() -> Path:
    """Folder of the compiled Brian2 programs.

    ``$DEEPCIRCUIT_BRIAN2_CACHE`` if set, else ``$XDG_CACHE_HOME/deepcircuit/brian2``, else
    ``~/.cache/deepcircuit/brian2``. One sub-folder per program structure.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deepcircuit" / "brian2"


#: Environment variable naming the folder for each run's temporary argument and result files.
RUN_ENV = "DEEPCIRCUIT_BRIAN2_RUN_DIR"
#: A memory-backed folder is used for the run files only while it has this much room.
RUN_DIR_MIN_FREE = 1 << 30


def run_folder(program: Path) -> Path:
    """Where a run of ``program`` keeps its argument and result files (a temporary sub-folder).

    ``$DEEPCIRCUIT_BRIAN2_RUN_DIR`` if set; else ``/dev/shm`` where it is a writable folder with
    at least :data:`RUN_DIR_MIN_FREE` bytes free (memory-backed: creating and removing the
    files costs a fraction of a disk's, 12-15 ms less per run of an XOR program here); else
    the program folder itself.
    """
    env = os.environ.get(RUN_ENV)
    if env:
        return Path(env).expanduser()
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
        if shm.is_dir() and os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize >= RUN_DIR_MIN_FREE:
            return shm
    except OSError:
        pass
    return program


def compiler_available() -> bool:
    """Whether Brian2's standalone build can work here (``make`` and a C++ compiler on PATH)."""
    cxx = os.environ.get("CXX", "g++")
    return shutil.which("make") is not None and (shutil.which(cxx) is not None or shutil.which("c++") is not None)


def code_version() -> str:
    """Hash of the modules that generate the programs (every ``brian2_*.py`` of the substrates):
    a program built by other code is not reused."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("brian2_*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def compile_args(b2) -> list[str]:
    """Brian2's default gcc flags minus fast-math, plus no FMA contraction (exact rounding)."""
    default = list(b2.prefs["codegen.cpp.extra_compile_args_gcc"])
    out = [a for a in default if a not in ("-ffast-math", "-fno-finite-math-only")]
    return out + ["-ffp-contract=off"]


#: The two lines with which Brian2 2.9's ``Network::run`` (``network.cpp``, no OpenMP, no
#: ``maximum_run_time``) reads the process CPU clock at the end of every time step.
_STEP_CLOCK = ("        current = std::clock();\n"
               "        elapsed_realtime = (double)(current - start)/(1 * CLOCKS_PER_SEC);\n")
_LOOP_END = "\n    }\n    Network::_globally_running = false;\n"


def backport_step_timing(directory: Path) -> bool:
    """Read the clock once after the run instead of once per time step (Brian2 < 2.10).

    ``std::clock()`` is a system call (CLOCK_PROCESS_CPUTIME_ID has no vDSO fast path): on this
    machine about 0.9 us, more than a whole step of a small network, so Brian2 2.9's
    ``Network::run`` spends about half its time reading the clock. Brian2 2.10 reads it only
    when a ``maximum_run_time`` needs it (brian-team/brian2 PR #1718); this makes the same
    change to the generated ``network.cpp`` of older versions (the run's total time,
    ``_last_run_time``, is still measured). Returns whether it changed the file; a file
    without Brian2 2.9's exact lines (newer Brian2, OpenMP, a maximum run time) is left as is.
    """
    path = Path(directory) / "network.cpp"
    try:
        text = path.read_text()
    except OSError:
        return False
    start = text.find(_STEP_CLOCK)
    if start < 0 or text.count(_STEP_CLOCK) != 1 or "maximum_run_time" in text:
        return False
    end = text.find(_LOOP_END, start)
    if end < 0 or text[start + len(_STEP_CLOCK):end].strip():
        return False  # something else follows the clock read inside the loop: not 2.9's loop
    new = (text[:start] + text[start + len(_STEP_CLOCK):end] + "\n    }\n"
           + _STEP_CLOCK.replace("        ", "    ") + text[end + len("\n    }\n"):])
    path.write_text(new)
    return True


#: Environment variable from which a compiled program seeds its random generators (see
#: :func:`seed_from_environment`); set per run by :func:`run_standalone`.
SEED_ENV = "DEEPCIRCUIT_BRIAN2_SEED"
_BRIAN_START = "\tbrian_start();\n"
_SEED_CODE = (f"\t// deepcircuit: seed the random generators from ${SEED_ENV} when it is set\n"
              f"\tif (const char* _dc_seed = std::getenv(\"{SEED_ENV}\"))\n"
              "\t\tfor (size_t _i = 0; _i < brian::_random_generators.size(); _i++)\n"
              "\t\t\tbrian::_random_generators[_i].seed(std::strtoul(_dc_seed, NULL, 10) + _i);\n")


def seed_from_environment(directory: Path) -> bool:
    """Let the generated program take its random seed at run time, from ``$DEEPCIRCUIT_BRIAN2_SEED``.

    Brian2's ``seed(s)`` writes ``s`` into the generated ``main.cpp``, so a program built once
    and re-run with new values would draw the same numbers every run (a fixed ``s``) or
    unreproducible ones (``seed()``, from ``std::random_device``). This seeds every generator
    right after ``brian_start()`` (before the first ``rand()``) from the environment variable
    when it is set, as Brian2's own ``seed(s)`` does (generator ``i`` gets ``s + i``); unset, the
    program keeps Brian2's unseeded generators. Returns whether ``main.cpp`` now has the code
    (Brian2 2.9 to 2.11 generate the line it follows).
    """
    path = Path(directory) / "main.cpp"
    try:
        text = path.read_text()
    except OSError:
        return False
    if _SEED_CODE in text:
        return True
    try:
        generators = "_random_generators" in (Path(directory) / "objects.h").read_text()
    except OSError:
        generators = False
    if text.count(_BRIAN_START) != 1 or not generators:
        return False
    path.write_text(text.replace(_BRIAN_START, _BRIAN_START + _SEED_CODE))
    return True


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path/.lock`` (two processes must not build one folder at once)."""
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_standalone(b2, directory: Path, make) -> tuple[dict, dict, float]:
    """Build one standalone program in ``directory``; return how to run it and read it.

    ``make(device)`` creates the Brian2 objects (with the cpp_standalone device active), calls
    ``device.apply_run_args()`` where run arguments take effect, runs the network, and returns
    ``(result variables {name: Variable}, run-argument targets {key: (owner, variable, dtype)})``.
    Returns ``(files {name: (file name, dtype)}, arguments {key: (owner.variable, dtype)},
    seconds)``. The previous Brian2 device is restored afterwards, whatever happens.
    """
    from brian2.devices.device import reset_device

    t0 = time.perf_counter()
    manifest = directory / "deepcircuit-program.json"
    with _locked(directory), brian2_target(b2, b2.prefs["codegen.target"]):
        # Built before (same structure hash, Brian2 version and flags): no code generation at all.
        if manifest.exists() and (directory / "main").exists():
            try:
                m = json.loads(manifest.read_text())
                files = {k: (f, np.dtype(d)) for k, (f, d) in m["files"].items()}
                names = {k: (n, np.dtype(d)) for k, (n, d) in m["args"].items()}
                return files, names, time.perf_counter() - t0
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable: build again
        old_args = b2.prefs["codegen.cpp.extra_compile_args_gcc"]
        b2.prefs["codegen.cpp.extra_compile_args_gcc"] = compile_args(b2)
        b2.set_device("cpp_standalone", build_on_run=False)
        device = b2.get_device()
        try:
            results, targets = make(device)
            # Brian2 rewrites only files whose text changed, so in a folder built before `make`
            # finds the compiled objects up to date.
            device.build(directory=str(directory), compile=False, run=False, with_output=False)
            backport_step_timing(directory)
            seedable = seed_from_environment(directory)
            # Compiled here rather than by Brian2 (which uses os.system, during which this process
            # ignores SIGINT): a Ctrl-C stops the build as a KeyboardInterrupt.
            make = [b2.prefs["devices.cpp_standalone.make_cmd_unix"],
                    *b2.prefs["devices.cpp_standalone.extra_make_args_unix"]]
            proc = subprocess.run(make, cwd=directory, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"make failed (exit {proc.returncode}): "
                                   f"{(proc.stderr or proc.stdout).strip()[-800:]}")
            files = {name: (device.get_array_filename(var), np.dtype(var.dtype)) for name, var in results.items()}
            names = {k: (f"{obj.name}.{var}", np.dtype(dtype)) for k, (obj, var, dtype) in targets.items()}
            write_atomic(manifest, json.dumps({
                "files": {k: [f, d.str] for k, (f, d) in files.items()},
                "args": {k: [n, d.str] for k, (n, d) in names.items()}, "seedable": seedable}, indent=1))
        except Exception as exc:
            raise SubstrateUnavailableError(
                f"Brian2's cpp_standalone build failed in {directory} ({type(exc).__name__}: {exc}). "
                f"It needs make and a C++ compiler (apt-get install build-essential); use "
                f"--brian2-target numpy, which works everywhere.") from exc
        finally:
            b2.prefs["codegen.cpp.extra_compile_args_gcc"] = old_args
            device.reinit()
            reset_device()
    return files, names, time.perf_counter() - t0


@functools.lru_cache(maxsize=None)
def _seedable(directory: str) -> bool:
    """Whether the built program in ``directory`` takes its seed from :data:`SEED_ENV` (a built
    folder never changes: its name holds the structure and code version)."""
    try:
        return SEED_ENV in (Path(directory) / "main.cpp").read_text()
    except OSError:
        return False


def run_standalone(directory: Path, arg_names: dict, files: dict, values: dict,
                   extra: dict | None = None, scalars: tuple = (), max_seconds: float | None = None,
                   seed: int | None = None) -> dict:
    """Run a built program once: ``values`` {key: array or scalar} become run arguments,
    ``extra`` {command-line name: array} too (e.g. a TimedArray's ``name.values``); returns the
    result arrays {name: 1-d array}. Files live in a temporary folder (in :func:`run_folder`)
    removed afterwards. A run still going after ``max_seconds`` (wall time; None = no limit) is
    killed and reported as a :class:`SimulationError`. ``seed`` (an int below 2**32) seeds the
    program's random generators (see :func:`seed_from_environment`); None leaves them unseeded."""
    env = None
    if seed is not None:
        if not _seedable(str(directory)):
            raise SubstrateUnavailableError(
                f"The compiled Brian2 program {directory / 'main'} cannot take a seed (this Brian2 "
                f"version generates a main.cpp deepcircuit does not know); use seed=None.")
        env = dict(os.environ, **{SEED_ENV: str(int(seed))})
    with tempfile.TemporaryDirectory(prefix="deepcircuit-brian2-run-", dir=run_folder(directory)) as tmp:
        args = ["--results_dir", os.path.join(tmp, "")]
        items = [(arg_names[k][0], np.asarray(v, dtype=arg_names[k][1]).ravel(), k) for k, v in values.items()]
        items += [(name, np.asarray(v, dtype=float).ravel(), name) for name, v in (extra or {}).items()]
        for name, arr, label in items:
            if label in scalars:  # a shared variable: its value on the command line
                args.append(f"{name}={float(arr[0])!r}")
            else:
                path = os.path.join(tmp, f"{label}.dat")
                arr.tofile(path)
                args.append(f"{name}={path}")
        try:
            proc = subprocess.run([str(directory / "main")] + args, cwd=directory, capture_output=True,
                                  text=True, timeout=max_seconds, env=env)
        except subprocess.TimeoutExpired:  # subprocess.run has killed the program
            raise over_budget(f"The compiled Brian2 program {directory / 'main'}", max_seconds) from None
        if proc.returncode != 0:
            raise SimulationError(f"The compiled Brian2 program {directory / 'main'} failed "
                                  f"(exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return {key: np.fromfile(os.path.join(tmp, fname), dtype=dtype) for key, (fname, dtype) in files.items()}

