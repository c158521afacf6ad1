# LeanVibe: `make run` starts the platform, `make test` runs the tests. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export DJANGO_SETTINGS_MODULE := leanvibe.settings
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint bench migrate fmt clean browser-deps sandbox-deps

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: requirements.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run sandbox-deps
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

# bubblewrap for the agent sandbox (agents/sandbox.py), installed when missing and root. Without
# it the worker refuses agent runs with sandbox_unavailable; it never runs them unsandboxed.
sandbox-deps:
	@command -v bwrap >/dev/null || [ "$$(id -u)" != 0 ] \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
		|| echo "bubblewrap could not be installed: agent runs will be refused (sandbox_unavailable)"
	@command -v bwrap >/dev/null || echo "bubblewrap (bwrap) missing: agent runs will be refused (sandbox_unavailable)"

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
