# The two commands a newcomer needs: `make test` (and, later, `make demo`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint test demo clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Pinned on purpose: any other torch spec downloads a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,demo]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy monitor simulators models

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The newcomer's first command: embedded broker, simulator, small models, live view; Ctrl-C writes the report.
demo: install
	$(BIN)/plantwatch demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
