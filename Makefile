# make bench: run the quickstart scenario on the embedded fake mail system.
# make test:  lint (ruff, the import layers of docs/architecture.md), type-check and run the tests.
# Both create .venv and install mailsla into it first (once; again when pyproject.toml changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
RAY_STAMP = $(VENV)/.installed-ray

.PHONY: bench test lint typecheck pytest clean perf ray

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/mailsla run scenarios/quickstart.toml

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The tests in parallel (pytest-xdist, PYTEST_JOBS workers), then the timing-sensitive ones
# (marker "exclusive", listed in tests/conftest.py) one at a time. Exit 5 is "none selected".
PYTEST_JOBS ?= 3
pytest: $(RAY_STAMP)
	$(BIN)/pytest -n $(PYTEST_JOBS) -m "not exclusive" $(PYTEST_ARGS)
	$(BIN)/pytest -p no:xdist -m exclusive $(PYTEST_ARGS) || [ $$? -eq 5 ]

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# make perf: mailsla's own speed and memory against smtp-source, smtp-sink and Postfix
# (needs Debian's postfix package: apt-get install -y postfix).
perf: $(RAY_STAMP)
	$(BIN)/mailsla selftest

# make ray: add Ray to .venv, for runs from many hosts (mailsla run --ray; README "Many hosts").
# make test installs it too: the Ray tests run (locally they would skip without it).
ray: $(RAY_STAMP)

$(RAY_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,ray]'
	touch $(RAY_STAMP)
