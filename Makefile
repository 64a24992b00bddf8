# Two entry points: `make demo` trains CartPole-v1 with the defaults, `make test` runs the whole suite (which
# also builds the documentation site, warnings as errors). `make docs` builds the site into site/, executing
# the notebooks; `make docs-serve` serves it with live reload.
# Both create .venv on first use and reinstall only when pyproject.toml or constraints.txt change.
# The test install includes the [mujoco] extra (the InvertedPendulum-v5 learning test needs it) and the [ray]
# extra (the distributed-rollout and sweep tests start a local Ray).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test lint typecheck unit install install-dev docs docs-serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[dev,mujoco,ray]'
	touch $(VENV)/.installed $@

$(VENV)/.installed-docs: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[docs]'
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

# the site, warnings as errors (a broken link or reference fails), the notebooks executed (.cache/ keeps them
# until they change); no font or script is fetched from the web when a page is read
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# the suite on both cores: each test file runs whole in one of two processes (module fixtures are built once);
# tests/docs/ builds the site (warnings as errors, notebooks not executed) and runs each notebook
test: lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadfile

clean:
	rm -rf $(VENV) build site .cache src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
