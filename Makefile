# Set-up and entry points. `make demo` and `make test` each install everything they need on a
# fresh Debian machine (system packages, virtual environment, the package with pinned
# dependencies) and then run.
# Python: PYTHON=... if given, else the newest supported interpreter found on PATH (3.13, 3.12,
# 3.11, then python3 if it is one of those). Each version installs with its own pinned
# dependencies, constraints/pyXY.txt (the newest Brian2 release for that Python).
SUPPORTED := import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 14)))
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
            if $$p -c '$(SUPPORTED)' >/dev/null 2>&1; then echo $$p; break; fi; done)
PYVER  := $(shell $(PYTHON) -c 'import sys; print("%d%d" % sys.version_info[:2])' 2>/dev/null)
CONSTRAINTS := constraints/py$(PYVER).txt
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-py$(PYVER)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-packages demo test test-all benchmark netlists clean

setup: system-packages $(STAMP)

# ngspice's shared library (libngspice.so, for PySpice) and the ngspice program (for checking
# exported netlists stand alone). Skipped when both are already present.
system-packages:
	@if [ -e /usr/lib/x86_64-linux-gnu/libngspice.so ] || [ -e /usr/lib/aarch64-linux-gnu/libngspice.so ] || [ -e /usr/lib/libngspice.so ]; then \
	  command -v ngspice >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ngspice; }; \
	else \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libngspice0-dev ngspice; \
	fi

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c '$(SUPPORTED)' 2>/dev/null || { echo "No supported Python found (3.11, 3.12 or 3.13; got '$(PYTHON)'): install one or give PYTHON=/path/to/python3.X" >&2; exit 2; }
	@# A virtual environment of another Python version is replaced, not patched.
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print("%d%d" % sys.version_info[:2])')" != "$(PYVER)" ]; then rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[dev]"
	touch $(STAMP)

demo: setup
	bash scripts/demo.sh runs/demo

# The CI suite: everything except the tests marked slow (which have smaller real versions).
test: setup
	$(BIN)/python -m pytest -n 2 -m "not slow"

test-all: setup
	$(BIN)/python -m pytest -n 2

benchmark: setup
	$(BIN)/python benchmarks/run_all.py

# Regenerate the example SPICE netlists in netlists/ (deterministic; a test checks they are current).
netlists: setup
	$(BIN)/python -m deepcircuit.studies.examples_netlists

clean:
	rm -rf $(VENV) runs .pytest_cache

# Reached only when the chosen Python has no pinned dependency set.
NO_PYTHON = echo "No supported Python found (3.11, 3.12 or 3.13; got '$(PYTHON)', version '$(PYVER)'): install one or give PYTHON=/path/to/python3.X" >&2; exit 2
constraints/py.txt:
	@$(NO_PYTHON)
constraints/py%.txt:
	@$(NO_PYTHON)
