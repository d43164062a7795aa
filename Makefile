# pyipsec developer entry points. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: test lint unit fuzz-ci fuzz deps demo bench bench-flood bench-gateway clean

# Creates the virtual environment and installs the package with its test extra.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# System packages the root test tiers need (installed only when missing).
deps:
	bash scripts/install-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest

# The atheris fuzz targets (tests/fuzz/targets, RELIABILITY.md §6), two at a time; a crash input
# lands in tests/corpus/<target>-crash/ and fails the run. CI: about 25 s per target.
FUZZ_CI_SECONDS ?= 25
FUZZ_SECONDS    ?= 600

fuzz-ci: $(STAMP)
	$(BIN)/python scripts/fuzz.py --seconds $(FUZZ_CI_SECONDS) --jobs 2

fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py --seconds $(FUZZ_SECONDS) --jobs 2

test: deps lint unit fuzz-ci

# The main job: a gateway and a client in network namespaces, a tunnel, traffic (root).
demo: deps $(STAMP)
	$(BIN)/python scripts/demo.py

# The data-plane benchmark: pyipsec's ESP against strongSwan's libipsec between namespaces (root).
bench: deps $(STAMP)
	$(BIN)/python bench/bench_dataplane.py $(ARGS)

# The flood benchmark (issue 16): a gateway daemon under a cookie-answering IKE_SA_INIT flood, with
# the issue's targets beside the figures (root; about a minute). Options: ARGS="--rate 1000 --json".
bench-flood: deps $(STAMP)
	$(BIN)/python bench/bench_flood.py $(ARGS)

# The gateway benchmark (issue 13): 1,000 road warriors from bench/loadgen.py on a pyipsec and on a
# strongSwan gateway, one run (root; about 20 minutes). Options: ARGS="--clients 100 --hold 20 --rates 10,50,100".
bench-gateway: deps $(STAMP)
	$(BIN)/python bench/bench_gateway.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .fuzz
