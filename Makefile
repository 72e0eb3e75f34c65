# The README's two commands: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable . --group dev
	touch $@

demo: $(STAMP)
	$(BIN)/python -m example_project.demo $(DEMO_ARGS)

# Two passes: everything that needs no service, on SQLite; then the integration tests
# (Redis, a real worker, PostgreSQL, S3 on moto) and the browser tests (Chromium) on
# PostgreSQL when it is running.
test: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not browser" $(PYTEST_ARGS)
	NEURALDRAFT_TEST_DATABASE=postgresql $(BIN)/python -m pytest -m "integration or browser" $(PYTEST_ARGS)

# Style, the import contracts of docs/architecture.rst, and types (configured in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/sphinx-build -W -q -b html docs docs/_build/html

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	@for script in bench/[!_]*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
