# Two commands: `make run` (set up if needed, then train the default recipe) and
# `make test` (set up if needed, then run every test). Both are idempotent.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-done
TORCH  := 2.13.0
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: run test setup data postgres lint bench clean

run: setup data
	$(VENV)/bin/trainlab train

# pytest exits 5 when it collects no test; say so rather than fail quietly.
test: setup data postgres
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

setup: $(STAMP)

# Keep a torch that already satisfies pyproject's range; otherwise install the CPU build
# that lies on local disk on our machines (any other version downloads several GB).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch, sys; v = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(not ((2, 4) <= v < (3, 0)))" 2>/dev/null \
		|| $(PY) -m pip install -q torch==$(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Fashion-MNIST from Debian's package when we can (root + apt-get); otherwise trainlab
# looks in $$TRAINLAB_DATA, the user cache and finally downloads with MD5 checks.
data:
	@if [ ! -d $(FMNIST) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
		|| echo "note: apt-get could not install dataset-fashion-mnist; trainlab will look elsewhere"; \
	fi

# PostgreSQL for the `trainlab search --storage postgresql://` tests, from Debian's package
# when we can (root + apt-get); the tests start their own server on a loopback port in a
# temporary directory and skip when it is missing. We start or stop no system service (what
# the package's own scripts do is up to the machine's policy-rc.d).
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v apt-get >/dev/null \
		&& [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends postgresql >/dev/null) \
		|| echo "note: apt-get could not install postgresql; the PostgreSQL search tests will skip"; \
	fi

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
