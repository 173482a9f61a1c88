# Liên Thông hub. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 0
export HUB_DATA_DIR ?= $(CURDIR)/var
VENDOR := hub/api/static/vendor
# axe-core runs in the browser tests only: vendored beside them, not served by the hub
AXE := tests/portal/vendor/axe-core
# no install scripts (swagger-ui-dist's dependency would report the install); redoc's peers are in its bundle
NPM_FLAGS := --ignore-scripts --legacy-peer-deps --no-audit --no-fund

.DEFAULT_GOAL := help
.PHONY: help demo test test-fast lint type bench bench-tools serve clean install vendor browser

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) browser ## create .venv and install the hub with its dev tools (and Chromium)

# The browser tests (pytest -m browser) drive Debian's Chromium; installed here when missing (as root)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else echo "Chromium is missing: sudo apt-get install chromium (the browser tests need it)"; fi; }

# The benchmarks' load generator (wrk) and PostgreSQL's client, from Debian's packages when missing
bench-tools:
	@for tool in wrk:wrk psql:postgresql-client; do \
		command -v $${tool%%:*} >/dev/null 2>&1 && continue; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $${tool##*:}; \
		else echo "$${tool%%:*} is missing: sudo apt-get install $${tool##*:} (the benchmarks need it)"; fi; \
	done

demo: $(STAMP) ## generate the demo province, ingest it and serve the hub (PORT: 8000 or a free one)
	$(BIN)/hub demo run --port $(PORT)

test: $(STAMP) browser ## run the whole test suite (integration tests need the local services)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) ## run the tests that need no services
	$(BIN)/python -m pytest -q -m "not integration and not slow"

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

type: $(STAMP) ## mypy strict on hub/
	$(BIN)/mypy

bench: $(STAMP) browser bench-tools ## run every benchmark in bench/ (installs the peers measured against)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

serve: $(STAMP) ## serve the hub on the embedded default (PORT, default 8000)
	$(BIN)/hub serve --port $$( [ "$(PORT)" = 0 ] && echo 8000 || echo $(PORT) )

vendor: ## copy the front-end libraries of package-lock.json (npm ci) into hub/api/static/vendor
	npm ci $(NPM_FLAGS)
	rm -rf $(VENDOR)/swagger-ui $(VENDOR)/redoc
	mkdir -p $(VENDOR)/swagger-ui $(VENDOR)/redoc
	cd node_modules/swagger-ui-dist && cp swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css \
		LICENSE NOTICE package.json $(CURDIR)/$(VENDOR)/swagger-ui/
	cd node_modules/redoc && cp bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt LICENSE \
		package.json $(CURDIR)/$(VENDOR)/redoc/
	rm -rf $(VENDOR)/leaflet $(VENDOR)/uplot $(AXE)
	mkdir -p $(VENDOR)/leaflet/images $(VENDOR)/uplot $(AXE)
	cd node_modules/leaflet && cp dist/leaflet.js dist/leaflet.css LICENSE package.json $(CURDIR)/$(VENDOR)/leaflet/ \
		&& cp dist/images/*.png $(CURDIR)/$(VENDOR)/leaflet/images/
	cd node_modules/uplot && cp dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE package.json \
		$(CURDIR)/$(VENDOR)/uplot/
	cd node_modules/axe-core && cp axe.min.js LICENSE package.json $(CURDIR)/$(AXE)/

clean: ## remove the data directory, caches and .venv
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis $(VENV) *.egg-info
