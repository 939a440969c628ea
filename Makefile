# Quick start: `make run` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MAIN_SCENARIO ?= scenarios/populations/marketplace_year.yaml

.PHONY: run test fuzz lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/milestone-sim run $(MAIN_SCENARIO)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# A longer fuzz run than the one in `make test`: 2000 fresh random examples (or $MILESTONE_SIM_FUZZ_EXAMPLES),
# with shrinking.
fuzz: $(STAMP)
	MILESTONE_SIM_FUZZ_EXAMPLES=$${MILESTONE_SIM_FUZZ_EXAMPLES:-2000} MILESTONE_SIM_FUZZ_DERANDOMIZE=0 \
		$(BIN)/python -m pytest tests/test_fuzz.py -q --hypothesis-show-statistics

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) out build *.egg-info
