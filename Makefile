# LeanVibe: `make run` starts the platform, `make test` runs the tests. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export DJANGO_SETTINGS_MODULE := leanvibe.settings
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint bench migrate fmt clean browser-deps

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: requirements.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(PY) manage.py run_platform

migrate: $(VENV)/.installed-run
	$(PY) manage.py platform_migrate

test: $(VENV)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-logo

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev
	$(PY) -m bench

# Debian's Chromium for the browser tests (skipped with a message when it is missing).
browser-deps:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
