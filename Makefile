# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo demo-kafka docs test test-fast lint bench clean check-tools kafka-runtime lint-local-servers

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed: install it and run make again.")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ledger demo

demo-kafka: $(STAMP)
	$(BIN)/ledger demo --kafka

# The contract documents generated from the code (docs/events.md tables, docs/schemas/,
# docs/asyncapi.yaml payloads, docs/openapi.json): rerun after changing a record or a route.
docs: $(STAMP)
	$(BIN)/ledger schema --write-docs docs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every test, against a real Kafka broker and a real PostgreSQL server that the
# test fixtures start on 127.0.0.1 and stop (deploy/local/kafka and deploy/local/postgres:
# the Kafka jars come from Maven Central into .cache, PostgreSQL from apt-get when missing).
test: check-tools lint lint-local-servers
	$(BIN)/pytest -q

# One sentence and a failure when Java 17+ (or Maven, while the Kafka jars are not cached)
# is missing, before anything is installed.
check-tools:
	@$(PYTHON) deploy/local/kafka check

# Only fetch the Kafka broker's jars (deploy/kafka-runtime/pom.xml) into .cache.
kafka-runtime:
	$(PYTHON) deploy/local/kafka resolve

# The local server scripts: standard library only, outside the packages `mypy` checks.
lint-local-servers: $(STAMP)
	$(BIN)/ruff check deploy/local/kafka deploy/local/postgres deploy/local/local_servers deploy/compose/make-secrets
	$(BIN)/ruff format --check deploy/local/kafka deploy/local/postgres deploy/local/local_servers deploy/compose/make-secrets
	MYPYPATH=deploy/local $(BIN)/mypy -p local_servers
	MYPYPATH=deploy/local $(BIN)/mypy deploy/local/kafka
	MYPYPATH=deploy/local $(BIN)/mypy deploy/local/postgres
	MYPYPATH=deploy/local $(BIN)/mypy deploy/compose/make-secrets

# Pure logic only: no Java, no PostgreSQL.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m 'not integration and not slow'

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks

clean:
	rm -rf $(VENV) .ledger .cache
