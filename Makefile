# The two commands a new user needs:  make run   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test test-unit test-browser check install clean

# pdconnect with its `sandbox` extra, both editable in one pip call: the extra's
# pdconnect-sandbox is then the checkout's sandbox/, never one from an index.
$(STAMP): pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./sandbox -e '.[test,sandbox]'
	touch $(STAMP)

install: $(STAMP)

## Run the service: embedded PostgreSQL, PagerDuty sandbox, a demo tenant's sign-in link printed.
run: $(STAMP)
	$(BIN)/pdconnect serve

## Run the whole suite: lint and types, the tests, then the browser tests in their own run
## (Playwright's sync API and pytest-asyncio do not share one pytest process; the browser run's
## settings are tests/browser/pytest.ini).
test: $(STAMP) check test-unit test-browser

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests --ignore=tests/browser -q

test-browser: $(STAMP)
	@if [ -x "$(CHROMIUM)" ]; then \
		$(BIN)/python -m pytest tests/browser -q; \
	elif [ -n "$$PDCONNECT_REQUIRE_BROWSER" ]; then \
		echo "error: browser tests need Chromium at $(CHROMIUM) (apt-get install chromium)"; exit 1; \
	else \
		echo "SKIPPED browser tests: no Chromium at $(CHROMIUM) (sudo apt-get install chromium)"; \
	fi

check: $(STAMP)
	$(BIN)/ruff check app sandbox tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pdconnect .pytest_cache .mypy_cache .ruff_cache
