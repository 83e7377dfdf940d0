# Acuvim console. `make help` lists the targets.
SHELL := /bin/bash
# Python 3.11: python3.11 when there is one, else python3 (checked below before use).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)

.DEFAULT_GOAL := help
.PHONY: help venv lint audit test test-faults run demo bench clean browser compose

help: ## List the targets
	@echo "Acuvim console. Targets:"
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'

# The venv is (re)built only when requirements.lock changed: a second `make run` installs nothing.
$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "Python 3.11 is needed: '$(PYTHON)' is $$($(PYTHON) --version 2>&1); set PYTHON=..."; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  echo "could not create $(VENV) (on Debian: apt-get install python3-venv)"; exit 1; }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	@touch $@

venv: $(STAMP) ## Create .venv from requirements.lock (only when the lock changed)

lint: venv ## ruff, mypy --strict and the audit of the lock file
	$(VENV)/bin/ruff check libs services tests bench simulator
	$(VENV)/bin/mypy
	@$(MAKE) --no-print-directory audit

# pip-audit asks PyPI's advisory database about every pin of the lock. Offline (no package
# could be looked up) the audit is skipped with a message instead of failing the lint.
AUDIT := $(VENV)/bin/pip-audit -r requirements.lock --disable-pip --no-deps --progress-spinner off
AUDITED := import json, sys; deps = json.load(open(sys.argv[1]))["dependencies"]; \
	print(sum("skip_reason" not in d for d in deps))
audit: venv ## pip-audit of requirements.lock (known-vulnerable pins fail; skipped offline)
	@report=$$(mktemp); trap 'rm -f $$report' EXIT; \
	$(AUDIT) -f json -o $$report >/dev/null 2>&1; status=$$?; \
	audited=$$($(PY) -c '$(AUDITED)' $$report 2>/dev/null || echo 0); \
	if [ "$$audited" = 0 ]; then \
	  echo "audit skipped: PyPI's advisory database cannot be reached from here (offline?)"; \
	elif [ $$status != 0 ]; then $(AUDIT) 2>/dev/null; exit 1; \
	else echo "audit: $$audited pins of requirements.lock, no known vulnerability"; fi

test: lint browser compose ## Lint, then the whole suite (fault tests included) against real services
	ACUVIM_TEST_FAULTS=1 $(PY) -m pytest -q

# Fault tests start their own NATS, Mosquitto and PostgreSQL (they kill and restart them).
test-faults: venv ## Fault tests: kill -9, broker and database restarts and outages, nothing lost
	ACUVIM_TEST_FAULTS=1 $(PY) -m pytest -q tests/faults

browser: ## Install Debian's chromium for the live page's browser test (as root, when missing)
	@test -x /usr/bin/chromium || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } || echo "chromium not installed: the browser test will be skipped"

compose: ## Install Debian's docker-compose (to validate docker-compose.yml) when no Compose client is here
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose; } || echo "docker-compose not installed: the compose checks will be skipped"

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
