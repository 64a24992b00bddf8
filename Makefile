# Two entry points: `make demo` trains CartPole-v1 with the defaults, `make test` runs the whole suite.
# Both create .venv on first use and reinstall only when pyproject.toml or constraints.txt change.
# The test install includes the [mujoco] extra (the InvertedPendulum-v5 learning test needs it) and the [ray]
# extra (the distributed-rollout and sweep tests start a local Ray).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test lint typecheck unit install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[dev,mujoco,ray]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/reinforce train CartPole-v1

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# the suite on both cores: each test file runs whole in one of two processes (module fixtures are built once)
test: lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadfile

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
