# The README's two commands: `make run` and `make test`. Both build .venv from requirements.lock when it is
# missing or stale (the stamp is older than the lock or pyproject.toml), so a second call installs nothing
# and `make run` works without network once .venv exists.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Telemetry off for every tool the project drives (also set by lstm_lab on import, .telemetry and .dvc/config).
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_USAGE_STATS_ENABLED := 0
export DVC_NO_ANALYTICS := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-fast install lock ui exps clean-venv
.DEFAULT_GOAL := run

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/kedro run --pipeline=forecast

# Two pytest-xdist workers (the machines have 2 cores): most slow tests wait on subprocesses (`kedro run` start-up,
# servers, DVC clones), so two at a time nearly halve the wall time. A test file runs on one worker (its module
# fixtures are built once; tests/conftest.py); the Ray tests share one group. PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),-p no:xdist,-n $(PYTEST_WORKERS) --dist loadgroup)

test: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# Unit tests and in-memory pipeline tests only (no `kedro run` subprocesses, no DVC clones, no Ray sweeps).
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

# DVC experiments side by side: only the parameters that differ between them and the LSTM's test scores
# (`dvc exp show` alone prints every parameter, dependency hash and baseline score: hundreds of columns).
EXPS_DROP := /|State|Executor|_scaled|^(naive|seasonal_naive)\.|^Created
exps:
	$(BIN)/dvc exp show --no-pager --md --only-changed --drop '$(EXPS_DROP)' --precision 4 $(EXPS_ARGS)

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

# Re-resolve the dependency set from pyproject.toml in a scratch venv and write the exact versions.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q -e '.[test]'
	{ echo "# Exact versions of every dependency, installed by 'make' into .venv. Regenerate with 'make lock'."; \
	  echo "# torch is the CPU build (local wheel via pip's find-links); see pyproject.toml."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^lstm_lab'; } > requirements.lock
	rm -rf .lock-venv

clean-venv:
	rm -rf $(VENV)
