# The two commands a new user needs:  make run   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.test-installed-stamp
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test test-unit test-browser check install clean

# Serving needs pdconnect and its `sandbox` extra, both editable in one pip call: the extra's
# pdconnect-sandbox is then the checkout's sandbox/, never one from an index. The tests' and
# linters' toolchain is larger and only `make test` installs it, so `make run` starts sooner.
$(STAMP): pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ./sandbox -e '.[sandbox]'
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ./sandbox -e '.[test,sandbox]'
	touch $(TEST_STAMP)

install: $(TEST_STAMP)

## Run the service: embedded PostgreSQL, PagerDuty sandbox, a demo sign-in link printed.
## A line per request is noise in a terminal: PDCONNECT_ACCESS_LOG=on brings it back.
run: $(STAMP)
	PDCONNECT_ACCESS_LOG=$${PDCONNECT_ACCESS_LOG:-off} $(BIN)/pdconnect serve

## Run the whole suite: lint and types, the tests, then the browser tests in their own run
## (Playwright's sync API and pytest-asyncio do not share one pytest process; the browser run's
## settings are tests/browser/pytest.ini).
test: $(TEST_STAMP) check test-unit test-browser

test-unit: $(TEST_STAMP)
	$(BIN)/python -m pytest tests --ignore=tests/browser -q

test-browser: $(TEST_STAMP)
	@if [ -x "$(CHROMIUM)" ]; then \
		$(BIN)/python -m pytest tests/browser -q; \
	elif [ -n "$$PDCONNECT_REQUIRE_BROWSER" ]; then \
		echo "error: browser tests need Chromium at $(CHROMIUM) (apt-get install chromium)"; exit 1; \
	else \
		echo "SKIPPED browser tests: no Chromium at $(CHROMIUM) (sudo apt-get install chromium)"; \
	fi

check: $(TEST_STAMP)
	$(BIN)/ruff check app sandbox tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pdconnect .pytest_cache .mypy_cache .ruff_cache
