# Two entry points (see README): `make demo` and `make test`. Each sets up what it needs
# (Debian packages when run as root, a virtualenv in .venv) and is safe to run again.

VENV ?= .venv
LOCK := requirements.lock
PYTHON ?= python3
# Debian packages the local servers and checks need: PostgreSQL 15 with wal2json, MariaDB,
# and promtool (from prometheus) for the alert-rule tests.
SYSTEM_PACKAGES := postgresql-15 postgresql-15-wal2json mariadb-server prometheus

.PHONY: setup system venv lock demo test lint clean

setup: system venv

system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "missing Debian packages:$$missing"; echo "install them with: sudo apt-get install -y$$missing"; exit 1; \
	fi; \
	echo "installing Debian packages:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

venv: $(VENV)/.installed

# Every Python package comes at the version requirements.lock names (`make lock` refreshes it), so two
# installs a day apart are the same program. The extras a developer needs: dev (tests, lint, contracts,
# types), chart (offline Helm validation), bench (plots), dashboard (Ray's dashboard and job server:
# `ray job submit`, actor health in the browser).
$(VENV)/.installed: pyproject.toml $(LOCK)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -c $(LOCK) -e '.[dev,chart,bench,dashboard]'
	@touch $@

# Re-resolves every dependency of every extra for Python 3.11 on Linux x86_64 and writes the lock.
# Review the diff, run `make test`, commit both files.
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --quiet --upgrade --extra dev --extra chart --extra bench \
	  --extra dashboard --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o $(LOCK)

demo: setup
	@$(VENV)/bin/worker-sync demo $(DEMO_ARGS)

# Lint, the layer contracts ([tool.importlinter] in pyproject.toml), the type checker, then the suite.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check actors config tests bench supervisor.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
