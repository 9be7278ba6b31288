# Two commands do all set-up: `make demo` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
SERVE ?= 1
OUT ?= out/typhoon
HOST ?= 127.0.0.1
PORT ?= 5000
CATALOG := app/translations/zh_Hans_CN/LC_MESSAGES/messages

.PHONY: install demo test lint messages serve migrate-check

# Installs once; a second run finds the stamp newer than requirements.txt and does nothing.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -r requirements.txt
	touch $@

$(CATALOG).mo: $(CATALOG).po $(VENV)/.installed
	$(BIN)/pybabel compile -d app/translations -D messages

install: $(VENV)/.installed $(CATALOG).mo

demo: install
	$(FLASK) db upgrade
	$(FLASK) fixtures load
	$(FLASK) drill run fixtures/drills/typhoon.yaml --out $(OUT)
ifneq ($(SERVE),0)
	@echo "Serving the command centre on http://$(HOST):$(PORT) (Ctrl-C stops it)"
	$(FLASK) run --host $(HOST) --port $(PORT)
endif

serve: install
	$(FLASK) db upgrade
	$(FLASK) run --host $(HOST) --port $(PORT)

# The suite runs in TEST_WORKERS processes (pytest-xdist; each has its own databases).
TEST_WORKERS ?= auto
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# Page text: gather the strings to translate into the zh-CN catalog (then fill in msgstr).
messages: install
	$(BIN)/pybabel extract -k lazy_gettext -F babel.cfg -o $(VENV)/messages.pot .
	$(BIN)/pybabel update -i $(VENV)/messages.pot -d app/translations -D messages --no-fuzzy-matching

# Style: ruff's lint rules and formatter, configured in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
