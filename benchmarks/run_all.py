"""Run every benchmark script in this folder (bench_*.py), one after the other.

    .venv/bin/python benchmarks/run_all.py [--quick]

Each script prints its own measurements side by side; ``--quick`` is passed to scripts that
accept it (they say what they scaled).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    extra = sys.argv[1:]
    status = 0
    for script in sorted(Path(__file__).parent.glob("bench_*.py")):
        print(f"\n=== {script.name} ===", flush=True)
        status |= subprocess.call([sys.executable, str(script), *extra])
    return status


if __name__ == "__main__":
    sys.exit(main())
