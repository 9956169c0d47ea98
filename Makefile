# The two commands of the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install lock run test lint schema fuzz fuzz-long bench bench-attachments soak web web-if-possible test-web typed-client test-js clean

# The versions come from requirements.lock (the server with its test and bench extras, with hashes); the project
# itself is installed editable on top, without its dependencies.
# pip's output goes to $(INSTALL_LOG), shown only when the install fails.
INSTALL_LOG := .install.log
$(STAMP): requirements.lock pyproject.toml
	@echo "Installing the Python dependencies into $(VENV) (log: $(INSTALL_LOG))"
	@{ $(PYTHON) -m venv $(VENV) \
		&& $(BIN)/pip install --quiet --upgrade pip \
		&& $(BIN)/pip install --quiet -r requirements.lock \
		&& $(BIN)/pip install --quiet --no-deps -e . ; } > $(INSTALL_LOG) 2>&1 \
		|| { cat $(INSTALL_LOG) >&2; echo "The install failed (its output is above and in $(INSTALL_LOG))." >&2; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

# `make lock` refreshes requirements.lock (from pyproject.toml) and requirements-codegen.lock (from
# requirements-codegen.in) to the newest versions their bounds allow, with uv $(UV_VERSION) installed into .venv
# (`make lock LOCK_UPGRADE=` keeps the locked versions that still fit and only resolves what changed). Then run
# `make test`: its canary, tests/test_compat.py, names the undocumented part of a library that moved.
UV_VERSION := 0.13.9
LOCK_UPGRADE ?= --upgrade
UV_COMPILE = $(BIN)/uv pip compile --quiet $(LOCK_UPGRADE) --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock'
lock:
	test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet 'uv==$(UV_VERSION)'
	$(UV_COMPILE) pyproject.toml --extra test --extra bench -o requirements.lock
	$(UV_COMPILE) requirements-codegen.in -o requirements-codegen.lock

# The whole product: the chat page and offline GraphiQL are built first when Node and npm are here (again only
# when their lock, sources or schema.graphql changed); without them, or if the build fails, one line says so and
# the server starts all the same.
run: $(STAMP)
	@$(MAKE) --no-print-directory web-if-possible
	@$(BIN)/agno-graphql serve

lint: $(STAMP)
	$(BIN)/ruff check agno_graphql tests bench
	$(BIN)/ruff format --check agno_graphql tests bench
	$(BIN)/mypy agno_graphql

test: lint typed-client
	$(BIN)/python -m pytest
	$(MAKE) test-js
	$(MAKE) test-web

schema: $(STAMP)
	$(BIN)/strawberry export-schema agno_graphql.api:schema --output schema.graphql

fuzz: $(STAMP)
	AGNO_GRAPHQL_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest tests/test_fuzz.py -q

# The property tests at length (RELIABILITY.md), other examples than the suite's with SEED=N; at most 30 minutes.
SEED ?= 1
fuzz-long: $(STAMP)
	AGNO_GRAPHQL_FUZZ_SEED=$(SEED) AGNO_GRAPHQL_FUZZ_EXAMPLES=3000 timeout 1800 $(BIN)/python -m pytest tests/test_fuzz.py -q --hypothesis-show-statistics

# The full benchmark (BENCHMARKS.md) against the local MariaDB, in its own database (reused while its seed matches).
BENCH_DATABASE_URL ?= mysql+pymysql://root@127.0.0.1:3306/agql_bench
bench: $(STAMP)
	$(BIN)/python -m bench --database-url '$(BENCH_DATABASE_URL)'

# The server's memory around a 20 MiB upload and a run carrying it (BENCHMARKS.md, "Attachments: server memory"), on
# SQLite in a temporary folder; `python -m bench.attachments --help` for the size, rounds and a MariaDB URL.
bench-attachments: $(STAMP)
	$(BIN)/python -m bench.attachments

# The soak (RELIABILITY.md; not part of CI): SOAK_MINUTES of mixed traffic on two instances over MariaDB (a fresh
# database next to SOAK_DATABASE_URL's, dropped afterwards) and Redis, then the database and resource checks.
SOAK_MINUTES ?= 10
SOAK_DATABASE_URL ?= mysql+pymysql://root@127.0.0.1:3306/agql_soak
SOAK_REDIS_URL ?= redis://127.0.0.1:6379/0
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES) --database-url '$(SOAK_DATABASE_URL)' --redis-url '$(SOAK_REDIS_URL)'

# The example chat page and offline GraphiQL (examples/web-chat): npm ci when the lock changes, then
# codegen, tsc --noEmit and esbuild into examples/web-chat/dist (served at /chat and /graphql).
WEB := examples/web-chat
WEB_STAMP := $(WEB)/node_modules/.installed-stamp
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

WEB_BUILT := $(WEB)/dist/.built-stamp
WEB_SOURCES := $(shell find $(WEB)/src -type f -not -path '*/src/gql/*' 2>/dev/null) \
	$(WEB)/build.mjs $(WEB)/codegen.ts $(WEB)/tsconfig.json schema.graphql
WEB_LOG := .web-build.log

$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund
	touch $(WEB_STAMP)

$(WEB_BUILT): $(WEB_STAMP) $(WEB_SOURCES)
	cd $(WEB) && npm run build
	touch $(WEB_BUILT)

web: $(WEB_BUILT)

web-if-possible:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		echo "Node and npm are not installed: serving without the chat page and offline GraphiQL (GraphiQL then loads from a CDN)."; \
	elif ! $(MAKE) --no-print-directory web > $(WEB_LOG) 2>&1; then \
		echo "Building the chat page and offline GraphiQL failed (see $(WEB_LOG)): serving without them."; \
	fi

# Browser tests: Debian's chromium (apt-get install -y chromium) driven by playwright-core.
test-web: $(STAMP) web
	@command -v chromium >/dev/null || { echo "chromium is missing: apt-get install -y chromium" >&2; exit 1; }
	cd $(WEB) && npm test

# A typed Python client for tests/operations/ (ariadne-codegen), regenerated before every `make test`: an
# operation the schema no longer supports fails here. ariadne-codegen pins an older graphql-core than
# Strawberry's, so it lives in its own virtualenv, installed from requirements-codegen.lock (`make lock`).
CODEGEN_VENV := .venv-codegen
CODEGEN_STAMP := $(CODEGEN_VENV)/.installed-stamp

$(CODEGEN_STAMP): requirements-codegen.lock
	$(PYTHON) -m venv $(CODEGEN_VENV)
	$(CODEGEN_VENV)/bin/pip install --quiet --upgrade pip
	$(CODEGEN_VENV)/bin/pip install --quiet -r requirements-codegen.lock
	touch $(CODEGEN_STAMP)

typed-client: $(CODEGEN_STAMP)
	$(CODEGEN_VENV)/bin/ariadne-codegen client --config tests/typed_client.toml

# The JS client suite (clients/js): Apollo Client, urql, graphql-ws, graphql-sse against real servers.
JS := clients/js
JS_STAMP := $(JS)/node_modules/.installed-stamp

$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund
	touch $(JS_STAMP)

test-js: $(STAMP) $(JS_STAMP)
	cd $(JS) && npm run lint && npm test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis $(CODEGEN_VENV) tests/typed_client $(JS)/node_modules
