# Two entry points (see README): `make demo` and `make test`. Each sets up what it needs
# (Debian packages when run as root, a virtualenv in .venv) and is safe to run again.

VENV ?= .venv
PYTHON ?= python3
# Debian packages the local servers and checks need: PostgreSQL 15 with wal2json, MariaDB,
# and promtool (from prometheus) for the alert-rule tests.
SYSTEM_PACKAGES := postgresql-15 postgresql-15-wal2json mariadb-server prometheus

.PHONY: setup system venv demo test lint clean

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

$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev,chart,bench]'
	@touch $@

demo: setup
	@$(VENV)/bin/worker-sync demo $(DEMO_ARGS)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check actors config tests bench supervisor.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
