# govshare: the two commands of the quick start are `make demo` and `make test`.
# Everything they need is installed here: a virtualenv from PyPI (pinned in
# pyproject.toml + constraints.txt), front-end assets from the npm registry (pinned in
# package-lock.json, copied into the package), and Debian's Chromium for browser tests.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PG_DEFAULT := postgresql://postgres@127.0.0.1:5432/postgres

# run the suite on PostgreSQL as well when a server answers on 127.0.0.1:5432
export GOVSHARE_TEST_POSTGRES_URL ?= $(shell pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && echo $(PG_DEFAULT))

.PHONY: demo test install assets browser-deps lint typecheck pytest serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(MAKE) --no-print-directory assets

assets:
	npm ci --no-audit --no-fund --loglevel=error
	$(BIN)/python scripts/build_assets.py

browser-deps:
	@if ! dpkg -s chromium fonts-wqy-microhei >/dev/null 2>&1; then \
	  echo "installing Debian's Chromium (and a CJK font) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	fi

demo: install
	$(BIN)/govshare demo

serve: install
	$(BIN)/govshare db upgrade
	$(BIN)/govshare serve

lint:
	$(BIN)/ruff format --check src tests migrations benchmarks scripts
	$(BIN)/ruff check src tests migrations benchmarks scripts

typecheck:
	$(BIN)/mypy src

pytest:
	@if [ -n "$$GOVSHARE_TEST_POSTGRES_URL" ]; then echo "tests on SQLite and PostgreSQL"; \
	  else echo "tests on SQLite only (no PostgreSQL at 127.0.0.1:5432)"; fi
	$(BIN)/pytest -n 2 -q -p no:cacheprovider

test: install browser-deps lint typecheck pytest

clean:
	rm -rf $(VENV) node_modules src/govshare/web/static/vendor var .pytest_cache .mypy_cache .ruff_cache
