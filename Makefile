# The two commands of the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint schema fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/agno-graphql serve

lint: $(STAMP)
	$(BIN)/ruff check agno_graphql tests
	$(BIN)/ruff format --check agno_graphql tests
	$(BIN)/mypy agno_graphql

test: lint
	$(BIN)/python -m pytest

schema: $(STAMP)
	$(BIN)/strawberry export-schema agno_graphql.api:schema --output schema.graphql

fuzz: $(STAMP)
	AGNO_GRAPHQL_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest tests/test_fuzz.py -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
