# Two commands from a fresh clone: `make demo` and `make test`.
# Everything installs into .venv; nothing needs root, Docker or apt-get.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.abgate-installed

.PHONY: install demo up test test-busy test-fast lint format bench soak chaos clean promtool

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "abgate needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# The model servers abgate is tested in front of (pyproject's model-servers extra), in a
# venv of their own: they run as separate processes and pin older fastapi/starlette than
# abgate tests with. A platform where they cannot install skips those tests, saying why.
SERVERS       := $(VENV)/model-servers
SERVERS_STAMP := $(SERVERS)/.abgate-installed
$(SERVERS_STAMP): pyproject.toml | $(BIN)/python
	$(PYTHON) -m venv $(SERVERS)
	$(SERVERS)/bin/python -m pip install --quiet --upgrade pip
	$(SERVERS)/bin/python -m pip install --quiet $$($(BIN)/python -c 'import tomllib; \
		print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"] \
		["optional-dependencies"]["model-servers"]))') && touch $@ || \
		echo "the model servers did not install: their tests skip, saying why; make tries again next time"

install: $(STAMP) $(SERVERS_STAMP)

demo: $(STAMP)
	$(BIN)/abgate demo

up: $(STAMP)
	$(BIN)/abgate up

test: $(STAMP) $(SERVERS_STAMP)
	$(BIN)/python -m pytest

# The suite beside two CPU-bound processes, RUNS times in a row (RUNS=3 before calling it done).
RUNS ?= 1
test-busy: $(STAMP) $(SERVERS_STAMP)
	$(BIN)/python -m tests.busy --burners 2 --runs $(RUNS) -- $(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

# Optional: Prometheus's promtool, unpacked from Debian's prometheus package into .venv/bin
# (apt-get download and dpkg-deb -x: no root, nothing installed system-wide). With it,
# tests/deploy/test_monitoring.py also runs `promtool check rules` on deploy/monitoring/.
promtool: $(STAMP)
	rm -rf $(VENV)/.promtool && mkdir $(VENV)/.promtool
	cd $(VENV)/.promtool && apt-get download prometheus && dpkg-deb -x prometheus_*.deb .
	cp $(VENV)/.promtool/usr/bin/promtool $(BIN)/promtool
	rm -rf $(VENV)/.promtool
	$(BIN)/promtool --version

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Needs wrk (and nginx for the comparison row); each part says so and skips without them.
bench: $(STAMP)
	$(BIN)/python -m bench.worker_latency
	$(BIN)/python -m bench.access_log_cost
	$(BIN)/python -m bench.gateway_vs_nginx
	$(BIN)/python -m bench.gateway_vs_nginx --connections 32 --log-rates default --drift on --gateway-workers 2
	$(BIN)/python -m bench.gateway_vs_nginx --connections 32 --log-rates default --drift on \
		--gateway-cmd "$(BIN)/python -m bench.bare_forwarder --port {port} --config {config}"
	$(BIN)/python -m bench.drift_sampling
	$(BIN)/python -m bench.unit_recording
	$(BIN)/python -m bench.shadow_mirroring

# 100,000 requests with feedback on half: zero lost outcomes, no error, flat gateway memory.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

# Traffic with feedback while a worker, Redis (from its AOF) and a gateway replica are
# killed and restarted and configs applied, on a schedule: nothing lost, nothing twice.
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
