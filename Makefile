# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The editable install copies the built labextension into the venv: redo it when it changes.
LAB_SOURCES := $(shell find labextension/src labextension/style labextension/schema \
	labextension/scripts -type f -not -path '*/generated/*' 2>/dev/null) \
	labextension/package.json labextension/package-lock.json labextension/tsconfig.json

.PHONY: demo cluster test install lint typecheck pytest bench clean debs

# After the install, bytecode as a wheel install writes it: a kernel start
# imports all of anode_ext, and with PYTHONDONTWRITEBYTECODE set it would
# compile every module each time.
$(STAMP): pyproject.toml hatch_build.py $(LAB_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m compileall -q anode_ext
	touch $(STAMP)

install: $(STAMP)

# The demo's extras once per install, not a rebuild on every `make demo`.
$(VENV)/.installed-demo: $(STAMP)
	$(PY) -m pip install -q -e '.[demo]'
	touch $@

demo: $(VENV)/.installed-demo
	$(PY) -m anode_ext demo

# JupyterLab replicas on one PostgreSQL ($ANODE_DATABASE_URL or a throwaway one) behind HAProxy.
$(VENV)/.installed-cluster: $(STAMP)
	$(PY) -m pip install -q -e '.[demo,postgres]'
	touch $@

cluster: $(VENV)/.installed-cluster
	$(PY) -m anode_ext cluster

lint: $(STAMP)
	$(VENV)/bin/ruff check anode_ext tests bench
	$(VENV)/bin/ruff format --check anode_ext tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Debian packages the tests use, installed with apt when missing (one update):
# Chromium for browser tests (never a downloaded browser), PostgreSQL 15 and
# HAProxy for the scale-out tests (throwaway servers: anode_ext/pgserver.py).
DEBS := /usr/bin/chromium:chromium /usr/lib/postgresql/15/bin/initdb:postgresql-15 \
	/usr/sbin/haproxy:haproxy
debs:
	@missing=""; for d in $(DEBS); do test -x "$${d%%:*}" || missing="$$missing $${d##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

pytest: $(STAMP) debs
	$(PY) -m pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
