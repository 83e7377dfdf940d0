# Acuvim console. `make help` lists the targets.
SHELL := /bin/bash
# Python 3.11: python3.11 when there is one, else python3 (checked below before use).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)

.DEFAULT_GOAL := help
.PHONY: help venv lint test run demo bench clean

help: ## List the targets
	@echo "Acuvim console. Targets:"
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-8s %s\n", $$1, $$2}'

# The venv is (re)built only when requirements.lock changed: a second `make run` installs nothing.
$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "Python 3.11 is needed: '$(PYTHON)' is $$($(PYTHON) --version 2>&1); set PYTHON=..."; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  echo "could not create $(VENV) (on Debian: apt-get install python3-venv)"; exit 1; }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	@touch $@

venv: $(STAMP) ## Create .venv from requirements.lock (only when the lock changed)

lint: venv ## ruff and mypy --strict
	$(VENV)/bin/ruff check libs services tests bench simulator
	$(VENV)/bin/mypy

test: lint ## Lint, then the whole test suite against real PostgreSQL, NATS and Mosquitto
	$(PY) -m pytest -q

run: venv ## Start the whole console (embedded PostgreSQL/NATS/MQTT where none answers); Ctrl-C stops it
	$(PY) -m services.supervisor

# The console gets its own session: Ctrl-C reaches the simulator only, then the trap stops the
# console with one SIGTERM (a second signal would make the supervisor kill everything at once).
demo: venv ## Start the console plus a simulated fleet (DEMO_DEVICES=50); Ctrl-C stops both
	@setsid $(PY) -m services.supervisor & console=$$!; \
	trap 'kill -TERM $$console 2>/dev/null; wait $$console' EXIT; \
	sleep 3; \
	$(PY) -m simulator --devices $${DEMO_DEVICES:-50} --seed $${DEMO_SEED:-1} \
	  --telemetry-interval-s $${DEMO_TELEMETRY_INTERVAL_S:-10} \
	  --heartbeat-interval-s $${DEMO_HEARTBEAT_INTERVAL_S:-30} --fail-ota-devices 1

bench: venv ## Run every benchmark in bench/ (each prints its figures)
	@shopt -s nullglob; benches=(bench/*.py); status=0; \
	for b in "$${benches[@]}"; do \
	  [[ $$(basename $$b) == __init__.py ]] && continue; \
	  echo "== $$b"; $(PY) $$b || status=1; \
	done; exit $$status

clean: ## Remove .data and caches (keeps .venv)
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
