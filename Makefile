# Set-up and entry points. `make demo` and `make test` each install everything they need on a
# fresh Debian machine (system packages, virtual environment, the package with pinned
# dependencies) and then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
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

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
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
	$(BIN)/python -m deepcircuit.examples_netlists

clean:
	rm -rf $(VENV) runs .pytest_cache
