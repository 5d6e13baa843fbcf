# Everything installs itself: a pinned uv bootstraps the virtualenv from uv.lock (hash-checked),
# Maven fetches Apache Kafka's jars into the cache. Second runs reuse both and start in seconds.
PYTHON ?= python3
VENV   := .venv
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
UV_VERSION := 0.13.8
SYNCED := $(VENV)/.synced
LOYALTY := $(VENV)/bin/loyalty
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: help install kafka-jars browser test demo lint format check bench bench-quick bench-core soak clean

help:
	@echo "make demo   - start a broker, create topics, send simulated POS traffic, show a summary"
	@echo "make test   - the whole test suite (starts its own Kafka broker)"
	@echo "make lint   - ruff check, ruff format --check, mypy, bandit (medium and up); cargo fmt, clippy"
	@echo "make check  - lint and test, as CI runs them"
	@echo "make soak   - an hour of traffic with worker restarts, then the audit (bench/soak.py)"
	@echo "make bench  - ours against the limit and naive Faust (make bench-quick: a few minutes)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

# The native replay engine (native/: Rust, PyO3), built by maturin (a locked dev dependency)
# with cargo from crates.io and installed into the virtualenv with uv. Rebuilt when its sources
# change or after a sync (which removes it: it is not in uv.lock). About two minutes the first
# time on two cores; second runs are a stamp check.
NATIVE := $(VENV)/.native
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs)

$(NATIVE): $(SYNCED) $(NATIVE_SOURCES)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(TOOLS))/bin:$$PATH \
	  $(VENV)/bin/maturin develop --uv --release --locked -m native/Cargo.toml
	@touch $@

install: $(SYNCED) $(NATIVE)

kafka-jars: $(SYNCED)
	$(LOYALTY) kafka fetch

# The report's browser test (tests/report/test_browser.py) drives Debian's chromium: installed
# when missing, nothing done when it is there; where there is no apt-get the test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "no apt-get: the report's browser test will be skipped"; fi; }

test: install kafka-jars browser
	$(VENV)/bin/pytest

demo: install kafka-jars
	$(LOYALTY) demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/bandit -r streams -ll -q
	cargo fmt --check --manifest-path native/Cargo.toml
	PYO3_PYTHON=$(abspath $(VENV))/bin/python \
	  cargo clippy --release --locked --manifest-path native/Cargo.toml -- -D warnings

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: lint test

# issue #7: ours against a plain confluent-kafka loop and naive Faust, latency, recovery, size
# (bench/compare.py; the table goes to bench/results/latest.md and README.md's Performance)
bench-quick: install kafka-jars
	$(VENV)/bin/python -m bench.compare --quick

bench: install kafka-jars
	$(VENV)/bin/python -m bench.compare

# the pure core alone: fold and replay rates, state size (bench/core.py)
bench-core: install kafka-jars
	$(VENV)/bin/python -m bench.core

# an hour of steady traffic with a worker killed every 5 minutes, then the audit (not in `test`)
soak: install kafka-jars
	$(VENV)/bin/python -m bench.soak --minutes 60

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache native/target
