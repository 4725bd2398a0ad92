# pg_follower_py: PGXS build of the extension, plus the project's entry points.
#   make install   install the extension and its server-side Python
#   make demo      bootstrap, then run the seed walkthrough on throwaway clusters
#   make test      bootstrap, then lint, type-check and run the whole test suite

EXTENSION_NAME = pg_follower_py
EXTVERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" extension/$(EXTENSION_NAME).control)
SQL_SOURCES := $(sort $(wildcard sql/*.sql))
INSTALL_SQL = extension/$(EXTENSION_NAME)--$(EXTVERSION).sql
# Earlier releases' install scripts (frozen) and the upgrade scripts between
# releases, committed in extension/sql/ and built like the current one.
VERSION_SOURCES := $(wildcard extension/sql/$(EXTENSION_NAME)--*.sql)
VERSION_SQL := $(patsubst extension/sql/%,extension/%,$(VERSION_SOURCES))

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
ifeq ($(PGXS),)
$(error pg_config not found: install postgresql-server-dev-15 or set PG_CONFIG=/path/to/pg_config)
endif
PG_MAJOR := $(shell $(PG_CONFIG) --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')
ifeq ($(shell test $(PG_MAJOR) -ge 15 && echo ok),)
$(error pg_follower_py needs PostgreSQL 15 or newer; $(PG_CONFIG) is for $(PG_MAJOR))
endif

MODULEDIR = extension
DATA = extension/$(EXTENSION_NAME).control
DATA_built = $(INSTALL_SQL) $(VERSION_SQL)
EXTRA_CLEAN = $(INSTALL_SQL) $(VERSION_SQL)

include $(PGXS)

# Server-side Python (our package and what the launched worker needs) lives
# under the share directory, byte-compiled (the worker starts faster). The
# worker gets psycopg's C implementation (psycopg-binary, with its own libpq):
# the pure-Python one costs microseconds a row.
SERVER_PYDIR = $(datadir)/$(EXTENSION_NAME)/python
VENV ?= $(CURDIR)/.venv
PYTHON ?= $(VENV)/bin/python
# The worker's psycopg, with its C implementation (the pure-Python libpq
# binding costs the stream reader and the applier several microseconds a row).
PSYCOPG_VERSION = $(shell $(PYTHON) -c 'import psycopg; print(psycopg.__version__)')

$(INSTALL_SQL): $(SQL_SOURCES) extension/$(EXTENSION_NAME).control
	cat $(SQL_SOURCES) | sed -e 's|@PYDIR@|$(SERVER_PYDIR)|g' > $@

extension/%.sql: extension/sql/%.sql
	sed -e 's|@PYDIR@|$(SERVER_PYDIR)|g' $< > $@

install: install-python
.PHONY: install-python
install-python:
	@test -n '$(PSYCOPG_VERSION)' || { echo "make install: $(PYTHON) cannot import psycopg; pass PYTHON=<the virtualenv's python> (scripts/bootstrap.sh makes .venv)" >&2; exit 1; }
	rm -rf '$(DESTDIR)$(SERVER_PYDIR)' build  # setuptools' build/ keeps moved modules
	$(PYTHON) -m pip install --quiet --no-deps --root-user-action=ignore \
		--disable-pip-version-check --target '$(DESTDIR)$(SERVER_PYDIR)' \
		. "psycopg==$(PSYCOPG_VERSION)" "psycopg-binary==$(PSYCOPG_VERSION)" \
		'typing-extensions>=4.6' 'setproctitle>=1.3' 'prometheus-client>=0.20'
	chmod -R a+rX '$(DESTDIR)$(SERVER_PYDIR)'

.PHONY: bootstrap demo test lint check
bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/pg-follower demo

lint:
	$(VENV)/bin/ruff check python tests examples
	$(VENV)/bin/ruff format --check python tests examples
	$(VENV)/bin/mypy

test: bootstrap lint
	$(VENV)/bin/pytest -ra -n 2 --dist loadfile $(PYTEST_ARGS)
