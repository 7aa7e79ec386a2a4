# The single entry point. Every target does its own set-up: a fresh clone
# needs only Python 3.11+ (and npm for `make lint`'s buf).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
GEN    := gen
BUF_VERSION := 1.75.0
BUF    := .tools/node_modules/.bin/buf

PROTOS := $(shell find protos -name '*.proto' | sort)
PY_SRC := $(wildcard services sim tests bench tools)

# Extra arguments for `make run` / `make test`, e.g. make run ARGS="--guests 2000".
ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# --- set-up -----------------------------------------------------------------

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the pinned dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -c 'import sysconfig, pathlib; pathlib.Path(sysconfig.get_paths()["purelib"], "venue-twin-gen.pth").write_text(str(pathlib.Path("$(GEN)").resolve()) + "\n")'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtual environment with pinned dependencies.

# Generated code is rebuilt from protos/ whenever a proto changes; never edit it.
$(GEN)/.stamp: $(PROTOS) tools/genprotos.py $(VENV)/.installed
	$(PY) tools/genprotos.py --out $(GEN)
	touch $@

.PHONY: protos
protos: $(GEN)/.stamp ## Generate Python code and type stubs from protos/.

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

.PHONY: setup
setup: $(VENV)/.installed $(GEN)/.stamp

# --- the two commands --------------------------------------------------------

.PHONY: run
run: setup ## Bring the suite up and play a simulated day against it.
	$(BIN)/venue run $(ARGS)

.PHONY: test
test: setup lint ## Lint, then run every test (unit, service, end-to-end).
	$(BIN)/pytest $(ARGS)

# --- the rest ----------------------------------------------------------------

.PHONY: up
up: setup ## Start the suite alone, for real clients (Ctrl-C stops it).
	$(BIN)/venue up $(ARGS)

.PHONY: lint
lint: setup $(BUF) ## ruff, mypy, buf lint, and generated code up to date.
	$(BIN)/ruff check $(PY_SRC)
	$(BIN)/ruff format --check $(PY_SRC)
	$(BIN)/mypy $(PY_SRC)
	$(BUF) lint
	$(PY) tools/genprotos.py --check $(GEN)

.PHONY: fmt
fmt: setup ## Format and autofix with ruff.
	$(BIN)/ruff format $(PY_SRC)
	$(BIN)/ruff check --fix $(PY_SRC)

.PHONY: bench
bench: setup ## Run the benchmarks; results go to bench/results/.
	$(PY) -m bench $(ARGS)

# The short version runs inside `make test`; this one tries many more inputs.
FUZZ_EXAMPLES ?= 100

.PHONY: fuzz
fuzz: setup ## Fuzz every RPC of the running suite at length; figures to bench/results/.
	VENUE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) VENUE_FUZZ_RESULTS=bench/results/fuzz.json \
	VENUE_HARDENING_RESULTS=bench/results/hardening.json \
	$(BIN)/pytest tests/hardening -q $(ARGS)

.PHONY: dashboards
dashboards: setup ## Regenerate the Grafana dashboards in infra/grafana/dashboards.
	$(PY) -m tools.make_dashboards

.PHONY: secrets
secrets: setup ## Write .secrets/ for docker compose (a master and each service's own secret).
	$(BIN)/venue secrets .secrets

.PHONY: tls
tls: setup ## Write a development CA, service and device certificates to .data/tls (docs/tls.md).
	$(BIN)/venue tls init $(ARGS)

.PHONY: clean
clean: ## Remove the environment, generated code and local data.
	rm -rf $(VENV) .tools $(GEN) .data .pytest_cache .mypy_cache .ruff_cache
