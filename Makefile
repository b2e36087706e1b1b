# Tailor: `make run` starts the whole app with demo data; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install run worker test lint format migrations-check pytest clean-data

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install Tailor with its dev tools

run: $(STAMP) ## Migrate, load demo data, start web server + Celery worker (Ctrl-C stops both)
	$(BIN)/python scripts/run.py

lint: $(STAMP) ## ruff (lint + format), import contracts, missing migrations
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run

# The suite runs on PostgreSQL and Redis, as in production; override with DATABASE_URL / CELERY_BROKER_URL.
pytest: $(STAMP) ## Only the test suite (PostgreSQL + Redis at their default local addresses)
	DATABASE_URL="$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tailor}" \
	CELERY_BROKER_URL="$${CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}" \
	DATA_DIR="$${DATA_DIR:-$(CURDIR)/var/test-data}" \
	FAST_PASSWORD_HASHER=1 \
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint pytest ## Everything CI runs

format: $(STAMP) ## Fix lint and formatting in place
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean-data: ## Delete the embedded data dir (SQLite database, uploads, broker)
	rm -rf data
