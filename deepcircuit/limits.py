"""Size limits on what deepcircuit reads and allocates, in one place.

deepcircuit trusts nothing in a model file, edge list, data file or on the command line (see
``docs/security.md``). Every size a user controls is checked against one of the limits below
*before* anything is allocated, and the error names the limit that was hit, so a hostile or
mistyped input ends in one clear line instead of a ``MemoryError``, a ``RecursionError`` or an
hours-long run. The limits are far above every study of the project (XOR-sized networks of a
few dozen neurons, 10^3-10^4 steps per phase); a caller with a real need can raise them by
assigning to the module attribute (``deepcircuit.limits.MAX_NEURONS = ...``).
"""

from __future__ import annotations

import math

from .errors import LimitExceededError

#: Memory one network of N neurons may take, bytes: its N x N neuron pairs times
#: NETWORK_BYTES_PER_NEURON_PAIR. MAX_NEURONS follows from it.
MAX_NETWORK_MEMORY_BYTES = 4 * 2**30
#: Memory per neuron pair (i, j) of one network, bytes: the larger of what training holds
#: (float64 weights, masks, updates, the dynamics' matrix: 116-141 bytes per pair measured on
#: 784-input layered networks of 1795 and 2795 neurons) and what loading its model file takes
#: (the JSON's numbers as Python objects: 284 bytes per pair measured at N = 1794, complete graph);
#: measured with peak RSS (docs/data.md, "Large data").
NETWORK_BYTES_PER_NEURON_PAIR = 300
#: Most neurons in one network (inputs, bias, hidden and outputs): the largest N whose
#: N x N x NETWORK_BYTES_PER_NEURON_PAIR fits in MAX_NETWORK_MEMORY_BYTES (3783). A 784-1000-10
#: network (MNIST-sized, with a sink) is 1796.
MAX_NEURONS = math.isqrt(MAX_NETWORK_MEMORY_BYTES // NETWORK_BYTES_PER_NEURON_PAIR)
#: Largest model file read, in bytes: a model file takes 27-32 bytes per neuron pair (measured on
#: 1794-neuron layered and complete networks), so 40 per pair lets every network of MAX_NEURONS
#: load again; parsing takes up to ~9 times the file's size in memory (measured: 872 MiB for a
#: 98 MiB file), within MAX_NETWORK_MEMORY_BYTES.
MAX_MODEL_FILE_BYTES = max(64 * 2**20, 40 * MAX_NEURONS ** 2)
#: Largest edge-list file read by ``train --topology FILE``, in bytes.
MAX_EDGE_FILE_BYTES = 16 * 2**20
#: Deepest nesting of JSON arrays/objects in a model file (a valid one nests 4 deep).
MAX_JSON_DEPTH = 32
#: Most decimal digits of an integer in a model file (seeds go up to 2**63 - 1, 19 digits; Python
#: refuses more than 4300 anyway, with a traceback).
MAX_INT_DIGITS = 20
#: Most hidden layers.
MAX_LAYERS = 256
#: Most steps of one phase (free or nudged).
MAX_PHASE_STEPS = 10_000_000
#: Most training epochs.
MAX_EPOCHS = 10_000_000
#: Most seeds (networks) of one run.
MAX_SEEDS = 100_000
#: Largest state array a run may allocate: networks x presentations x steps x neurons x 8 bytes.
MAX_STATE_BYTES = 4 * 2**30
#: Memory that reading and splitting one data file may take (process peak above its start), bytes.
#: The data limits below follow from it; measured figures: docs/data.md ("Large data").
MAX_DATA_MEMORY_BYTES = 8 * 2**30
#: Peak memory of loading a data set per byte of its float64 feature matrix (rows x features x
#: 8 bytes): the file's columns, the float64 matrix, the train/test inputs and the scaler's
#: work. Measured 3.7 (CSV) and 2.6 (NPZ) on 70 000 x 784 (benchmarks/bench_large_data.py).
DATA_MEMORY_PER_FEATURE_BYTE = 5
#: Largest float64 feature matrix (rows x features x 8 bytes) a data file may give: checked
#: before the matrix is allocated. 70 000 x 784 (MNIST) is 439 MB.
MAX_DATA_BYTES = MAX_DATA_MEMORY_BYTES // DATA_MEMORY_PER_FEATURE_BYTE
#: Largest data file read, bytes (for .npz: also each array uncompressed). A CSV cell takes at
#: least 2 bytes ("0,") and becomes 8 bytes of float64 plus its text (4 bytes of offset and its
#: characters) while it is read, so a CSV file of this size stays within MAX_DATA_MEMORY_BYTES.
MAX_DATA_FILE_BYTES = MAX_DATA_MEMORY_BYTES // 12
#: Most samples (rows), features (columns besides the label; one-hot columns count) and classes.
MAX_DATA_ROWS = 200_000
MAX_DATA_FEATURES = 4096
MAX_CLASSES = 100
#: Most distinct values of a text feature column that is one-hot encoded (one input per value);
#: a text column with more is refused (it is likely an identifier or free text).
MAX_LEVELS = 20
#: Longest class name or text level read from a data file, characters.
MAX_LABEL_TEXT = 100
#: Smallest netlist time step dt * tau, seconds: ngspice fails ("Timestep too small") near 1e-306 s
#: and integrates fine at 1e-46 s (measured with ngspice 42 on an exported XOR netlist).
MIN_NETLIST_STEP_SECONDS = 1e-30
#: Allowed circuit scales (volts, farads, siemens). Exported netlists are tested in plain ngspice
#: at V_scale 0.1 to 1000 V (tests/test_runtime_numerics.py); outside that range nothing is known
#: to work, and 1e308 V still "ran" while printing garbage, so it is refused.
V_SCALE_RANGE = (0.1, 1000.0)
CAPACITANCE_RANGE = (1e-18, 1e-3)
TRANSCONDUCTANCE_RANGE = (1e-12, 1.0)
#: Longest piece of user text (file name, task name, ...) copied into a netlist comment.
MAX_NETLIST_TEXT = 200


def _mb(n: float) -> str:
    return f"{n / 2**20:.4g} MiB" if n < 2**30 else f"{n / 2**30:.4g} GiB"


def check_limit(what: str, value: int, limit: str) -> int:
    """Return ``value`` if it is at most the limit called ``limit`` in this module; else raise
    :class:`~deepcircuit.errors.LimitExceededError` naming both."""
    cap = globals()[limit]
    if value > cap:
        why = ""
        if limit == "MAX_NEURONS":
            why = (f": a network of {value} neurons needs about {_mb(value ** 2 * NETWORK_BYTES_PER_NEURON_PAIR)} "
                   f"({value} x {value} neuron pairs x {NETWORK_BYTES_PER_NEURON_PAIR} bytes to train it and load "
                   f"its model file), above MAX_NETWORK_MEMORY_BYTES = {_mb(MAX_NETWORK_MEMORY_BYTES)}")
        raise LimitExceededError(
            f"{what} is {value}, above the limit {limit} = {cap} (deepcircuit.limits){why}; "
            "see docs/security.md.")
    return value


def check_state_size(n_networks: int, n_presentations: int, steps: int, n_neurons: int) -> int:
    """Check that the states ``(networks, presentations, steps + 1, neurons)`` and the weights
    ``(networks, neurons, neurons)`` of a run, as float64, fit in :data:`MAX_STATE_BYTES`; return
    their size in bytes."""
    S, P, T, N = int(n_networks), int(n_presentations), int(steps) + 1, int(n_neurons)
    nbytes = 8 * S * (P * T * N + N * N)
    if nbytes > MAX_STATE_BYTES:
        raise LimitExceededError(
            f"The states and weights of this run need {_mb(nbytes)} ({S} network(s) x ({P} presentation(s) x "
            f"{T} steps x {N} neurons + {N} x {N} weights) x 8 bytes), above the limit MAX_STATE_BYTES = "
            f"{_mb(MAX_STATE_BYTES)} (deepcircuit.limits); use fewer steps, seeds or neurons.")
    return nbytes
