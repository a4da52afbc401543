# Two commands on a fresh machine with Python 3.11 and make: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 1

.PHONY: demo test lint bench clean-venv

# torch==2.13.0 is pinned on the command line: it selects the CPU build (no CUDA download).
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "torch==2.13.0" -e ".[all]"
	$(BIN)/pip install -q --no-deps "neuraloperator>=1.0"
	touch $@

# The main driver on 2 MPI ranks (the venv's own mpiexec), then its plots: the paper's
# 16-site long-range Ising chain by the parallel BUG integrator, against exact results.
demo: $(BIN)/.installed
	$(BIN)/mpiexec -n 2 -genv OMP_NUM_THREADS 1 $(BIN)/python -m drivers.spin_chain
	$(BIN)/python -m drivers.spin_chain plot runs/spin_chain.nc

test: $(BIN)/.installed
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/check_array_api.py

bench: $(BIN)/.installed
	$(BIN)/python -m benchmarks.kernels

clean-venv:
	rm -rf $(VENV)
