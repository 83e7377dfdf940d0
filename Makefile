# Acuvim console. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)

.PHONY: help venv lint test run

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	touch $@

venv: $(VENV)/.installed ## Create .venv from the lock file (only when the lock changed)

lint: venv ## ruff and mypy --strict
	$(VENV)/bin/ruff check libs services tests bench
	$(VENV)/bin/mypy

test: lint ## Lint, then the whole test suite against real PostgreSQL, NATS and Mosquitto
	$(PY) -m pytest -q

run: venv ## Start the whole console (embedded PostgreSQL/NATS/MQTT where none answers)
	$(PY) -m services.supervisor
